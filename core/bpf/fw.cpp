#include "bpf/fw.hpp"

#include "fw.skel.h"
#include "bpf/family.hpp"
#include "bpf/libbpf.hpp"
#include "net/local.hpp"
#include "out/error.hpp"
#include "out/log.hpp"

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <map>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <tuple>

namespace sonic::bpf {

namespace {

const char *const kCounterNames[SONIC_FW_NR_COUNTERS] = {
	"packets",	     "bytes",	      "passed",		"passed_rule",	    "dropped_rule",	"dropped_blocklist",
	"limit_passed",	     "limit_dropped", "passed_not_ip",	"passed_malformed", "fragments",	"flows_failed",
};

constexpr std::string_view kXdpLinkPrefix = "fw_xdp_";

struct FwObjects {
	Pins pins;
	Fd xdp, rules, rule_stats, src, dst, ports, config, buckets, blocklist;

	explicit FwObjects(const Bpffs &fs)
		: pins(fs, kFwFamily), xdp(pins.prog(SONIC_PROG(fw_bpf, fw_xdp))),
		  rules(pins.map(SONIC_MAP(fw_bpf, fw_rules))), rule_stats(pins.map(SONIC_MAP(fw_bpf, fw_rule_stats))),
		  src(pins.map(SONIC_MAP(fw_bpf, fw_src))), dst(pins.map(SONIC_MAP(fw_bpf, fw_dst))),
		  ports(pins.map(SONIC_MAP(fw_bpf, fw_ports))), config(pins.map(SONIC_MAP(fw_bpf, fw_config))),
		  buckets(pins.map(SONIC_MAP(fw_bpf, fw_buckets))),
		  blocklist(pins.map(SONIC_MAP(fw_bpf, fw_blocklist)))
	{
	}
};

const Family &fw_family() { return builtin_family(kFwFamily); }

// ---- interfaces ------------------------------------------------------------

std::string xdp_link(uint64_t netns, int ifindex)
{
	return std::string(kXdpLinkPrefix) + std::to_string(netns) + "_" + std::to_string(ifindex);
}

// The netns cookie and ifindex a link's name carries.
std::optional<std::pair<uint64_t, int>> parse_xdp_link(std::string_view name)
{
	if (name.substr(0, kXdpLinkPrefix.size()) != kXdpLinkPrefix)
		return std::nullopt;
	name.remove_prefix(kXdpLinkPrefix.size());
	const size_t sep = name.find('_');
	if (sep == std::string_view::npos)
		return std::nullopt;
	uint64_t netns = 0;
	int ifindex = 0;
	auto a = std::from_chars(name.data(), name.data() + sep, netns);
	auto b = std::from_chars(name.data() + sep + 1, name.data() + name.size(), ifindex);
	if (a.ec != std::errc() || b.ec != std::errc() || b.ptr != name.data() + name.size())
		return std::nullopt;
	return std::pair{netns, ifindex};
}

std::string ifname_of(uint32_t ifindex)
{
	char name[IF_NAMESIZE] = {};
	return if_indextoname(ifindex, name) ? name : "";
}

int ifindex_of(const std::string &dev)
{
	const unsigned idx = if_nametoindex(dev.c_str());
	if (idx == 0)
		throw usage_error("find interface", "no such interface", dev);
	return static_cast<int>(idx);
}

// ---- rules <-> map values -----------------------------------------------

void put_prefix(const std::optional<net::Cidr> &c, __u8 &len, __u8 out[16])
{
	if (!c)
		return;
	len = static_cast<__u8>(c->prefix16());
	std::memcpy(out, c->addr.bytes.data(), 16);
}

std::optional<net::Cidr> get_prefix(__u8 len, const __u8 in[16], bool present)
{
	if (!present)
		return std::nullopt;
	return net::cidr_of_ipv6_form(in, len);
}

struct sonic_fw_rule to_value(const FwRule &r)
{
	struct sonic_fw_rule v{};
	v.flags = SONIC_FW_RULE_IN_USE | (r.spec.syn ? SONIC_FW_RULE_SYN : 0) | (r.spec.src ? SONIC_FW_RULE_SRC : 0) |
		  (r.spec.dst ? SONIC_FW_RULE_DST : 0);
	v.id = r.id;
	v.ifindex = r.ifindex;
	v.action = r.spec.action == FwAction::Drop ? SONIC_FW_DROP
		   : r.spec.action == FwAction::Pass ? SONIC_FW_PASS
						     : SONIC_FW_LIMIT;
	v.proto = r.spec.proto;
	v.family = static_cast<__u8>(r.spec.family());
	put_prefix(r.spec.src, v.src_prefix, v.src);
	put_prefix(r.spec.dst, v.dst_prefix, v.dst);
	v.nr_ranges = static_cast<__u8>(r.spec.dport.size());
	for (size_t i = 0; i < r.spec.dport.size() && i < SONIC_FW_MAX_RANGES; ++i)
		v.ranges[i] = {r.spec.dport[i].first, r.spec.dport[i].last};
	if (r.spec.action == FwAction::Limit) {
		v.rate = r.spec.rate.packets;
		v.rate_unit = static_cast<__u16>(r.spec.rate.unit_s);
		v.burst = r.spec.rate.burst;
		v.interval_ns = r.spec.rate.interval_ns();
		v.tolerance_ns = v.interval_ns * (r.spec.rate.burst - 1);
	}
	return v;
}

FwRule from_value(uint32_t slot, const struct sonic_fw_rule &v)
{
	FwRule r;
	r.slot = slot;
	r.id = v.id;
	r.ifindex = v.ifindex;
	if (v.ifindex) {
		r.spec.dev = ifname_of(v.ifindex);
		if (r.spec.dev.empty())
			r.spec.dev = "ifindex " + std::to_string(v.ifindex);
	}
	r.spec.action = v.action == SONIC_FW_DROP ? FwAction::Drop
			: v.action == SONIC_FW_PASS ? FwAction::Pass
						    : FwAction::Limit;
	r.spec.proto = v.proto;
	r.spec.syn = v.flags & SONIC_FW_RULE_SYN;
	r.spec.src = get_prefix(v.src_prefix, v.src, v.flags & SONIC_FW_RULE_SRC);
	r.spec.dst = get_prefix(v.dst_prefix, v.dst, v.flags & SONIC_FW_RULE_DST);
	for (unsigned i = 0; i < v.nr_ranges && i < SONIC_FW_MAX_RANGES; ++i)
		r.spec.dport.push_back({v.ranges[i].first, v.ranges[i].last});
	if (r.spec.action == FwAction::Limit)
		r.spec.rate = {v.rate, v.rate_unit, v.burst};
	return r;
}

void add_stats(const FwObjects &o, FwRule &r)
{
	std::vector<uint8_t> raw;
	const size_t ncpus = read_per_cpu(o.rule_stats.get(), raw, sizeof(struct sonic_fw_rule_stats),
					  "read fw rule counters", r.slot);
	for (size_t cpu = 0; cpu < ncpus; ++cpu) {
		struct sonic_fw_rule_stats s;
		std::memcpy(&s, raw.data() + cpu * sizeof(s), sizeof(s));
		r.packets += s.packets;
		r.bytes += s.bytes;
		r.limited += s.limited;
		r.limited_bytes += s.limited_bytes;
	}
}

// The rules in use, in the order they apply.
std::vector<FwRule> read_rules(const FwObjects &o, bool with_stats)
{
	std::vector<FwRule> rules;
	for (uint32_t slot = 0; slot < SONIC_FW_MAX_RULES; ++slot) {
		struct sonic_fw_rule v{};
		if (bpf_map_lookup_elem(o.rules.get(), &slot, &v) != 0)
			throw errno_error("read fw rule", errno, std::to_string(slot));
		if (!(v.flags & SONIC_FW_RULE_IN_USE))
			continue;
		rules.push_back(from_value(slot, v));
		if (with_stats)
			add_stats(o, rules.back());
	}
	std::sort(rules.begin(), rules.end(), [](const FwRule &a, const FwRule &b) { return a.id < b.id; });
	return rules;
}

struct sonic_fw_config read_config(const FwObjects &o)
{
	struct sonic_fw_config c{};
	__u32 zero = 0;
	if (bpf_map_lookup_elem(o.config.get(), &zero, &c) != 0)
		throw errno_error("read fw config", errno);
	return c;
}

void zero_stats(const FwObjects &o, uint32_t slot)
{
	const int ncpus = libbpf_num_possible_cpus();
	std::vector<uint8_t> zeros(static_cast<size_t>(std::max(ncpus, 1)) * sizeof(struct sonic_fw_rule_stats), 0);
	if (bpf_map_update_elem(o.rule_stats.get(), &slot, zeros.data(), BPF_ANY) != 0)
		throw errno_error("reset fw rule counters", errno, std::to_string(slot));
}

void write_slot(const FwObjects &o, uint32_t slot, const struct sonic_fw_rule &v, const std::string &what)
{
	if (bpf_map_update_elem(o.rules.get(), &slot, &v, BPF_ANY) != 0)
		throw errno_error("write fw rule", errno, what);
}

// ---- indexes -------------------------------------------------------------

struct Prefix {
	unsigned len = 0; // IPv6 form
	net::Addr16 addr{};
	bool operator<(const Prefix &o) const { return std::tie(len, addr) < std::tie(o.len, o.addr); }
};

Prefix prefix_of(const std::optional<net::Cidr> &c)
{
	return c ? Prefix{c->prefix16(), c->addr.bytes} : Prefix{};
}

bool covers(const Prefix &outer, const Prefix &inner)
{
	if (outer.len > inner.len)
		return false;
	for (unsigned bit = 0; bit < outer.len; ++bit) {
		const uint8_t m = 0x80 >> (bit % 8);
		if ((outer.addr[bit / 8] & m) != (inner.addr[bit / 8] & m))
			return false;
	}
	return true;
}

// One trie's entries: every rule's prefix (and ::/0), each holding the
// slots of the rules whose prefix covers it. The longest prefix that
// matches an address then holds exactly the rules matching it.
std::vector<std::pair<RawBytes, RawBytes>> trie_entries(const std::vector<FwRule> &rules,
						  std::optional<net::Cidr> FwRuleSpec::*field)
{
	std::map<Prefix, uint64_t> masks;
	masks[Prefix{}] = 0;
	for (const FwRule &r : rules)
		masks[prefix_of(r.spec.*field)] = 0;
	for (auto &[p, mask] : masks)
		for (const FwRule &r : rules)
			if (covers(prefix_of(r.spec.*field), p))
				mask |= uint64_t{1} << r.slot;
	std::vector<std::pair<RawBytes, RawBytes>> out;
	for (const auto &[p, mask] : masks) {
		struct sonic_fw_lpm_key k{};
		k.prefixlen = p.len;
		std::memcpy(k.addr, p.addr.data(), 16);
		out.emplace_back(bytes_of(k), bytes_of(mask));
	}
	return out;
}

// Makes the indexes and the config say RULES: the tries, the port index and
// the rules without dport. Entries are written before stale ones go, so a
// rule added is found as soon as its bits are in, and one deleted stops
// matching before its slot is cleared.
void write_indexes(const FwObjects &o, const std::vector<FwRule> &rules, uint32_t next_id)
{
	sync_entries(o.src.get(), trie_entries(rules, &FwRuleSpec::src), std::string(SONIC_MAP(fw_bpf, fw_src)));
	sync_entries(o.dst.get(), trie_entries(rules, &FwRuleSpec::dst), std::string(SONIC_MAP(fw_bpf, fw_dst)));
	std::map<std::pair<uint8_t, uint16_t>, uint64_t> ports;
	struct sonic_fw_config cfg{};
	for (const FwRule &r : rules) {
		const uint64_t bit = uint64_t{1} << r.slot;
		if (r.spec.dport.empty())
			cfg.any_port |= bit;
		for (const net::PortRange &range : r.spec.dport)
			for (unsigned p = range.first; p <= range.last; ++p)
				ports[{r.spec.proto, static_cast<uint16_t>(p)}] |= bit;
	}
	std::vector<std::pair<RawBytes, RawBytes>> port_entries;
	for (const auto &[key, mask] : ports) {
		struct sonic_fw_port_key k{};
		k.proto = key.first;
		k.port = key.second;
		port_entries.emplace_back(bytes_of(k), bytes_of(mask));
	}
	sync_entries(o.ports.get(), port_entries, std::string(SONIC_MAP(fw_bpf, fw_ports)));
	cfg.rules = static_cast<__u32>(rules.size());
	cfg.next_id = next_id;
	__u32 zero = 0;
	if (bpf_map_update_elem(o.config.get(), &zero, &cfg, BPF_ANY) != 0)
		throw errno_error("write fw config", errno);
}

// The rule SPEC describes, with its interface resolved (exit 1 if missing).
FwRule rule_of(const FwRuleSpec &spec)
{
	FwRule r;
	r.spec = spec;
	if (!spec.dev.empty())
		r.ifindex = static_cast<uint32_t>(ifindex_of(spec.dev));
	return r;
}

bool same_action(const FwRuleSpec &a, const FwRuleSpec &b)
{
	return a.action == b.action && (a.action != FwAction::Limit || a.rate == b.rate);
}

bool dev_attached(const Bpffs &fs, uint32_t ifindex)
{
	for (const FwAttachment &a : fw_attachments(fs))
		if (a.this_netns && a.mode && (ifindex == 0 || a.ifindex == static_cast<int>(ifindex)))
			return true;
	return false;
}

} // namespace

std::string_view fw_counter_name(size_t index)
{
	return index < SONIC_FW_NR_COUNTERS ? kCounterNames[index] : "unknown";
}

uint64_t mono_now_ns()
{
	struct timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

int64_t mono_ns_to_unix_ms(uint64_t mono_ns)
{
	struct timespec real{};
	clock_gettime(CLOCK_REALTIME, &real);
	const int64_t now_ms = static_cast<int64_t>(real.tv_sec) * 1000 + real.tv_nsec / 1000000;
	return now_ms - (static_cast<int64_t>(mono_now_ns()) - static_cast<int64_t>(mono_ns)) / 1000000;
}

// ---- interfaces ------------------------------------------------------------

FwAttachChange fw_attach(const Bpffs &fs, const std::string &dev, std::optional<XdpMode> mode)
{
	const int ifindex = ifindex_of(dev);
	FwAttachChange c;
	fs.ensure();
	Fd lock = fs.lock();
	c.loaded = require_family(fs, fw_family());
	c.changed = c.loaded;
	FwObjects o(fs);
	const std::string link = xdp_link(net::netns_cookie(), ifindex);
	if (auto info = link_info(fs.link_path(link))) {
		const XdpState st = xdp_state(ifindex);
		if (info->ifindex == ifindex && st.prog_id == info->prog_id && st.mode) {
			if (mode && *mode != *st.mode)
				throw usage_error("attach fw", "attached in " + std::string(xdp_mode_name(*st.mode)) + " mode", dev)
					.with_hint("run `sonic fw detach dev " + dev + "` first to attach it in " +
						   std::string(xdp_mode_name(*mode)) + " mode");
			c.mode = *st.mode;
			return c;
		}
		o.pins.unpin_link(link); // its interface went away
	}
	c.mode = mode.value_or(XdpMode::Native);
	int err = o.pins.attach_xdp(o.xdp.get(), ifindex, c.mode, link);
	if (err == EOPNOTSUPP && !mode) {
		c.fallback = "the driver of " + dev + " has no native XDP";
		c.mode = XdpMode::Generic;
		err = o.pins.attach_xdp(o.xdp.get(), ifindex, c.mode, link);
	}
	if (err)
		throw xdp_attach_error(err, c.mode, dev);
	c.changed = true;
	return c;
}

bool fw_detach(const Bpffs &fs, const std::string &dev)
{
	const int ifindex = ifindex_of(dev);
	if (!fs.present())
		return false;
	Fd lock = fs.lock();
	return Pins(fs, kFwFamily).unpin_link(xdp_link(net::netns_cookie(), ifindex));
}

std::vector<FwAttachment> fw_attachments(const Bpffs &fs)
{
	std::vector<FwAttachment> out;
	if (!fs.present())
		return out;
	const uint64_t here = net::netns_cookie();
	for (const std::string &name : Pins(fs, kFwFamily).links(kXdpLinkPrefix)) {
		auto parsed = parse_xdp_link(name);
		auto info = link_info(fs.link_path(name));
		if (!parsed || !info)
			continue;
		FwAttachment a;
		a.link = name;
		a.this_netns = parsed->first == here;
		a.ifindex = info->ifindex;
		if (a.this_netns && a.ifindex > 0) {
			a.dev = ifname_of(static_cast<uint32_t>(a.ifindex));
			const XdpState st = xdp_state(a.ifindex);
			if (st.prog_id == info->prog_id)
				a.mode = st.mode;
		} else if (!a.this_netns) {
			a.ifindex = parsed->second;
		}
		out.push_back(std::move(a));
	}
	return out;
}

// ---- rules -------------------------------------------------------------------

FwRuleChange fw_add(const Bpffs &fs, const FwRuleSpec &spec)
{
	FwRuleChange c;
	c.rule = rule_of(spec);
	fs.ensure();
	Fd lock = fs.lock();
	c.loaded = require_family(fs, fw_family());
	c.changed = c.loaded;
	FwObjects o(fs);
	std::vector<FwRule> rules = read_rules(o, false);
	for (const FwRule &r : rules) {
		if (r.ifindex != c.rule.ifindex || !r.spec.same_match(c.rule.spec))
			continue;
		if (!same_action(r.spec, c.rule.spec))
			throw usage_error("add fw rule", "conflicts with rule `" + fw_rule_text(r.spec) +
								 "`: the same match with another action")
				.with_hint("delete that rule first");
		c.rule = r;
		c.dev_attached = dev_attached(fs, c.rule.ifindex);
		return c;
	}
	std::vector<bool> used(SONIC_FW_MAX_RULES, false);
	for (const FwRule &r : rules)
		used[r.slot] = true;
	auto free = std::find(used.begin(), used.end(), false);
	if (free == used.end())
		throw usage_error("add fw rule",
				  "all " + std::to_string(SONIC_FW_MAX_RULES) + " rule slots of fw_rules are in use",
				  std::string(SONIC_MAP(fw_bpf, fw_rules)))
			.with_hint("delete rules, or put many addresses in one rule's prefix or in the blocklist");
	c.rule.slot = static_cast<uint32_t>(free - used.begin());
	const struct sonic_fw_config cfg = read_config(o);
	c.rule.id = std::max<uint32_t>(cfg.next_id, 1);
	// Counters first, then the rule, then the indexes that lead to it.
	zero_stats(o, c.rule.slot);
	write_slot(o, c.rule.slot, to_value(c.rule), fw_rule_text(spec));
	rules.push_back(c.rule);
	write_indexes(o, rules, c.rule.id + 1);
	c.changed = true;
	c.dev_attached = dev_attached(fs, c.rule.ifindex);
	return c;
}

FwRuleChange fw_del(const Bpffs &fs, const FwRuleSpec &spec)
{
	FwRuleChange c;
	c.rule = rule_of(spec);
	if (!fs.present() || !family_maps_usable(fs, fw_family()))
		return c;
	Fd lock = fs.lock();
	FwObjects o(fs);
	std::vector<FwRule> rules = read_rules(o, false);
	auto it = std::find_if(rules.begin(), rules.end(), [&](const FwRule &r) {
		return r.ifindex == c.rule.ifindex && r.spec.same_match(c.rule.spec);
	});
	if (it == rules.end())
		return c;
	if (!same_action(it->spec, c.rule.spec))
		throw usage_error("delete fw rule", "the rule with this match is `" + fw_rule_text(it->spec) + "`");
	c.rule = *it;
	rules.erase(it);
	write_indexes(o, rules, read_config(o).next_id);
	write_slot(o, c.rule.slot, {}, fw_rule_text(c.rule.spec));
	c.changed = true;
	return c;
}

std::vector<FwRule> fw_rules(const Bpffs &fs)
{
	if (!fs.present() || !family_maps_usable(fs, fw_family()))
		return {};
	return read_rules(FwObjects(fs), true);
}

FwFlush fw_flush(const Bpffs &fs)
{
	FwFlush f;
	if (!fs.present())
		return f;
	Fd lock = fs.lock();
	if (family_maps_usable(fs, fw_family())) {
		FwObjects o(fs);
		const std::vector<FwRule> rules = read_rules(o, false);
		write_indexes(o, {}, read_config(o).next_id);
		for (const FwRule &r : rules)
			write_slot(o, r.slot, {}, fw_rule_text(r.spec));
		f.rules = static_cast<unsigned>(rules.size());
		f.blocks = static_cast<unsigned>(count_keys(o.blocklist.get()));
		clear_map(o.blocklist.get());
		clear_map(o.buckets.get());
	}
	const Pins pins(fs, kFwFamily);
	for (const FwAttachment &a : fw_attachments(fs))
		if (a.this_netns && a.ifindex == 0)
			f.dead_links += pins.unpin_link(a.link);
	f.changed = f.rules || f.blocks || f.dead_links;
	return f;
}

// ---- counters --------------------------------------------------------------

namespace {

uint64_t live_blocks(int blocklist_fd)
{
	const uint64_t now = mono_now_ns();
	uint64_t n = 0;
	for (const auto &[key, value] : map_entries(blocklist_fd)) {
		const auto b = from_bytes<struct sonic_fw_block>(value);
		n += b.expires == 0 || b.expires > now;
	}
	return n;
}

} // namespace

FwCounters fw_counters(const Bpffs &fs)
{
	if (!fs.present() || !family_maps_usable(fs, fw_family()))
		throw env_error("read fw counters", "fw is not loaded", fs.root())
			.with_hint("run `sonic fw attach dev IFACE` or `sonic prog load fw` first");
	FwObjects o(fs);
	const auto stats =
		sum_per_cpu<struct sonic_fw_stats>(o.pins.map(SONIC_MAP(fw_bpf, fw_stats)).get(), "read fw counters");
	FwCounters c;
	std::copy(std::begin(stats.counter), std::end(stats.counter), c.counter.begin());
	c.rules = read_rules(o, false).size();
	for (const FwAttachment &a : fw_attachments(fs))
		c.attachments += a.mode.has_value();
	c.blocklist = live_blocks(o.blocklist.get());
	c.flows = count_keys(o.pins.map(SONIC_MAP(fw_bpf, fw_flows)).get());
	return c;
}

std::optional<FwMetrics> fw_metrics(const Bpffs &fs)
{
	if (!fs.present() || !family_maps_usable(fs, fw_family()))
		return std::nullopt;
	FwObjects o(fs);
	const auto stats =
		sum_per_cpu<struct sonic_fw_stats>(o.pins.map(SONIC_MAP(fw_bpf, fw_stats)).get(), "read fw counters");
	FwMetrics m;
	for (const FwRule &r : read_rules(o, true)) {
		FwMetrics::Rule row;
		row.text = fw_rule_text(r.spec);
		row.action = r.spec.action;
		row.packets = r.packets;
		row.dropped = r.spec.action == FwAction::Drop ? r.packets : r.limited;
		m.rules.push_back(std::move(row));
	}
	m.blocklist_entries = live_blocks(o.blocklist.get());
	m.blocklist_drops = stats.counter[SONIC_FW_DROPPED_BLOCKLIST];
	m.limit_drops = stats.counter[SONIC_FW_LIMIT_DROPPED];
	m.rule_drops = stats.counter[SONIC_FW_DROPPED_RULE];
	return m;
}

} // namespace sonic::bpf
