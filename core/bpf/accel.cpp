#include "bpf/accel.hpp"

#include "bpf/family.hpp"
#include "bpf/fd.hpp"
#include "bpf/libbpf.hpp"
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

constexpr const char *kMsgLink = "accel_msg";
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

// Pinned objects of a loaded accel family.
struct AccelObjects {
	Fd sockops, msg, release;
	Fd socks, sk, cg, ports, local, stats, drain, iter, proxy_listen;

	explicit AccelObjects(const Bpffs &fs)
	{
		const std::string op = "open accel objects";
		sockops = open_pinned_or_throw(fs.prog_path("accel_sockops"), op);
		msg = open_pinned_or_throw(fs.prog_path("accel_msg"), op);
		release = open_pinned_or_throw(fs.prog_path("accel_release"), op);
		socks = open_pinned_or_throw(fs.map_path("accel_socks"), op);
		sk = open_pinned_or_throw(fs.map_path("accel_sk"), op);
		cg = open_pinned_or_throw(fs.map_path("accel_cg"), op);
		ports = open_pinned_or_throw(fs.map_path("accel_ports"), op);
		local = open_pinned_or_throw(fs.map_path("accel_local"), op);
		stats = open_pinned_or_throw(fs.map_path("accel_stats"), op);
		drain = open_pinned_or_throw(fs.map_path("accel_drain"), op);
		iter = open_pinned_or_throw(fs.map_path("accel_iter"), op);
		proxy_listen = open_pinned_or_throw(fs.map_path("accel_proxy_listen"), op);
	}
};

struct LinkInfo {
	uint32_t id = 0;
	uint32_t prog_id = 0;
	uint64_t cgroup_id = 0;
};

LinkInfo link_info(int fd)
{
	struct bpf_link_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
		throw errno_error("read link info", errno);
	LinkInfo li;
	li.id = info.id;
	li.prog_id = info.prog_id;
	if (info.type == BPF_LINK_TYPE_CGROUP)
		li.cgroup_id = info.cgroup.cgroup_id;
	return li;
}

void pin_link(int fd, const std::string &path)
{
	if (bpf_obj_pin(fd, path.c_str()) != 0)
		throw errno_error("pin link", errno, path);
}

// Attaches accel_msg to the SOCKHASH once, as a pinned link where the kernel
// supports sockmap links (6.10+), else as a map attachment, which lives as
// long as the map does.
bool attach_msg(const Bpffs &fs, const AccelObjects &o)
{
	const std::string path = fs.link_path(kMsgLink);
	if (open_pinned(path))
		return false;
	int fd = bpf_link_create(o.msg.get(), o.socks.get(), BPF_SK_MSG_VERDICT, nullptr);
	if (fd >= 0) {
		Fd link(fd);
		pin_link(link.get(), path);
		return true;
	}
	int err = errno;
	if (err != EINVAL && err != EOPNOTSUPP && err != 524 /* ENOTSUPP */)
		throw errno_error("attach accel_msg to accel_socks", err);
	__u32 ids[4] = {};
	__u32 count = 4;
	if (bpf_prog_query(o.socks.get(), BPF_SK_MSG_VERDICT, 0, nullptr, ids, &count) == 0 && count > 0 &&
	    ids[0] == prog_id(o.msg.get()))
		return false;
	if (bpf_prog_attach(o.msg.get(), o.socks.get(), BPF_SK_MSG_VERDICT, 0) != 0)
		throw errno_error("attach accel_msg to accel_socks", errno);
	return true;
}

bool msg_attached(const Bpffs &fs, const AccelObjects &o)
{
	if (open_pinned(fs.link_path(kMsgLink)))
		return true;
	__u32 ids[4] = {};
	__u32 count = 4;
	return bpf_prog_query(o.socks.get(), BPF_SK_MSG_VERDICT, 0, nullptr, ids, &count) == 0 && count > 0;
}

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

// Every key of a hash map.
template <typename Key> std::vector<Key> map_keys(int map_fd)
{
	std::vector<Key> keys;
	Key cur{}, next{};
	void *prev = nullptr;
	while (bpf_map_get_next_key(map_fd, prev, &next) == 0) {
		keys.push_back(next);
		cur = next;
		prev = &cur;
	}
	return keys;
}

// Turns the entries HAVE of a hash map into WANT: deletes the keys of HAVE
// not in WANT, and writes the keys of WANT not in HAVE with VALUE. Returns
// whether anything changed; OP names a write that fails.
template <typename Key, typename Value>
bool replace_keys(int map_fd, const std::vector<Key> &have, const std::vector<Key> &want, const Value &value,
		  const std::string &op)
{
	auto in = [](const std::vector<Key> &list, const Key &k) {
		return std::any_of(list.begin(), list.end(),
				   [&](const Key &x) { return std::memcmp(&x, &k, sizeof(Key)) == 0; });
	};
	bool changed = false;
	for (const Key &k : have)
		if (!in(want, k) && bpf_map_delete_elem(map_fd, &k) == 0)
			changed = true;
	for (const Key &k : want) {
		if (in(have, k))
			continue;
		if (bpf_map_update_elem(map_fd, &k, &value, BPF_ANY) != 0)
			throw errno_error(op, errno);
		changed = true;
	}
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

uint64_t count_keys(int map_fd, size_t key_size)
{
	std::vector<uint8_t> cur(key_size), next(key_size);
	uint64_t n = 0;
	void *prev = nullptr;
	while (bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
		++n;
		cur.swap(next);
		prev = cur.data();
	}
	return n;
}

void clear_map(int map_fd, size_t key_size)
{
	std::vector<uint8_t> key(key_size);
	while (bpf_map_get_next_key(map_fd, nullptr, key.data()) == 0)
		if (bpf_map_delete_elem(map_fd, key.data()) != 0)
			break;
}

// One pass of accel_release over the SOCKHASH.
struct sonic_accel_iter run_iterator(const AccelObjects &o, uint32_t op, uint64_t cgroup_id)
{
	struct sonic_accel_iter it{};
	it.op = op;
	it.cgroup_id = cgroup_id;
	__u32 zero = 0;
	if (bpf_map_update_elem(o.iter.get(), &zero, &it, BPF_ANY) != 0)
		throw errno_error("configure release iterator", errno);

	union bpf_iter_link_info info{};
	info.map.map_fd = static_cast<__u32>(o.socks.get());
	LIBBPF_OPTS(bpf_link_create_opts, opts, .iter_info = &info, .iter_info_len = sizeof(info));
	Fd link(bpf_link_create(o.release.get(), 0, BPF_TRACE_ITER, &opts));
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
	if (bpf_map_lookup_elem(o.iter.get(), &zero, &it) != 0)
		throw errno_error("read release iterator results", errno);
	return it;
}

// Marks the sockets of CGROUP_ID (0: all) and their peers draining, then
// removes each from the SOCKHASH once its redirected data has been read.
ReleaseReport release(const AccelObjects &o, uint64_t cgroup_id, std::chrono::milliseconds timeout)
{
	ReleaseReport r;
	r.marked = run_iterator(o, SONIC_ACCEL_ITER_MARK, cgroup_id).marked;
	r.marked += run_iterator(o, SONIC_ACCEL_ITER_MARK_PEERS, 0).marked;
	clear_map(o.drain.get(), sizeof(struct sonic_accel_key));
	std::this_thread::sleep_for(kGrace);
	const auto deadline = Clock::now() + timeout;
	for (;;) {
		struct sonic_accel_iter pass = run_iterator(o, SONIC_ACCEL_ITER_RELEASE, 0);
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
	const std::string port = std::to_string(e.port);
	if (!e.addr[0] && !e.addr[1] && !e.addr[2] && !e.addr[3])
		return "*:" + port;
	char buf[INET6_ADDRSTRLEN] = {};
	if (!e.addr[0] && !e.addr[1] && e.addr[2] == htonl(0xffff)) {
		inet_ntop(AF_INET, &e.addr[3], buf, sizeof(buf));
		return std::string(buf) + ":" + port;
	}
	inet_ntop(AF_INET6, e.addr, buf, sizeof(buf));
	return "[" + std::string(buf) + "]:" + port;
}

void detach_link(const std::string &path)
{
	if (unlink(path.c_str()) != 0 && errno != ENOENT)
		throw errno_error("detach link", errno, path);
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

	r.loaded = load_family(fs, builtin_family("accel")).changed;
	r.changed = r.loaded;
	AccelObjects o(fs);
	r.changed |= attach_msg(fs, o);
	auto [addrs_changed, addrs] = sync_local_addresses(o);
	r.changed |= addrs_changed;
	r.local_addresses = addrs;

	const std::string link_path = fs.link_path(cgroup_link_name(r.cgroup.id));
	if (!open_pinned(link_path)) {
		Fd cg(open(r.cgroup.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		if (!cg)
			throw errno_error("open cgroup", errno, r.cgroup.path);
		Fd link(bpf_link_create(o.sockops.get(), cg.get(), BPF_CGROUP_SOCK_OPS, nullptr));
		if (!link)
			throw errno_error("attach accel_sockops", errno, r.cgroup.path);
		pin_link(link.get(), link_path);
		r.changed = true;
	}
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

// Links whose cgroup was removed: the kernel keeps them pinned but detached
// (their cgroup id reads 0), so only their pin names still say which cgroup
// they served.
std::vector<uint64_t> defunct_cgroups(const Bpffs &fs)
{
	std::vector<uint64_t> ids;
	for (const std::string &name : fs.list("link")) {
		auto id = link_name_cgroup(name);
		auto link = id ? open_pinned(fs.link_path(name)) : std::nullopt;
		if (link && link_info(link->get()).cgroup_id == 0)
			ids.push_back(*id);
	}
	return ids;
}

// Detaches the link of cgroup ID and hands its sockets back.
bool disable_cgroup(const Bpffs &fs, const AccelObjects &o, uint64_t id, std::chrono::milliseconds timeout,
		    ReleaseReport &report)
{
	bool detached = false;
	const std::string link_path = fs.link_path(cgroup_link_name(id));
	if (open_pinned(link_path)) {
		detach_link(link_path);
		detached = true;
	}
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
		    !family_maps_usable(fs, builtin_family("accel")))
			throw;
		Fd lock = fs.lock();
		AccelObjects o(fs);
		r.removed_cgroups = defunct_cgroups(fs);
		if (r.removed_cgroups.empty())
			throw;
		r.cgroup.path = *cgroup_path;
		for (uint64_t id : r.removed_cgroups)
			r.detached |= disable_cgroup(fs, o, id, timeout, r.release);
		r.changed = true;
		return r;
	}
	if (!family_maps_usable(fs, builtin_family("accel")))
		return r;
	Fd lock = fs.lock();
	AccelObjects o(fs);
	r.detached = disable_cgroup(fs, o, r.cgroup.id, timeout, r.release);
	r.changed = r.detached || r.release.marked > 0 || r.release.released > 0;
	if (r.release.pending > 0)
		log::warn(std::to_string(r.release.pending) +
			  " accelerated socket(s) still hold redirected data their application has not read; "
			  "they carry on over the normal stack and `sonic accel disable` releases them later");
	return r;
}

uint64_t accel_pinned_sockets(const Bpffs &fs)
{
	auto socks = open_pinned(fs.map_path("accel_socks"));
	if (!socks)
		return 0;
	struct bpf_map_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(socks->get(), &info, &len) != 0)
		throw errno_error("inspect accel_socks", errno, fs.map_path("accel_socks"));
	return count_keys(socks->get(), info.key_size);
}

ReleaseReport accel_release_all(const Bpffs &fs, std::chrono::milliseconds timeout)
{
	AccelObjects o(fs);
	const std::string prefix = kCgroupLinkPrefix;
	for (const std::string &name : fs.list("link"))
		if (name.compare(0, prefix.size(), prefix) == 0)
			detach_link(fs.link_path(name));
	return release(o, 0, timeout);
}

AccelStatus accel_status(const Bpffs &fs)
{
	AccelStatus s;
	if (!family_maps_usable(fs, builtin_family("accel")))
		return s;
	s.loaded = true;
	Fd lock = fs.lock();
	AccelObjects o(fs);
	s.msg_attached = msg_attached(fs, o);
	const std::string prefix = kCgroupLinkPrefix;
	for (const std::string &name : fs.list("link")) {
		if (name.compare(0, prefix.size(), prefix) != 0)
			continue;
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
	s.sockets = count_keys(o.socks.get(), sizeof(struct sonic_accel_key));
	struct sonic_accel_iter counted = run_iterator(o, SONIC_ACCEL_ITER_COUNT, 0);
	s.draining = counted.pending;
	s.pending_bytes = counted.pending_bytes;
	s.local_addresses = count_keys(o.local.get(), sizeof(struct sonic_accel_local_key));
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
		if (!family_maps_usable(fs, builtin_family("accel"))) {
			unavailable = "the accel BPF family is not loaded under " + fs.root() +
				      " (run `sonic accel enable scope proxy`)";
			return nullptr;
		}
		const std::string op = "open accel maps";
		Fd map = open_pinned_or_throw(fs.map_path("accel_proxy_listen"), op);
		Fd sk = open_pinned_or_throw(fs.map_path("accel_sk"), op);
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
	auto pinned = open_pinned(fs.map_path("accel_proxy_listen"));
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
	if (!family_maps_usable(fs, builtin_family("accel")))
		throw env_error("read accel counters", "accel is not loaded", fs.root())
			.with_hint("run `sonic accel enable` first");
	Fd stats = open_pinned_or_throw(fs.map_path("accel_stats"), "read accel counters");
	Fd socks = open_pinned_or_throw(fs.map_path("accel_socks"), "read accel counters");
	int ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		throw kernel_error("read accel counters", "cannot count possible CPUs");
	std::vector<struct sonic_accel_stats> per_cpu(static_cast<size_t>(ncpus));
	__u32 zero = 0;
	if (bpf_map_lookup_elem(stats.get(), &zero, per_cpu.data()) != 0)
		throw errno_error("read accel counters", errno, fs.map_path("accel_stats"));
	AccelCounters c;
	for (const auto &cpu : per_cpu)
		for (size_t i = 0; i < SONIC_ACCEL_NR_COUNTERS; ++i)
			c.counter[i] += cpu.counter[i];
	c.sockets = count_keys(socks.get(), sizeof(struct sonic_accel_key));
	return c;
}

} // namespace sonic::bpf
