#include "bpf/steer.hpp"

#include "steer.skel.h"
#include "bpf/family.hpp"
#include "bpf/pins.hpp"
#include "bpf/fd.hpp"
#include "bpf/libbpf.hpp"
#include "net/listeners.hpp"
#include "net/local.hpp"
#include "net/policy.hpp"
#include "net/tc.hpp"
#include "out/error.hpp"
#include "sys/cgroup.hpp"
#include "sys/fs.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <net/if.h>
#include <netinet/in.h>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace sonic::bpf {

namespace {

const char *const kCounterNames[SONIC_STEER_NR_COUNTERS] = {
	"assigned_established", "assigned_listener",	"redirected",	    "redirected_no_listener",
	"bypassed",		"orig_recorded",	"orig_answered",    "miss_no_rule",
	"drop_no_listener",	"drop_assign_failed",	"passed_malformed",
};

constexpr std::string_view kFamily = "steer";
constexpr std::string_view kGetsockoptLink = "steer_getsockopt";
// The programs attached to each steered cgroup, as links <program>_cg<id>.
const std::string_view kCgroupPrograms[] = {
	SONIC_PROG(steer_bpf, steer_connect4),
	SONIC_PROG(steer_bpf, steer_connect6),
	SONIC_PROG(steer_bpf, steer_sockops),
};

std::string cgroup_link(std::string_view prog, uint64_t id) { return std::string(prog) + "_cg" + std::to_string(id); }

struct SteerObjects {
	Pins pins;
	Fd tc, connect4, connect6, sockops, getsockopt;
	Fd rules, ports, devs;

	explicit SteerObjects(const Bpffs &fs)
		: pins(fs, kFamily), tc(pins.prog(SONIC_PROG(steer_bpf, steer_tc))),
		  connect4(pins.prog(SONIC_PROG(steer_bpf, steer_connect4))),
		  connect6(pins.prog(SONIC_PROG(steer_bpf, steer_connect6))),
		  sockops(pins.prog(SONIC_PROG(steer_bpf, steer_sockops))),
		  getsockopt(pins.prog(SONIC_PROG(steer_bpf, steer_getsockopt))),
		  rules(pins.map(SONIC_MAP(steer_bpf, steer_rules))), ports(pins.map(SONIC_MAP(steer_bpf, steer_ports))),
		  devs(pins.map(SONIC_MAP(steer_bpf, steer_devs)))
	{
	}
};

// ---- rule <-> map value ----------------------------------------------------

struct sonic_steer_rule to_value(const SteerRule &r)
{
	struct sonic_steer_rule v{};
	v.flags = SONIC_STEER_RULE_IN_USE;
	v.kind = r.kind == SteerKind::Dev ? SONIC_STEER_DEV : SONIC_STEER_CGROUP;
	v.family = static_cast<__u8>(r.family);
	v.netns = r.netns;
	v.scope = r.scope;
	if (r.dst) {
		v.dst_prefix = static_cast<__u8>(r.dst->prefix16());
		std::memcpy(v.dst, r.dst->addr.bytes.data(), 16);
	}
	std::memcpy(v.to, r.to.addr.bytes.data(), 16);
	v.to_port = r.to.port;
	v.mark = r.mark;
	v.table = r.table;
	v.nr_ranges = static_cast<__u8>(r.ports.size());
	for (size_t i = 0; i < r.ports.size() && i < SONIC_STEER_MAX_RANGES; ++i)
		v.ranges[i] = {r.ports[i].first, r.ports[i].last};
	return v;
}

SteerRule from_value(uint32_t slot, const struct sonic_steer_rule &v)
{
	SteerRule r;
	r.slot = slot;
	r.kind = v.kind == SONIC_STEER_DEV ? SteerKind::Dev : SteerKind::Cgroup;
	r.family = v.family;
	r.netns = v.netns;
	r.scope = v.scope;
	if (v.dst_prefix > 0) {
		net::Cidr c;
		c.addr.family = v.family;
		std::memcpy(c.addr.bytes.data(), v.dst, 16);
		c.prefix = v.family == AF_INET ? v.dst_prefix - 96u : v.dst_prefix;
		r.dst = c;
	}
	r.to.addr.family = v.family;
	std::memcpy(r.to.addr.bytes.data(), v.to, 16);
	r.to.port = v.to_port;
	r.mark = v.mark;
	r.table = v.table;
	for (unsigned i = 0; i < v.nr_ranges && i < SONIC_STEER_MAX_RANGES; ++i)
		r.ports.push_back({v.ranges[i].first, v.ranges[i].last});
	return r;
}

std::string where_of(const SteerRule &r, uint64_t here);

std::vector<SteerRule> read_rules(const SteerObjects &o)
{
	const uint64_t here = net::netns_cookie();
	std::vector<SteerRule> rules;
	for (uint32_t slot = 0; slot < SONIC_STEER_MAX_RULES; ++slot) {
		struct sonic_steer_rule v{};
		if (bpf_map_lookup_elem(o.rules.get(), &slot, &v) != 0)
			throw errno_error("read steer rule", errno, std::to_string(slot));
		if (!(v.flags & SONIC_STEER_RULE_IN_USE))
			continue;
		rules.push_back(from_value(slot, v));
		rules.back().where = where_of(rules.back(), here);
	}
	return rules;
}

std::string where_of(const SteerRule &r, uint64_t here)
{
	if (r.kind == SteerKind::Cgroup)
		return sys::cgroup_path_of(r.scope);
	if (r.netns != here)
		return "";
	char name[IF_NAMESIZE] = {};
	return if_indextoname(static_cast<unsigned>(r.scope), name) ? name : "";
}

struct sonic_steer_port_key port_key(const SteerRule &r, uint16_t port)
{
	struct sonic_steer_port_key k{};
	k.scope = r.scope;
	k.kind = r.kind == SteerKind::Dev ? SONIC_STEER_DEV : SONIC_STEER_CGROUP;
	k.family = static_cast<__u8>(r.family);
	k.port = port;
	return k;
}

// Sets or clears the rule's bit in the entry of each of its ports.
void index_ports(const SteerObjects &o, const SteerRule &r, bool set)
{
	const uint64_t bit = uint64_t{1} << r.slot;
	for (const net::PortRange &range : r.ports)
		for (unsigned p = range.first; p <= range.last; ++p) {
			auto key = port_key(r, static_cast<uint16_t>(p));
			uint64_t mask = 0;
			bpf_map_lookup_elem(o.ports.get(), &key, &mask);
			mask = set ? mask | bit : mask & ~bit;
			int rc = mask ? bpf_map_update_elem(o.ports.get(), &key, &mask, BPF_ANY)
				      : bpf_map_delete_elem(o.ports.get(), &key);
			if (rc != 0 && !(mask == 0 && errno == ENOENT))
				throw errno_error("index steer rule ports", errno, steer_rule_text(r));
		}
}

bool same_selector(const SteerRule &a, const SteerRule &b)
{
	return a.kind == b.kind && a.netns == b.netns && a.scope == b.scope && a.family == b.family &&
	       a.ports == b.ports && a.dst == b.dst;
}

bool same_target(const SteerRule &a, const SteerRule &b)
{
	return a.to == b.to && a.mark == b.mark && a.table == b.table;
}

bool ports_overlap(const std::vector<net::PortRange> &a, const std::vector<net::PortRange> &b)
{
	for (const auto &x : a)
		for (const auto &y : b)
			if (x.first <= y.last && y.first <= x.last)
				return true;
	return false;
}

SteerRule rule_of(const SteerSpec &spec)
{
	SteerRule r;
	r.kind = spec.kind;
	r.family = spec.family();
	r.ports = spec.ports;
	r.dst = spec.dst;
	r.to = spec.to;
	if (spec.kind == SteerKind::Dev) {
		unsigned idx = if_nametoindex(spec.where.c_str());
		if (idx == 0)
			throw usage_error("find interface", "no such interface", spec.where);
		r.scope = idx;
		r.netns = net::netns_cookie();
		r.where = spec.where;
		r.mark = spec.mark;
		r.table = spec.table;
	} else {
		std::error_code ec;
		if (!std::filesystem::exists(spec.where, ec))
			throw usage_error("find cgroup", "no such cgroup", spec.where);
		sys::Cgroup cg = sys::resolve_cgroup(spec.where);
		r.scope = cg.id;
		r.where = cg.path;
	}
	return r;
}

// ---- attachments -----------------------------------------------------------

struct sonic_steer_dev_key dev_key(uint64_t netns, uint64_t ifindex)
{
	struct sonic_steer_dev_key k{};
	k.netns = netns;
	k.ifindex = static_cast<__u32>(ifindex);
	return k;
}

bool tc_attached(const SteerObjects &o, int ifindex)
{
	uint32_t id = net::tc_ingress_prog(ifindex);
	return id != 0 && id == prog_id(o.tc.get());
}

bool attach_dev(const SteerObjects &o, const SteerRule &r)
{
	if (tc_attached(o, static_cast<int>(r.scope)))
		return false;
	net::TcAttach a = net::tc_attach_ingress(static_cast<int>(r.scope), o.tc.get(), r.where.c_str());
	auto key = dev_key(r.netns, r.scope);
	__u32 flags = 0;
	bool known = bpf_map_lookup_elem(o.devs.get(), &key, &flags) == 0;
	if (a.made_clsact)
		flags |= SONIC_STEER_DEV_MADE_CLSACT;
	if ((!known || a.made_clsact) && bpf_map_update_elem(o.devs.get(), &key, &flags, BPF_ANY) != 0)
		throw errno_error("record steered interface", errno, r.where);
	return true;
}

// Removes sonic's filter from an interface, and the clsact qdisc when sonic
// made it and nothing else is on it. Returns (filter removed, qdisc removed).
std::pair<bool, bool> detach_dev(const SteerObjects *o, uint64_t netns, int ifindex, bool made_clsact_hint)
{
	bool filter = net::tc_detach_ingress(ifindex);
	bool made = made_clsact_hint;
	if (o) {
		auto key = dev_key(netns, static_cast<uint64_t>(ifindex));
		__u32 flags = 0;
		if (bpf_map_lookup_elem(o->devs.get(), &key, &flags) == 0)
			made = made || (flags & SONIC_STEER_DEV_MADE_CLSACT);
		bpf_map_delete_elem(o->devs.get(), &key);
	}
	bool qdisc = made && net::tc_clsact_filters(ifindex) == 0 && net::tc_remove_clsact(ifindex);
	return {filter, qdisc};
}

bool links_present(const Pins &pins, uint64_t cgroup_id)
{
	for (std::string_view p : kCgroupPrograms)
		if (!pins.linked(cgroup_link(p, cgroup_id)))
			return false;
	return true;
}

bool attach_cgroup(const SteerObjects &o, const SteerRule &r)
{
	// The proxy may run in any cgroup: its getsockopt calls are seen from
	// the root.
	bool changed = o.pins.attach_cgroup(o.getsockopt.get(), sys::cgroup2_root_or_throw(), BPF_CGROUP_GETSOCKOPT,
					    kGetsockoptLink);
	const std::pair<int, enum bpf_attach_type> attach[] = {
		{o.connect4.get(), BPF_CGROUP_INET4_CONNECT},
		{o.connect6.get(), BPF_CGROUP_INET6_CONNECT},
		{o.sockops.get(), BPF_CGROUP_SOCK_OPS},
	};
	for (size_t i = 0; i < std::size(attach); ++i)
		changed = o.pins.attach_cgroup(attach[i].first, r.where, attach[i].second,
					       cgroup_link(kCgroupPrograms[i], r.scope)) ||
			  changed;
	return changed;
}

// Drops what no remaining rule needs: the interface's filter, the policy
// routing of (family, mark, table), a cgroup's links, the getsockopt link.
bool release_unused(const SteerObjects &o, const SteerRule &gone, const std::vector<SteerRule> &left)
{
	bool changed = false;
	if (gone.kind == SteerKind::Dev) {
		bool dev_used = false, route_used = false;
		for (const SteerRule &r : left) {
			if (r.kind != SteerKind::Dev || r.netns != gone.netns)
				continue;
			dev_used = dev_used || r.scope == gone.scope;
			route_used = route_used || (r.family == gone.family && r.mark == gone.mark && r.table == gone.table);
		}
		if (!dev_used) {
			auto [filter, qdisc] = detach_dev(&o, gone.netns, static_cast<int>(gone.scope), false);
			changed = changed || filter || qdisc;
		}
		if (!route_used)
			changed = net::remove_policy_route({gone.family, gone.mark, gone.table}) || changed;
		return changed;
	}
	bool cgroup_used = false, any_cgroup = false;
	for (const SteerRule &r : left) {
		if (r.kind != SteerKind::Cgroup)
			continue;
		any_cgroup = true;
		cgroup_used = cgroup_used || r.scope == gone.scope;
	}
	if (!cgroup_used)
		for (std::string_view p : kCgroupPrograms)
			changed = o.pins.unpin_link(cgroup_link(p, gone.scope)) || changed;
	if (!any_cgroup)
		changed = o.pins.unpin_link(kGetsockoptLink) || changed;
	return changed;
}

std::optional<uint32_t> free_slot(const std::vector<SteerRule> &rules)
{
	std::set<uint32_t> used;
	for (const SteerRule &r : rules)
		used.insert(r.slot);
	for (uint32_t s = 0; s < SONIC_STEER_MAX_RULES; ++s)
		if (!used.count(s))
			return s;
	return std::nullopt;
}

void check_conflicts(const SteerRule &want, const std::vector<SteerRule> &rules)
{
	for (const SteerRule &r : rules) {
		if (want.kind == SteerKind::Dev && r.kind == SteerKind::Dev && r.netns == want.netns &&
		    r.mark == want.mark && r.table != want.table)
			throw usage_error("add steer rule",
					  "mark " + std::to_string(want.mark) + " already leads to table " +
						  std::to_string(r.table) + " (rule `" + steer_rule_text(r) + "`)");
		if (r.kind == want.kind && r.netns == want.netns && r.scope == want.scope && r.family == want.family &&
		    r.dst == want.dst && ports_overlap(r.ports, want.ports))
			throw usage_error("add steer rule",
					  "conflicts with rule `" + steer_rule_text(r) +
						  "`: same interface or cgroup, destination and overlapping ports")
				.with_hint("delete that rule first, or use ports it does not cover");
	}
}

} // namespace

SteerRule steer_rule_of(const SteerSpec &spec) { return rule_of(spec); }

std::string_view steer_counter_name(size_t index)
{
	return index < SONIC_STEER_NR_COUNTERS ? kCounterNames[index] : "unknown";
}

std::string steer_rule_text(const SteerRule &r)
{
	std::string s = r.kind == SteerKind::Dev ? "dev " : "cgroup ";
	if (!r.where.empty())
		s += r.where;
	else
		s += (r.kind == SteerKind::Dev ? "ifindex " : "id ") + std::to_string(r.scope);
	s += " proto tcp dport " + net::format_port_list(r.ports);
	if (r.dst)
		s += " dst " + net::to_string(*r.dst);
	s += " to " + net::to_string(r.to);
	if (r.kind == SteerKind::Dev) {
		std::ostringstream mark;
		mark << "0x" << std::hex << r.mark;
		s += " mark " + mark.str() + " table " + std::to_string(r.table);
	}
	return s;
}

SteerChange steer_add(const Bpffs &fs, const SteerSpec &spec)
{
	SteerChange c;
	c.rule = rule_of(spec);
	fs.ensure();
	Fd lock = fs.lock();
	c.loaded = require_family(fs, builtin_family(kFamily));
	c.changed = c.loaded;
	SteerObjects o(fs);
	std::vector<SteerRule> rules = read_rules(o);

	std::optional<SteerRule> existing;
	for (const SteerRule &r : rules)
		if (same_selector(r, c.rule)) {
			if (!same_target(r, c.rule))
				throw usage_error("add steer rule", "a rule for the same traffic goes elsewhere: `" +
									    steer_rule_text(r) + "`")
					.with_hint("delete it first");
			existing = r;
		}
	if (!existing) {
		check_conflicts(c.rule, rules);
		auto slot = free_slot(rules);
		if (!slot)
			throw usage_error("add steer rule",
					  "all " + std::to_string(SONIC_STEER_MAX_RULES) + " rule slots are in use");
		c.rule.slot = *slot;
		// The rule first, then its ports: the programs find a rule only
		// through its ports.
		struct sonic_steer_rule v = to_value(c.rule);
		if (bpf_map_update_elem(o.rules.get(), &c.rule.slot, &v, BPF_ANY) != 0)
			throw errno_error("write steer rule", errno, steer_rule_text(c.rule));
		index_ports(o, c.rule, true);
		c.changed = true;
	} else {
		c.rule.slot = existing->slot;
	}
	// Attachments are made (again) even for an existing rule, so `add`
	// repairs what someone removed by hand.
	if (c.rule.kind == SteerKind::Dev) {
		c.changed = net::ensure_policy_route({c.rule.family, c.rule.mark, c.rule.table}) || c.changed;
		c.changed = attach_dev(o, c.rule) || c.changed;
	} else {
		c.changed = attach_cgroup(o, c.rule) || c.changed;
	}
	return c;
}

SteerChange steer_del(const Bpffs &fs, const SteerSpec &spec)
{
	SteerChange c;
	c.rule = rule_of(spec);
	if (!family_maps_usable(fs, builtin_family(kFamily)))
		return c;
	Fd lock = fs.lock();
	SteerObjects o(fs);
	std::vector<SteerRule> rules = read_rules(o);
	auto it = std::find_if(rules.begin(), rules.end(), [&](const SteerRule &r) { return same_selector(r, c.rule); });
	if (it == rules.end())
		return c;
	if (!same_target(*it, c.rule))
		throw usage_error("delete steer rule", "the rule for this traffic goes elsewhere: `" +
							      steer_rule_text(*it) + "`");
	SteerRule gone = *it;
	rules.erase(it);
	index_ports(o, gone, false);
	struct sonic_steer_rule empty{};
	if (bpf_map_update_elem(o.rules.get(), &gone.slot, &empty, BPF_ANY) != 0)
		throw errno_error("delete steer rule", errno, steer_rule_text(gone));
	release_unused(o, gone, rules);
	c.rule.slot = gone.slot;
	c.changed = true;
	return c;
}

std::vector<SteerRuleState> steer_list(const Bpffs &fs)
{
	std::vector<SteerRuleState> out;
	if (!family_maps_usable(fs, builtin_family(kFamily)))
		return out;
	Fd lock = fs.lock();
	SteerObjects o(fs);
	const uint64_t here = net::netns_cookie();
	for (SteerRule &r : read_rules(o)) {
		SteerRuleState st;
		st.listener = !net::listeners_of(r.to).empty();
		if (r.kind == SteerKind::Dev) {
			st.this_netns = r.netns == here;
			if (st.this_netns) {
				st.attached = tc_attached(o, static_cast<int>(r.scope));
				net::PolicyState p = net::policy_route_state({r.family, r.mark, r.table});
				st.routing = p.rule && p.route;
			} else {
				st.listener = false; // cannot be seen from here
			}
		} else {
			st.attached = !r.where.empty() && links_present(o.pins, r.scope) && o.pins.linked(kGetsockoptLink);
			st.routing = true;
		}
		st.rule = std::move(r);
		out.push_back(std::move(st));
	}
	return out;
}

SteerFlush steer_flush(const Bpffs &fs)
{
	std::optional<Fd> lock;
	if (fs.present())
		lock = fs.lock();
	return steer_flush_locked(fs);
}

SteerFlush steer_flush_locked(const Bpffs &fs)
{
	SteerFlush f;
	const uint64_t here = net::netns_cookie();
	std::optional<SteerObjects> o;
	if (fs.present() && family_maps_usable(fs, builtin_family(kFamily)))
		o.emplace(fs);
	std::set<int> devs;
	if (o) {
		for (const SteerRule &r : read_rules(*o)) {
			if (r.kind == SteerKind::Dev && r.netns != here) {
				++f.other_netns_rules;
				continue;
			}
			index_ports(*o, r, false);
			struct sonic_steer_rule empty{};
			if (bpf_map_update_elem(o->rules.get(), &r.slot, &empty, BPF_ANY) != 0)
				throw errno_error("delete steer rule", errno, steer_rule_text(r));
			++f.rules;
		}
	}
	// Every interface of this namespace: a filter left by a crash or by
	// another bpffs root is sonic's when its program is steer_tc.
	if (struct if_nameindex *names = if_nameindex()) {
		for (struct if_nameindex *n = names; n->if_index != 0; ++n) {
			int idx = static_cast<int>(n->if_index);
			uint32_t id = net::tc_ingress_prog(idx);
			if (id == 0)
				continue;
			Fd prog(bpf_prog_get_fd_by_id(id));
			struct bpf_prog_info info{};
			__u32 len = sizeof(info);
			if (!prog || bpf_obj_get_info_by_fd(prog.get(), &info, &len) != 0 ||
			    std::string_view(info.name) != SONIC_PROG(steer_bpf, steer_tc))
				continue;
			devs.insert(idx);
		}
		if_freenameindex(names);
	}
	for (int idx : devs) {
		auto [filter, qdisc] = detach_dev(o ? &*o : nullptr, here, idx, false);
		f.filters += filter;
		f.qdiscs += qdisc;
	}
	for (const net::PolicyRoute &p : net::sonic_policy_routes())
		f.routes += net::remove_policy_route(p);
	if (fs.present()) {
		const Pins pins(fs, kFamily);
		for (const std::string &name : pins.links("steer_"))
			f.links += pins.unpin_link(name);
	}
	f.changed = f.rules || f.filters || f.qdiscs || f.routes || f.links;
	return f;
}

SteerCounters steer_counters(const Bpffs &fs)
{
	if (!family_maps_usable(fs, builtin_family(kFamily)))
		throw env_error("read steer counters", "steer is not loaded", fs.root())
			.with_hint("run `sonic tproxy add ...` or `sonic prog load steer` first");
	const Pins pins(fs, kFamily);
	Fd rules = pins.map(SONIC_MAP(steer_bpf, steer_rules));
	const auto stats = sum_per_cpu<struct sonic_steer_stats>(pins.map(SONIC_MAP(steer_bpf, steer_stats)).get(),
								 "read steer counters");
	SteerCounters c;
	std::copy(std::begin(stats.counter), std::end(stats.counter), c.counter.begin());
	for (uint32_t slot = 0; slot < SONIC_STEER_MAX_RULES; ++slot) {
		struct sonic_steer_rule v{};
		if (bpf_map_lookup_elem(rules.get(), &slot, &v) == 0 && (v.flags & SONIC_STEER_RULE_IN_USE))
			++c.rules;
	}
	return c;
}

std::optional<sockaddr_storage> original_destination(int fd)
{
	sockaddr_storage ss{};
	socklen_t len = sizeof(ss);
	if (getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0)
		return std::nullopt;
	const int level = ss.ss_family == AF_INET6 ? SOL_IPV6 : SOL_IP;
	sockaddr_storage orig{};
	socklen_t olen = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
	constexpr int kSoOriginalDst = 80; // SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST
	if (getsockopt(fd, level, kSoOriginalDst, &orig, &olen) == 0)
		return orig;
	return ss;
}

} // namespace sonic::bpf
