#include "bpf/probe.hpp"

#include "bpf/fd.hpp"
#include "bpf/libbpf.hpp"
#include "net/tc.hpp"
#include "out/error.hpp"
#include "sys/caps.hpp"
#include "sys/fs.hpp"
#include "sys/mounts.hpp"

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/if_link.h>
#include <map>
#include <memory>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <random>
#include <sched.h>
#include <sstream>
#include <thread>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sonic::bpf {

namespace {

// Helper names by id, from the uapi header's own list.
#define SONIC_HELPER_NAME(x) "bpf_" #x
const char *const kHelperNames[] = {__BPF_FUNC_MAPPER(SONIC_HELPER_NAME)};
#undef SONIC_HELPER_NAME

std::string type_name(enum bpf_prog_type type)
{
	const char *s = libbpf_bpf_prog_type_str(type);
	return s ? s : "type " + std::to_string(static_cast<int>(type));
}

// libbpf's probes: 1 yes, 0 no, <0 cannot tell.
std::optional<bool> verdict(int probe, std::string &detail)
{
	if (probe < 0) {
		detail = "cannot be probed on its own (" + std::string(std::strerror(-probe)) + ")";
		return std::nullopt;
	}
	return probe == 1;
}

// ---- the kernel's facts -----------------------------------------------------

std::string bracketed(const std::string &text)
{
	auto open = text.find('[');
	auto close = text.find(']', open);
	if (open == std::string::npos || close == std::string::npos)
		return "unknown";
	return text.substr(open + 1, close - open - 1);
}

std::vector<std::string> split(const std::string &text, char sep)
{
	std::vector<std::string> out;
	std::istringstream in(text);
	std::string item;
	while (std::getline(in, item, sep)) {
		while (!item.empty() && (item.back() == '\n' || item.back() == ' '))
			item.pop_back();
		if (!item.empty())
			out.push_back(item);
	}
	return out;
}

std::optional<std::string> bpffs_mount(const Bpffs &root, const std::vector<sys::Mount> &mounts)
{
	std::optional<std::string> best;
	for (const sys::Mount &m : mounts) {
		if (m.fstype != "bpf")
			continue;
		const std::string &t = m.target;
		if (root.root().compare(0, t.size(), t) == 0 && (!best || t.size() > best->size()))
			best = t;
	}
	return best;
}

KernelFacts kernel_facts(const Bpffs &bpffs)
{
	KernelFacts k;
	struct utsname u{};
	if (uname(&u) == 0)
		k.release = u.release;
	k.btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
	const auto mounts = sys::read_mounts();
	k.bpffs = bpffs_mount(bpffs, mounts);
	k.cgroup2 = sys::cgroup2_root(mounts);
	k.jit = sys::read_int_file("/proc/sys/net/core/bpf_jit_enable");
	k.unprivileged_bpf_disabled = sys::read_int_file("/proc/sys/kernel/unprivileged_bpf_disabled");
	for (sys::Cap c : sys::missing_caps(sys::effective_caps(),
					    {sys::Cap::Bpf, sys::Cap::NetAdmin, sys::Cap::Perfmon, sys::Cap::SysAdmin}))
		k.missing_caps.push_back(sys::cap_name(c));
	k.lockdown = "unknown";
	return k;
}

// ---- trivial programs for the attach probes -----------------------------------

// r0 = RET; exit
Fd trivial_program(enum bpf_prog_type type, int ret, std::string &detail)
{
	struct bpf_insn insns[2] = {};
	insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
	insns[0].imm = ret;
	insns[1].code = BPF_JMP | BPF_EXIT;
	Fd fd(bpf_prog_load(type, "sonic_probe", "GPL", insns, 2, nullptr));
	if (!fd)
		detail = "cannot load a " + type_name(type) + " program: " + std::strerror(errno);
	return fd;
}

ProbeResult probe_cgroup_links(const KernelFacts &k)
{
	ProbeResult r{"cgroup_links", std::nullopt, ""};
	if (!k.cgroup2) {
		r.detail = "no cgroup v2 mount";
		return r;
	}
	Fd prog = trivial_program(BPF_PROG_TYPE_SOCK_OPS, 1, r.detail);
	if (!prog)
		return r;
	std::mt19937_64 rng(std::random_device{}());
	const std::string dir = *k.cgroup2 + "/sonic-probe-" + std::to_string(getpid()) + "-" + std::to_string(rng() % 100000);
	if (mkdir(dir.c_str(), 0700) != 0) {
		r.detail = "cannot make a cgroup to try: " + std::string(std::strerror(errno));
		return r;
	}
	{
		Fd cg(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		Fd link(cg ? bpf_link_create(prog.get(), cg.get(), BPF_CGROUP_SOCK_OPS, nullptr) : -1);
		r.available = link.valid();
		if (!link)
			r.detail = std::strerror(errno);
	}
	rmdir(dir.c_str());
	return r;
}

ProbeResult probe_sockmap_links()
{
	ProbeResult r{"sockmap_links", std::nullopt, ""};
	Fd prog = trivial_program(BPF_PROG_TYPE_SK_MSG, 1, r.detail);
	if (!prog)
		return r;
	Fd map(bpf_map_create(BPF_MAP_TYPE_SOCKHASH, "sonic_probe", 4, 8, 1, nullptr));
	if (!map) {
		r.detail = "cannot make a SOCKHASH: " + std::string(std::strerror(errno));
		return r;
	}
	Fd link(bpf_link_create(prog.get(), map.get(), BPF_SK_MSG_VERDICT, nullptr));
	r.available = link.valid();
	if (!link)
		r.detail = std::string(std::strerror(errno)) + " (before Linux 6.10: sonic attaches to the map instead)";
	return r;
}

// ---- bpf_sk_assign on a SO_REUSEPORT listener -----------------------------------

// A few instructions, spelled out, for the one program built by hand.
bpf_insn insn(__u8 code, __u8 dst, __u8 src, __s16 off, __s32 imm)
{
	bpf_insn i{};
	i.code = code;
	i.dst_reg = dst & 0xf;
	i.src_reg = src & 0xf;
	i.off = off;
	i.imm = imm;
	return i;
}
bpf_insn mov_reg(__u8 dst, __u8 src) { return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn mov_imm(__u8 dst, __s32 imm) { return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
bpf_insn add_imm(__u8 dst, __s32 imm) { return insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm); }
bpf_insn call(__s32 helper) { return insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
bpf_insn exit_insn() { return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

// The tc program of the probe. For a TCP packet to 127.0.0.1:DECOY, it
// looks up the listener at 127.0.0.1:LISTENER, assigns it to the packet with
// bpf_sk_assign and stores what the helper returned in RESULT[0]. The
// packet's IPv4 addresses and ports, read at their offsets behind an
// Ethernet header (loopback has one) with an IPv4 header of 20 bytes, are a
// struct bpf_sock_tuple's ipv4 member as they stand.
std::vector<bpf_insn> assign_program(int result_map, uint16_t listener, uint16_t decoy)
{
	enum { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, FP };
	constexpr __s16 tuple = -16, key = -20;
	constexpr __s16 dport = tuple + 10;
	std::vector<bpf_insn> p;
	std::vector<size_t> to_out; // jumps to patch
	auto jump_out = [&](__u8 op, __u8 reg, __s32 imm) {
		to_out.push_back(p.size());
		p.push_back(insn(BPF_JMP | op | BPF_K, reg, 0, 0, imm));
	};
	p.push_back(mov_reg(R6, R1));
	p.push_back(mov_imm(R2, 14 + 12));
	p.push_back(mov_reg(R3, FP));
	p.push_back(add_imm(R3, tuple));
	p.push_back(mov_imm(R4, 12));
	p.push_back(call(BPF_FUNC_skb_load_bytes));
	jump_out(BPF_JNE, R0, 0);
	p.push_back(insn(BPF_LDX | BPF_MEM | BPF_H, R1, FP, dport, 0));
	jump_out(BPF_JNE, R1, htons(decoy));
	p.push_back(insn(BPF_ST | BPF_MEM | BPF_H, FP, 0, dport, htons(listener)));
	p.push_back(mov_reg(R1, R6));
	p.push_back(mov_reg(R2, FP));
	p.push_back(add_imm(R2, tuple));
	p.push_back(mov_imm(R3, 12));
	p.push_back(mov_imm(R4, -1)); // BPF_F_CURRENT_NETNS
	p.push_back(mov_imm(R5, 0));
	p.push_back(call(BPF_FUNC_skc_lookup_tcp));
	jump_out(BPF_JEQ, R0, 0);
	p.push_back(mov_reg(R7, R0));
	p.push_back(mov_reg(R1, R6));
	p.push_back(mov_reg(R2, R7));
	p.push_back(mov_imm(R3, 0));
	p.push_back(call(BPF_FUNC_sk_assign));
	p.push_back(mov_reg(R8, R0));
	p.push_back(mov_reg(R1, R7));
	p.push_back(call(BPF_FUNC_sk_release));
	p.push_back(insn(BPF_ST | BPF_MEM | BPF_W, FP, 0, key, 0));
	p.push_back(insn(BPF_LD | BPF_DW | BPF_IMM, R1, BPF_PSEUDO_MAP_FD, 0, result_map));
	p.push_back(insn(0, 0, 0, 0, 0));
	p.push_back(mov_reg(R2, FP));
	p.push_back(add_imm(R2, key));
	p.push_back(call(BPF_FUNC_map_lookup_elem));
	jump_out(BPF_JEQ, R0, 0);
	p.push_back(insn(BPF_STX | BPF_MEM | BPF_DW, R0, R8, 0, 0));
	const size_t out = p.size();
	p.push_back(mov_imm(R0, 0)); // TC_ACT_OK
	p.push_back(exit_insn());
	for (size_t j : to_out)
		p[j].off = static_cast<__s16>(out - j - 1);
	return p;
}

// A TCP socket on 127.0.0.1 with an ephemeral port, or -1.
Fd loopback_socket(bool reuseport)
{
	Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd)
		return fd;
	int one = 1;
	if (reuseport)
		setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (::bind(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0)
		return Fd();
	return fd;
}

uint16_t local_port(int fd)
{
	sockaddr_in a{};
	socklen_t len = sizeof(a);
	getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
	return ntohs(a.sin_port);
}

bool loopback_up()
{
	Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	ifreq ifr{};
	std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
	if (!s || ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0)
		return false;
	ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
	return ioctl(s.get(), SIOCSIFFLAGS, &ifr) == 0;
}

// In a network namespace of the caller's own (its loopback is changed):
// a SO_REUSEPORT listener, and a SYN to another port that the program above
// assigns to it. What bpf_sk_assign returned is the answer.
ProbeResult try_sk_assign_reuseport()
{
	ProbeResult r{"sk_assign_reuseport", std::nullopt, ""};
	const int lo = static_cast<int>(if_nametoindex("lo"));
	if (!lo || !loopback_up()) {
		r.detail = "cannot bring up the loopback of the probe's namespace";
		return r;
	}
	Fd listener = loopback_socket(true);
	Fd decoy = loopback_socket(false); // holds a port nothing listens on
	if (!listener || !decoy || ::listen(listener.get(), 4) != 0) {
		r.detail = "cannot listen on 127.0.0.1: " + std::string(std::strerror(errno));
		return r;
	}
	Fd result(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sonic_probe", 4, 8, 1, nullptr));
	const __u32 key = 0;
	const long long unset = 1;
	if (!result || bpf_map_update_elem(result.get(), &key, &unset, BPF_ANY) != 0) {
		r.detail = "cannot make an array map: " + std::string(std::strerror(errno));
		return r;
	}
	std::vector<bpf_insn> insns = assign_program(result.get(), local_port(listener.get()), local_port(decoy.get()));
	Fd prog(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "sonic_probe", "GPL", insns.data(), insns.size(), nullptr));
	if (!prog) {
		r.detail = "cannot load a tc program calling bpf_sk_assign: " + std::string(std::strerror(errno));
		return r;
	}
	try {
		net::tc_attach_ingress(lo, prog.get(), "lo");
	} catch (const Error &e) {
		r.detail = e.reason();
		return r;
	}
	Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	sockaddr_in to{};
	to.sin_family = AF_INET;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons(local_port(decoy.get()));
	if (client)
		::connect(client.get(), reinterpret_cast<sockaddr *>(&to), sizeof(to));
	// Loopback hands the SYN over within connect(); the wait is for a
	// kernel that defers it to softirq.
	long long rc = unset;
	for (int i = 0; i < 100 && rc == unset; ++i) {
		bpf_map_lookup_elem(result.get(), &key, &rc);
		if (rc == unset)
			usleep(10000);
	}
	if (rc == unset) {
		r.detail = "the probe's SYN never reached its tc program";
	} else if (rc == 0) {
		r.available = true;
		r.detail = "tc steering may target SO_REUSEPORT listeners";
	} else {
		r.available = false;
		r.detail = "bpf_sk_assign refuses SO_REUSEPORT listeners (" + std::string(std::strerror(static_cast<int>(-rc))) +
			   "; Linux before 6.5): sonic run's transparent listeners share one socket among its workers";
	}
	return r;
}

std::optional<ProbeResult> injected_sk_assign_refusal()
{
	const std::vector<std::string> refused = injected_refusals();
	if (std::find(refused.begin(), refused.end(), "sk_assign_reuseport") == refused.end())
		return std::nullopt;
	return ProbeResult{"sk_assign_reuseport", false,
			   "refused by SONIC_BPF_REFUSE (fault injection): sonic run's transparent listeners share one "
			   "socket among its workers"};
}

// The probe above where the caller is in a namespace of its own already.
ProbeResult sk_assign_reuseport_here()
{
	if (std::optional<ProbeResult> injected = injected_sk_assign_refusal())
		return *injected;
	return try_sk_assign_reuseport();
}

// ---- probes inside a network and mount namespace of their own -------------------

// Lines "name<TAB>yes|no|?<TAB>detail" from the child.
std::string result_line(const ProbeResult &r)
{
	const char *v = !r.available ? "?" : *r.available ? "yes" : "no";
	return r.name + "\t" + v + "\t" + r.detail + "\n";
}

ProbeResult probe_tc(int ifindex)
{
	ProbeResult r{"tc_ingress", std::nullopt, ""};
	Fd prog = trivial_program(BPF_PROG_TYPE_SCHED_CLS, 0, r.detail);
	if (!prog)
		return r;
	try {
		net::tc_attach_ingress(ifindex, prog.get(), "lo");
		r.available = true;
		r.detail = "clsact + cls_bpf";
	} catch (const Error &e) {
		r.available = false;
		r.detail = e.reason();
	}
	return r;
}

ProbeResult probe_xdp(const char *name, int ifindex, __u32 mode)
{
	ProbeResult r{name, std::nullopt, ""};
	Fd prog = trivial_program(BPF_PROG_TYPE_XDP, 2 /* XDP_PASS */, r.detail);
	if (!prog)
		return r;
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = mode);
	Fd link(bpf_link_create(prog.get(), ifindex, BPF_XDP, &opts));
	r.available = link.valid();
	if (!link)
		r.detail = std::strerror(errno);
	return r;
}

// A veth pair in the probe's namespace; the ifindex of one end, or 0.
int make_veth(std::string &detail)
{
	struct SockFree {
		void operator()(nl_sock *s) const { nl_socket_free(s); }
	};
	std::unique_ptr<nl_sock, SockFree> sk(nl_socket_alloc());
	if (!sk || nl_connect(sk.get(), NETLINK_ROUTE) != 0) {
		detail = "no netlink";
		return 0;
	}
	rtnl_link *link = rtnl_link_veth_alloc();
	if (!link) {
		detail = "no veth support in libnl";
		return 0;
	}
	rtnl_link_set_name(link, "sonicprobe0");
	rtnl_link_set_name(rtnl_link_veth_get_peer(link), "sonicprobe1");
	int err = rtnl_link_add(sk.get(), link, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_veth_release(link);
	if (err < 0) {
		detail = "cannot make a veth pair: " + std::string(nl_geterror(err));
		return 0;
	}
	return static_cast<int>(if_nametoindex("sonicprobe0"));
}

// Runs in the forked child: a network and mount namespace of its own, so the
// attachments and the securityfs mount go with it.
std::string namespace_probes()
{
	std::string out;
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0)
		return result_line({"tc_ingress", std::nullopt, "no namespace to try in: " + std::string(std::strerror(errno))});
	mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
	char dir[] = "/tmp/sonic-probe-XXXXXX";
	if (access("/sys/kernel/security/lsm", R_OK) == 0) {
		out += "lockdown\t" + sys::try_read_file("/sys/kernel/security/lockdown").value_or("") + "\n";
		out += "lsm\t" + sys::try_read_file("/sys/kernel/security/lsm").value_or("") + "\n";
	} else if (mkdtemp(dir) && mount("securityfs", dir, "securityfs", 0, nullptr) == 0) {
		out += "lockdown\t" + sys::try_read_file(std::string(dir) + "/lockdown").value_or("") + "\n";
		out += "lsm\t" + sys::try_read_file(std::string(dir) + "/lsm").value_or("") + "\n";
		umount(dir);
		rmdir(dir);
	}
	const int lo = static_cast<int>(if_nametoindex("lo"));
	out += result_line(probe_tc(lo));
	out += result_line(sk_assign_reuseport_here());
	out += result_line(probe_xdp("xdp_generic", lo, XDP_FLAGS_SKB_MODE));
	std::string detail;
	if (int veth = make_veth(detail))
		out += result_line(probe_xdp("xdp_native", veth, XDP_FLAGS_DRV_MODE));
	else
		out += result_line({"xdp_native", std::nullopt, detail});
	return out;
}

// Forks, runs namespace_probes() in the child and parses its lines.
std::vector<ProbeResult> run_namespace_probes(KernelFacts &k)
{
	std::vector<ProbeResult> results;
	int fds[2];
	if (pipe(fds) != 0)
		return results;
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		std::string text = namespace_probes();
		ssize_t n = write(fds[1], text.data(), text.size());
		_exit(n == static_cast<ssize_t>(text.size()) ? 0 : 1);
	}
	close(fds[1]);
	std::string text;
	char buf[4096];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		text.append(buf, static_cast<size_t>(n));
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, nullptr, 0);
	for (const std::string &line : split(text, '\n')) {
		auto f = split(line, '\t');
		if (f.empty())
			continue;
		if (f[0] == "lockdown") {
			k.lockdown = f.size() > 1 ? bracketed(f[1]) : "unknown";
		} else if (f[0] == "lsm") {
			k.lsms = f.size() > 1 ? split(f[1], ',') : std::vector<std::string>{};
		} else {
			ProbeResult r{f[0], std::nullopt, f.size() > 2 ? f[2] : ""};
			if (f.size() > 1 && f[1] != "?")
				r.available = f[1] == "yes";
			results.push_back(r);
		}
	}
	if (k.lockdown == "unknown")
		k.notes += "securityfs could not be read, so the lockdown mode and the LSMs are unknown. ";
	return results;
}

// ---- helpers and families ---------------------------------------------------

struct ObjectCloser {
	void operator()(bpf_object *obj) const { bpf_object__close(obj); }
};

std::vector<HelperProbe> probe_helpers(std::span<const Family> families)
{
	// (program type, helper) -> programs that call it
	std::map<std::pair<int, int>, std::vector<std::string>> calls;
	for (const Family &f : families) {
		size_t size = 0;
		const void *data = f.elf_bytes(&size);
		std::unique_ptr<bpf_object, ObjectCloser> obj(bpf_object__open_mem(data, size, nullptr));
		if (!obj)
			continue;
		bpf_program *prog;
		bpf_object__for_each_program(prog, obj.get())
		{
			const struct bpf_insn *insn = bpf_program__insns(prog);
			for (size_t i = 0; i < bpf_program__insn_cnt(prog); ++i)
				if (insn[i].code == (BPF_JMP | BPF_CALL) && insn[i].src_reg == 0) {
					auto &progs = calls[{static_cast<int>(bpf_program__type(prog)), insn[i].imm}];
					if (std::find(progs.begin(), progs.end(), bpf_program__name(prog)) == progs.end())
						progs.emplace_back(bpf_program__name(prog));
				}
		}
	}
	std::vector<HelperProbe> out;
	for (const auto &[key, progs] : calls) {
		HelperProbe h;
		h.helper = helper_name(key.second);
		h.program_type = type_name(static_cast<enum bpf_prog_type>(key.first));
		std::string ignored;
		h.available = verdict(libbpf_probe_bpf_helper(static_cast<enum bpf_prog_type>(key.first),
							      static_cast<enum bpf_func_id>(key.second), nullptr),
				      ignored);
		h.programs = progs;
		out.push_back(std::move(h));
	}
	return out;
}

std::vector<ProbeResult> probe_program_types(std::span<const Family> families)
{
	std::vector<enum bpf_prog_type> types;
	for (const Family &f : families) {
		size_t size = 0;
		const void *data = f.elf_bytes(&size);
		std::unique_ptr<bpf_object, ObjectCloser> obj(bpf_object__open_mem(data, size, nullptr));
		if (!obj)
			continue;
		bpf_program *prog;
		bpf_object__for_each_program(prog, obj.get())
		{
			if (std::find(types.begin(), types.end(), bpf_program__type(prog)) == types.end())
				types.push_back(bpf_program__type(prog));
		}
	}
	std::vector<ProbeResult> out;
	for (enum bpf_prog_type t : types) {
		ProbeResult r{type_name(t), std::nullopt, ""};
		r.available = verdict(libbpf_probe_bpf_prog_type(t, nullptr), r.detail);
		out.push_back(std::move(r));
	}
	return out;
}

FamilyProbe probe_family(const Family &family)
{
	FamilyProbe fp;
	fp.name = family.name;
	std::vector<std::string> loads;
	const Layout layout = layout_of(family);
	std::unique_ptr<bpf_object, ObjectCloser> obj;
	for (const std::string &p : layout.programs) {
		ProgramProbe pp;
		pp.name = p;
		for (const Alternative &a : family.alternatives)
			if (a.program == p)
				pp.alternative_for = a.feature;
		pp.refusal = probe_program(family, p);
		if (!pp.refusal)
			loads.push_back(p);
		fp.programs.push_back(std::move(pp));
	}
	// The program types, from the object itself.
	size_t size = 0;
	const void *data = family.elf_bytes(&size);
	obj.reset(bpf_object__open_mem(data, size, nullptr));
	for (ProgramProbe &pp : fp.programs)
		if (bpf_program *prog = obj ? bpf_object__find_program_by_name(obj.get(), pp.name.c_str()) : nullptr)
			pp.type = type_name(bpf_program__type(prog));

	fp.available = true;
	for (const ProgramProbe &pp : fp.programs)
		if (pp.alternative_for.empty() && pp.refusal && fp.available) {
			fp.available = false;
			fp.reason = pp.refusal->reason + (pp.refusal->hint.empty() ? "" : " (" + pp.refusal->hint + ")");
		}
	for (const Alternative &a : family.alternatives) {
		const bool chosen = std::any_of(fp.features.begin(), fp.features.end(),
						[&](const FeatureChoice &c) { return c.feature == a.feature; });
		if (!chosen && std::find(loads.begin(), loads.end(), a.program) != loads.end())
			fp.features.push_back({std::string(a.feature), std::string(a.value), std::string(a.program)});
	}
	for (const Alternative &a : family.alternatives) {
		const bool chosen = std::any_of(fp.features.begin(), fp.features.end(),
						[&](const FeatureChoice &c) { return c.feature == a.feature; });
		if (!chosen && fp.available) {
			fp.available = false;
			fp.reason = "the kernel refuses every program that could provide " + std::string(a.feature);
		}
	}
	return fp;
}

} // namespace

const ProbeResult &sk_assign_reuseport()
{
	static const ProbeResult answer = [] {
		if (std::optional<ProbeResult> injected = injected_sk_assign_refusal())
			return *injected;
		ProbeResult r;
		// unshare(CLONE_NEWNET) moves only the calling thread, so a thread
		// of its own takes the probe there and the namespace goes with it.
		std::thread t([&r] {
			if (unshare(CLONE_NEWNET) != 0)
				r = {"sk_assign_reuseport", std::nullopt,
				     "no network namespace to try in: " + std::string(std::strerror(errno))};
			else
				r = try_sk_assign_reuseport();
		});
		t.join();
		return r;
	}();
	return answer;
}

bool kernel_release_at_least(int major, int minor)
{
	struct utsname u{};
	int have_major = 0, have_minor = 0;
	if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &have_major, &have_minor) != 2)
		return false;
	return have_major > major || (have_major == major && have_minor >= minor);
}

std::string helper_name(int id)
{
	if (id >= 0 && static_cast<size_t>(id) < std::size(kHelperNames))
		return kHelperNames[id];
	return "helper " + std::to_string(id);
}

Probe probe_kernel(std::span<const Family> families, const Bpffs &bpffs)
{
	Probe p;
	p.kernel = kernel_facts(bpffs);
	p.program_types = probe_program_types(families);
	p.attach_points.push_back(probe_cgroup_links(p.kernel));
	p.attach_points.push_back(probe_sockmap_links());
	for (ProbeResult &r : run_namespace_probes(p.kernel))
		p.attach_points.push_back(std::move(r));
	p.helpers = probe_helpers(families);
	for (const Family &f : families)
		p.families.push_back(probe_family(f));
	return p;
}

} // namespace sonic::bpf
