#include "bpf/fw_flows.hpp"

#include "fw.skel.h"
#include "bpf/family.hpp"
#include "bpf/fw.hpp"
#include "bpf/pins.hpp"
#include "out/error.hpp"
#include "sonic_abi.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <net/if.h>
#include <sys/socket.h>

namespace sonic::bpf {

bool FwFlow::same_flow(const FwFlow &o) const
{
	return src == o.src && dst == o.dst && sport == o.sport && dport == o.dport && proto == o.proto &&
	       ifindex == o.ifindex;
}

FlowSort parse_flow_sort(std::string_view text)
{
	if (text == "bytes")
		return FlowSort::Bytes;
	if (text == "packets")
		return FlowSort::Packets;
	if (text == "rate")
		return FlowSort::Rate;
	throw usage_error("stats", "--sort takes bytes, packets or rate, not '" + std::string(text) + "'");
}

std::string_view fw_verdict_name(uint32_t verdict)
{
	switch (verdict) {
	case SONIC_FW_V_PASSED: return "passed";
	case SONIC_FW_V_PASSED_RULE: return "passed_rule";
	case SONIC_FW_V_LIMIT_PASSED: return "limit_passed";
	case SONIC_FW_V_LIMIT_DROPPED: return "limit_dropped";
	case SONIC_FW_V_DROPPED_RULE: return "dropped_rule";
	}
	return "unknown";
}

std::vector<FwFlow> fw_flows(const Bpffs &fs)
{
	if (!fs.present() || !family_maps_usable(fs, builtin_family(kFwFamily)))
		throw env_error("read fw flows", "fw is not loaded", fs.root())
			.with_hint("run `sonic fw attach dev IFACE` first");
	const Fd map = Pins(fs, kFwFamily).map(SONIC_MAP(fw_bpf, fw_flows));
	std::map<uint32_t, std::string> names;
	std::vector<FwFlow> out;
	for (const auto &[kb, vb] : map_entries(map.get())) {
		const auto k = from_bytes<struct sonic_fw_flow_key>(kb);
		const auto v = from_bytes<struct sonic_fw_flow>(vb);
		FwFlow f;
		f.src = net::addr_of_ipv6_form(k.src);
		f.dst = net::addr_of_ipv6_form(k.dst);
		f.sport = k.sport;
		f.dport = k.dport;
		f.proto = k.proto;
		f.ifindex = k.ifindex;
		if (!names.count(k.ifindex)) {
			char name[IF_NAMESIZE] = {};
			names[k.ifindex] = if_indextoname(k.ifindex, name) ? name : "";
		}
		f.dev = names[k.ifindex];
		f.packets = v.packets;
		f.bytes = v.bytes;
		f.dropped = v.dropped;
		f.first_seen_ms = mono_ns_to_unix_ms(v.first_seen);
		f.last_seen_ms = mono_ns_to_unix_ms(v.last_seen);
		f.verdict = fw_verdict_name(v.verdict);
		f.rule_id = v.rule_id;
		out.push_back(std::move(f));
	}
	flow_lifetime_rates(out);
	return out;
}

void flow_lifetime_rates(std::vector<FwFlow> &flows)
{
	for (FwFlow &f : flows) {
		const double seconds = std::max(1.0, static_cast<double>(f.last_seen_ms - f.first_seen_ms) / 1000.0);
		f.rate = static_cast<double>(f.bytes) / seconds;
	}
}

void flow_interval_rates(std::vector<FwFlow> &flows, const std::vector<FwFlow> &before, double seconds)
{
	for (FwFlow &f : flows) {
		uint64_t base = 0;
		for (const FwFlow &b : before)
			if (b.same_flow(f) && b.bytes <= f.bytes && std::abs(b.first_seen_ms - f.first_seen_ms) <= 1) {
				base = b.bytes;
				break;
			}
		f.rate = static_cast<double>(f.bytes - base) / std::max(seconds, 1e-3);
	}
}

std::vector<FwFlow> top_flows(std::vector<FwFlow> flows, FlowSort sort, size_t top)
{
	auto key = [sort](const FwFlow &f) {
		return sort == FlowSort::Bytes ? static_cast<double>(f.bytes)
		       : sort == FlowSort::Packets ? static_cast<double>(f.packets)
						   : f.rate;
	};
	std::stable_sort(flows.begin(), flows.end(), [&](const FwFlow &a, const FwFlow &b) {
		if (key(a) != key(b))
			return key(a) > key(b);
		return a.last_seen_ms > b.last_seen_ms;
	});
	if (flows.size() > top)
		flows.resize(top);
	return flows;
}

} // namespace sonic::bpf
