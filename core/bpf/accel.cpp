#include "bpf/accel.hpp"

#include "accel.skel.h"
#include "bpf/family.hpp"
#include "bpf/pins.hpp"
#include "bpf/fd.hpp"
#include "bpf/libbpf.hpp"
#include "net/addr.hpp"
#include "net/local.hpp"
#include "out/error.hpp"
#include "out/log.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace sonic::bpf {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kFamily = "accel";
constexpr std::string_view kMsgLink = "accel_msg";
constexpr const char *kCgroupLinkPrefix = "accel_sockops_cg";
// Long enough for a sendmsg that saw a socket before it was marked draining
// to finish its redirect.
constexpr std::chrono::milliseconds kGrace{20};
constexpr std::chrono::milliseconds kPoll{20};

const char *const kCounterNames[SONIC_ACCEL_NR_COUNTERS] = {
	"inserted",	  "insert_failed", "skipped_remote",	  "skipped_port",	"redirects",
	"redirect_bytes", "misses",	   "miss_bytes",	  "passed_draining",	"released",
	"overflows",	  "passed_overflow", "passed_overflow_bytes", "resumed",	"skipped_not_proxy",
};

std::string cgroup_link_name(uint64_t id) { return kCgroupLinkPrefix + std::to_string(id); }

// How this load hands sockets back: the program its release path runs.
struct ReleaseProgram {
	AccelReleasePath path;
	Fd prog;
};

ReleaseProgram open_release(const Pins &pins)
{
	const std::string_view iterator = SONIC_PROG(accel_bpf, accel_release);
	if (open_pinned(pins.fs().prog_path(iterator)))
		return {AccelReleasePath::Iterator, pins.prog(iterator)};
	return {AccelReleasePath::Walk, pins.prog(SONIC_PROG(accel_bpf, accel_release_one))};
}

// Pinned objects of a loaded accel family.
struct AccelObjects {
	Pins pins;
	Fd sockops, msg;
	ReleaseProgram release;
	Fd socks, sk, cg, ports, local, stats, drain, iter, proxy_listen;

	explicit AccelObjects(const Bpffs &fs)
		: pins(fs, kFamily), sockops(pins.prog(SONIC_PROG(accel_bpf, accel_sockops))),
		  msg(pins.prog(SONIC_PROG(accel_bpf, accel_msg))), release(open_release(pins)),
		  socks(pins.map(SONIC_MAP(accel_bpf, accel_socks))), sk(pins.map(SONIC_MAP(accel_bpf, accel_sk))),
		  cg(pins.map(SONIC_MAP(accel_bpf, accel_cg))), ports(pins.map(SONIC_MAP(accel_bpf, accel_ports))),
		  local(pins.map(SONIC_MAP(accel_bpf, accel_local))), stats(pins.map(SONIC_MAP(accel_bpf, accel_stats))),
		  drain(pins.map(SONIC_MAP(accel_bpf, accel_drain))), iter(pins.map(SONIC_MAP(accel_bpf, accel_iter))),
		  proxy_listen(pins.map(SONIC_MAP(accel_bpf, accel_proxy_listen)))
	{
	}
};

struct bpf_cgroup_storage_key storage_key(uint64_t cgroup_id)
{
	struct bpf_cgroup_storage_key key{};
	key.cgroup_inode_id = cgroup_id;
	key.attach_type = BPF_CGROUP_SOCK_OPS;
	return key;
}

std::optional<struct sonic_accel_cgroup> read_cgroup_config(const AccelObjects &o, uint64_t cgroup_id)
{
	auto key = storage_key(cgroup_id);
	struct sonic_accel_cgroup value{};
	if (bpf_map_lookup_elem(o.cg.get(), &key, &value) != 0)
		return std::nullopt;
	return value;
}

AccelScope read_scope(const AccelObjects &o, uint64_t cgroup_id)
{
	auto cfg = read_cgroup_config(o, cgroup_id);
	return cfg && (cfg->flags & SONIC_ACCEL_CG_PROXY_LEGS) ? AccelScope::Proxy : AccelScope::All;
}

PortFilter read_ports(const AccelObjects &o, uint64_t cgroup_id)
{
	auto cfg = read_cgroup_config(o, cgroup_id);
	if (!cfg || !(cfg->flags & SONIC_ACCEL_CG_PORT_FILTER))
		return std::nullopt;
	struct sonic_accel_ports bitmap{};
	if (bpf_map_lookup_elem(o.ports.get(), &cgroup_id, &bitmap) != 0)
		return std::vector<net::PortRange>{};
	return ports_from_bitmap(bitmap);
}

// Writes the attachment's configuration; returns whether anything changed.
bool configure_cgroup(const AccelObjects &o, uint64_t cgroup_id, const PortFilter &ports, AccelScope scope)
{
	bool changed = false;
	if (ports) {
		struct sonic_accel_ports want = ports_bitmap(*ports);
		struct sonic_accel_ports have{};
		if (bpf_map_lookup_elem(o.ports.get(), &cgroup_id, &have) != 0 || std::memcmp(&want, &have, sizeof(want)) != 0) {
			if (bpf_map_update_elem(o.ports.get(), &cgroup_id, &want, BPF_ANY) != 0)
				throw errno_error("write port filter", errno, std::to_string(cgroup_id));
			changed = true;
		}
	}
	struct sonic_accel_cgroup want{};
	want.cgroup_id = cgroup_id;
	want.flags = (ports ? SONIC_ACCEL_CG_PORT_FILTER : 0) |
		     (scope == AccelScope::Proxy ? SONIC_ACCEL_CG_PROXY_LEGS : 0);
	auto have = read_cgroup_config(o, cgroup_id);
	if (!have || have->cgroup_id != want.cgroup_id || have->flags != want.flags) {
		auto key = storage_key(cgroup_id);
		if (bpf_map_update_elem(o.cg.get(), &key, &want, BPF_ANY) != 0)
			throw errno_error("configure cgroup attachment", errno, std::to_string(cgroup_id));
		changed = true;
	}
	if (!ports && bpf_map_delete_elem(o.ports.get(), &cgroup_id) == 0)
		changed = true;
	return changed;
}

// Makes accel_local hold exactly this namespace's non-loopback addresses.
std::pair<bool, size_t> sync_local_addresses(const AccelObjects &o)
{
	const uint64_t netns = net::netns_cookie();
	std::vector<struct sonic_accel_local_key> want;
	for (const net::Addr16 &a : net::local_addresses()) {
		struct sonic_accel_local_key k{};
		k.netns = netns;
		std::memcpy(k.addr, a.data(), sizeof(k.addr));
		want.push_back(k);
	}
	std::vector<struct sonic_accel_local_key> have;
	for (const auto &k : map_keys<struct sonic_accel_local_key>(o.local.get()))
		if (k.netns == netns)
			have.push_back(k);
	const __u8 one = 1;
	const bool changed = replace_keys(o.local.get(), have, want, one, "record local address");
	return {changed, want.size()};
}

// Runs the iterator over the SOCKHASH once.
void iterate_sockhash(const AccelObjects &o)
{
	union bpf_iter_link_info info{};
	info.map.map_fd = static_cast<__u32>(o.socks.get());
	LIBBPF_OPTS(bpf_link_create_opts, opts, .iter_info = &info, .iter_info_len = sizeof(info));
	Fd link(bpf_link_create(o.release.prog.get(), 0, BPF_TRACE_ITER, &opts));
	if (!link)
		throw errno_error("create release iterator", errno);
	Fd iter(bpf_iter_create(link.get()));
	if (!iter)
		throw errno_error("start release iterator", errno);
	char buf[256];
	ssize_t n;
	while ((n = read(iter.get(), buf, sizeof(buf))) > 0) {
	}
	if (n < 0)
		throw errno_error("run release iterator", errno);
}

// Runs accel_release_one once for each key of the SOCKHASH, as it was when
// the walk began. A socket that enters the map meanwhile is left to the
// next pass, as it is by the iterator.
void walk_sockhash(const AccelObjects &o)
{
	std::array<uint8_t, SONIC_ACCEL_RELEASE_KEY_OFFSET + sizeof(struct sonic_accel_key)> packet{};
	for (const auto &key : map_keys<struct sonic_accel_key>(o.socks.get())) {
		std::memcpy(packet.data() + SONIC_ACCEL_RELEASE_KEY_OFFSET, &key, sizeof(key));
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(),
			    .data_size_in = static_cast<__u32>(packet.size()), .repeat = 1);
		if (bpf_prog_test_run_opts(o.release.prog.get(), &opts) != 0)
			throw errno_error("run accel_release_one", errno);
	}
}

// One pass of a release step over the SOCKHASH, by the family's release
// path.
struct sonic_accel_iter run_pass(const AccelObjects &o, uint32_t op, uint64_t cgroup_id)
{
	struct sonic_accel_iter it{};
	it.op = op;
	it.cgroup_id = cgroup_id;
	__u32 zero = 0;
	if (bpf_map_update_elem(o.iter.get(), &zero, &it, BPF_ANY) != 0)
		throw errno_error("configure release pass", errno);
	if (o.release.path == AccelReleasePath::Iterator)
		iterate_sockhash(o);
	else
		walk_sockhash(o);
	if (bpf_map_lookup_elem(o.iter.get(), &zero, &it) != 0)
		throw errno_error("read release pass results", errno);
	return it;
}

// Marks the sockets of CGROUP_ID (0: all) and their peers draining, then
// removes each from the SOCKHASH once its redirected data has been read.
ReleaseReport release(const AccelObjects &o, uint64_t cgroup_id, std::chrono::milliseconds timeout)
{
	ReleaseReport r;
	r.marked = run_pass(o, SONIC_ACCEL_ITER_MARK, cgroup_id).marked;
	r.marked += run_pass(o, SONIC_ACCEL_ITER_MARK_PEERS, 0).marked;
	clear_map(o.drain.get());
	std::this_thread::sleep_for(kGrace);
	const auto deadline = Clock::now() + timeout;
	for (;;) {
		struct sonic_accel_iter pass = run_pass(o, SONIC_ACCEL_ITER_RELEASE, 0);
		r.released += pass.released;
		r.pending = pass.pending;
		r.pending_bytes = pass.pending_bytes;
		if (pass.pending == 0 || Clock::now() >= deadline)
			break;
		std::this_thread::sleep_for(kPoll);
	}
	return r;
}

// Every entry of accel_proxy_listen, with who recorded it.
std::vector<std::pair<struct sonic_accel_endpoint, struct sonic_accel_proxy>> proxy_endpoints(int map_fd)
{
	std::vector<std::pair<struct sonic_accel_endpoint, struct sonic_accel_proxy>> out;
	for (const auto &e : map_keys<struct sonic_accel_endpoint>(map_fd)) {
		struct sonic_accel_proxy owner{};
		if (bpf_map_lookup_elem(map_fd, &e, &owner) == 0)
			out.emplace_back(e, owner);
	}
	return out;
}

// The inode number of this process's pid namespace (0 if unknown).
uint32_t pid_namespace()
{
	struct stat st{};
	return stat("/proc/self/ns/pid", &st) == 0 ? static_cast<uint32_t>(st.st_ino) : 0;
}

// Whether the process that recorded an entry still runs. A pid of another
// pid namespace (a proxy in a container) cannot be checked from here and
// counts as running.
bool process_alive(const struct sonic_accel_proxy &owner)
{
	if (owner.pidns != pid_namespace())
		return true;
	return owner.pid != 0 && (kill(static_cast<pid_t>(owner.pid), 0) == 0 || errno == EPERM);
}

// "127.0.0.1:8080", "[::1]:8080", "*:8080" for a wildcard.
std::string endpoint_text(const struct sonic_accel_endpoint &e)
{
	if (!e.addr[0] && !e.addr[1] && !e.addr[2] && !e.addr[3])
		return net::host_port("*", e.port);
	return net::to_string(net::Endpoint{net::addr_of_ipv6_form(reinterpret_cast<const uint8_t *>(e.addr)), e.port});
}

} // namespace

std::string_view accel_scope_name(AccelScope scope)
{
	return scope == AccelScope::Proxy ? "proxy" : "all";
}

std::optional<AccelScope> parse_accel_scope(std::string_view text)
{
	if (text == "all")
		return AccelScope::All;
	if (text == "proxy")
		return AccelScope::Proxy;
	return std::nullopt;
}

std::string_view accel_counter_name(size_t index)
{
	return index < SONIC_ACCEL_NR_COUNTERS ? kCounterNames[index] : "unknown";
}

struct sonic_accel_ports ports_bitmap(const std::vector<net::PortRange> &ranges)
{
	struct sonic_accel_ports bm{};
	for (const net::PortRange &r : ranges)
		for (unsigned p = r.first; p <= r.last; ++p)
			bm.bits[p / 64] |= uint64_t{1} << (p % 64);
	return bm;
}

std::vector<net::PortRange> ports_from_bitmap(const struct sonic_accel_ports &bm)
{
	std::vector<net::PortRange> out;
	for (unsigned p = 1; p < 65536; ++p) {
		if (!(bm.bits[p / 64] & (uint64_t{1} << (p % 64))))
			continue;
		if (!out.empty() && out.back().last + 1u == p)
			out.back().last = static_cast<uint16_t>(p);
		else
			out.push_back({static_cast<uint16_t>(p), static_cast<uint16_t>(p)});
	}
	return out;
}

AccelEnableResult accel_enable(const Bpffs &fs, const std::optional<std::string> &cgroup_path, const PortFilter &ports,
			       AccelScope scope)
{
	AccelEnableResult r;
	r.cgroup = sys::resolve_cgroup(cgroup_path);
	r.ports = ports;
	r.scope = scope;
	fs.ensure();
	Fd lock = fs.lock();

	r.loaded = require_family(fs, builtin_family(kFamily));
	r.changed = r.loaded;
	AccelObjects o(fs);
	r.release_path = o.release.path;
	r.changed |= o.pins.attach_sockmap(o.msg.get(), o.socks.get(), BPF_SK_MSG_VERDICT, kMsgLink);
	auto [addrs_changed, addrs] = sync_local_addresses(o);
	r.changed |= addrs_changed;
	r.local_addresses = addrs;
	r.changed |= o.pins.attach_cgroup(o.sockops.get(), r.cgroup.path, BPF_CGROUP_SOCK_OPS,
					  cgroup_link_name(r.cgroup.id));
	// A link without configuration is inert (cgroup_id 0), so a crash
	// between the two steps leaves nothing half-working.
	r.changed |= configure_cgroup(o, r.cgroup.id, ports, scope);
	return r;
}

namespace {

// The cgroup id an accel link's pin name carries.
std::optional<uint64_t> link_name_cgroup(const std::string &name)
{
	const std::string prefix = kCgroupLinkPrefix;
	if (name.compare(0, prefix.size(), prefix) != 0 || name.size() == prefix.size())
		return std::nullopt;
	uint64_t id = 0;
	for (char c : name.substr(prefix.size())) {
		if (c < '0' || c > '9')
			return std::nullopt;
		id = id * 10 + static_cast<uint64_t>(c - '0');
	}
	return id;
}

// Links whose cgroup was removed, named by their pins (a link's own cgroup
// id reads 0 once the kernel lets the cgroup go). The kernel frees a removed
// cgroup, and detaches its links, asynchronously some time after rmdir; until
// then the link still names the cgroup, whose directory is already gone.
std::vector<uint64_t> defunct_cgroups(const Pins &pins)
{
	std::vector<uint64_t> ids;
	for (const std::string &name : pins.links(kCgroupLinkPrefix)) {
		auto id = link_name_cgroup(name);
		auto link = id ? open_pinned(pins.fs().link_path(name)) : std::nullopt;
		if (link && (link_info(link->get()).cgroup_id == 0 || !sys::cgroup_exists(*id)))
			ids.push_back(*id);
	}
	return ids;
}

// Detaches the link of cgroup ID and hands its sockets back.
bool disable_cgroup(const AccelObjects &o, uint64_t id, std::chrono::milliseconds timeout, ReleaseReport &report)
{
	const bool detached = o.pins.unpin_link(cgroup_link_name(id));
	// Connections established while the link was going away are caught by
	// the grace period inside release().
	ReleaseReport r = release(o, id, timeout);
	report.marked += r.marked;
	report.released += r.released;
	report.pending += r.pending;
	report.pending_bytes += r.pending_bytes;
	auto key = storage_key(id);
	bpf_map_delete_elem(o.cg.get(), &key);
	bpf_map_delete_elem(o.ports.get(), &id);
	return detached;
}

} // namespace

AccelDisableResult accel_disable(const Bpffs &fs, const std::optional<std::string> &cgroup_path,
				 std::chrono::milliseconds timeout)
{
	AccelDisableResult r;
	try {
		r.cgroup = sys::resolve_cgroup(cgroup_path);
	} catch (const Error &e) {
		// A removed cgroup cannot be named by its path any more; its link
		// is found by having no cgroup, and every such link goes.
		struct stat st{};
		if (!cgroup_path || stat(cgroup_path->c_str(), &st) == 0 || errno != ENOENT ||
		    !family_maps_usable(fs, builtin_family(kFamily)))
			throw;
		Fd lock = fs.lock();
		AccelObjects o(fs);
		r.removed_cgroups = defunct_cgroups(o.pins);
		if (r.removed_cgroups.empty())
			throw;
		r.cgroup.path = *cgroup_path;
		for (uint64_t id : r.removed_cgroups)
			r.detached |= disable_cgroup(o, id, timeout, r.release);
		r.changed = true;
		return r;
	}
	if (!family_maps_usable(fs, builtin_family(kFamily)))
		return r;
	Fd lock = fs.lock();
	AccelObjects o(fs);
	r.detached = disable_cgroup(o, r.cgroup.id, timeout, r.release);
	r.changed = r.detached || r.release.marked > 0 || r.release.released > 0;
	if (r.release.pending > 0)
		log::warn(std::to_string(r.release.pending) +
			  " accelerated socket(s) still hold redirected data their application has not read; "
			  "they carry on over the normal stack and `sonic accel disable` releases them later");
	return r;
}

uint64_t accel_pinned_sockets(const Bpffs &fs)
{
	auto socks = open_pinned(fs.map_path(SONIC_MAP(accel_bpf, accel_socks)));
	return socks ? count_keys(socks->get()) : 0;
}

ReleaseReport accel_release_all(const Bpffs &fs, std::chrono::milliseconds timeout)
{
	AccelObjects o(fs);
	for (const std::string &name : o.pins.links(kCgroupLinkPrefix))
		o.pins.unpin_link(name);
	return release(o, 0, timeout);
}

AccelStatus accel_status(const Bpffs &fs)
{
	AccelStatus s;
	if (!family_maps_usable(fs, builtin_family(kFamily)))
		return s;
	s.loaded = true;
	Fd lock = fs.lock();
	AccelObjects o(fs);
	s.release_path = o.release.path;
	s.msg_attached = o.pins.sockmap_attached(o.msg.get(), o.socks.get(), BPF_SK_MSG_VERDICT, kMsgLink);
	for (const std::string &name : o.pins.links(kCgroupLinkPrefix)) {
		auto link = open_pinned(fs.link_path(name));
		if (!link)
			continue;
		LinkInfo li = link_info(link->get());
		AccelCgroup c;
		c.cgroup_id = li.cgroup_id ? li.cgroup_id : link_name_cgroup(name).value_or(0);
		c.link_id = li.id;
		c.path = li.cgroup_id ? sys::cgroup_path_of(li.cgroup_id) : "";
		c.ports = read_ports(o, c.cgroup_id);
		c.scope = read_scope(o, c.cgroup_id);
		s.cgroups.push_back(std::move(c));
	}
	s.sockets = count_keys(o.socks.get());
	struct sonic_accel_iter counted = run_pass(o, SONIC_ACCEL_ITER_COUNT, 0);
	s.draining = counted.pending;
	s.pending_bytes = counted.pending_bytes;
	s.local_addresses = count_keys(o.local.get());
	for (const auto &[e, owner] : proxy_endpoints(o.proxy_listen.get())) {
		AccelProxyListener l;
		l.address = endpoint_text(e);
		l.netns = e.netns;
		l.pid = owner.pid;
		l.alive = process_alive(owner);
		s.proxy_listeners.push_back(std::move(l));
	}
	return s;
}

std::unique_ptr<AccelProxy> AccelProxy::open(const Bpffs &fs, std::string &unavailable)
{
	try {
		if (!family_maps_usable(fs, builtin_family(kFamily))) {
			unavailable = "the accel BPF family is not loaded under " + fs.root() +
				      " (run `sonic accel enable scope proxy`)";
			return nullptr;
		}
		const Pins pins(fs, kFamily);
		Fd map = pins.map(SONIC_MAP(accel_bpf, accel_proxy_listen));
		Fd sk = pins.map(SONIC_MAP(accel_bpf, accel_sk));
		// Entries of proxies that are gone would make their ports count as
		// legs for whoever listens there next.
		for (const auto &[e, owner] : proxy_endpoints(map.get()))
			if (!process_alive(owner))
				bpf_map_delete_elem(map.get(), &e);
		return std::unique_ptr<AccelProxy>(new AccelProxy(std::move(map), std::move(sk)));
	} catch (const Error &e) {
		unavailable = e.what();
		return nullptr;
	}
}

bool AccelProxy::accelerated(int sock_fd) const
{
	struct sonic_accel_sock st{};
	return bpf_map_lookup_elem(sk_.get(), &sock_fd, &st) == 0 && (st.flags & SONIC_ACCEL_SOCK_ACCELERATED);
}

bool AccelProxy::stale(const Bpffs &fs) const
{
	auto pinned = open_pinned(fs.map_path(SONIC_MAP(accel_bpf, accel_proxy_listen)));
	return !pinned || map_id(pinned->get()) != map_id(map_.get());
}

AccelProxy::~AccelProxy()
{
	for (const auto &e : mine_)
		bpf_map_delete_elem(map_.get(), &e);
}

void AccelProxy::record(const std::vector<struct sockaddr_storage> &listening)
{
	const uint64_t netns = net::netns_cookie();
	std::vector<struct sonic_accel_endpoint> want;
	for (const struct sockaddr_storage &ss : listening) {
		struct sonic_accel_endpoint e{};
		e.netns = netns;
		if (ss.ss_family == AF_INET) {
			const auto *in = reinterpret_cast<const struct sockaddr_in *>(&ss);
			if (in->sin_addr.s_addr != htonl(INADDR_ANY)) {
				e.addr[2] = htonl(0xffff);
				e.addr[3] = in->sin_addr.s_addr;
			}
			e.port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const auto *in6 = reinterpret_cast<const struct sockaddr_in6 *>(&ss);
			if (!IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
				std::memcpy(e.addr, &in6->sin6_addr, sizeof(e.addr));
			e.port = ntohs(in6->sin6_port);
		} else {
			continue;
		}
		want.push_back(e);
	}
	struct sonic_accel_proxy owner{};
	owner.pid = static_cast<uint32_t>(getpid());
	owner.pidns = pid_namespace();
	replace_keys(map_.get(), mine_, want, owner, "record proxy listener");
	mine_ = std::move(want);
}

AccelCounters accel_counters(const Bpffs &fs)
{
	if (!family_maps_usable(fs, builtin_family(kFamily)))
		throw env_error("read accel counters", "accel is not loaded", fs.root())
			.with_hint("run `sonic accel enable` first");
	const Pins pins(fs, kFamily);
	const auto stats = sum_per_cpu<struct sonic_accel_stats>(pins.map(SONIC_MAP(accel_bpf, accel_stats)).get(),
								 "read accel counters");
	AccelCounters c;
	std::copy(std::begin(stats.counter), std::end(stats.counter), c.counter.begin());
	c.sockets = count_keys(pins.map(SONIC_MAP(accel_bpf, accel_socks)).get());
	return c;
}

std::string_view accel_release_path_name(AccelReleasePath path)
{
	return path == AccelReleasePath::Iterator ? "iterator" : "walk";
}

} // namespace sonic::bpf
