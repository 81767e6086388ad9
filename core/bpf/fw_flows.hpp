// fw's flow table as `sonic stats flows` shows it: one row per 5-tuple
// direction that arrived on an attached interface, with packets, bytes, the
// packets dropped, first and last seen, the verdict of its last packet and a
// rate.
#pragma once

#include "bpf/bpffs.hpp"
#include "net/addr.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

struct FwFlow {
	net::IpAddr src, dst;
	uint16_t sport = 0, dport = 0; // ICMP: dport is type << 8 | code
	uint8_t proto = 0;
	uint32_t ifindex = 0;
	std::string dev; // "" when unknown here
	uint64_t packets = 0, bytes = 0, dropped = 0;
	int64_t first_seen_ms = 0, last_seen_ms = 0; // Unix milliseconds
	std::string verdict; // of its last packet
	uint32_t rule_id = 0;
	double rate = 0; // bytes per second (see flow_lifetime_rates, flow_interval_rates)

	bool same_flow(const FwFlow &o) const;
};

enum class FlowSort { Bytes, Packets, Rate };

// "bytes", "packets", "rate": a usage error (exit 1) names anything else.
FlowSort parse_flow_sort(std::string_view text);

std::string_view fw_verdict_name(uint32_t verdict);

// Every flow the kernel holds, each with its lifetime rate. Throws an
// environment error (exit 3) when fw is not loaded.
std::vector<FwFlow> fw_flows(const Bpffs &fs);

// Sets each flow's rate to its bytes over its lifetime (first to last
// packet, at least one second).
void flow_lifetime_rates(std::vector<FwFlow> &flows);
// Sets each flow's rate to the bytes since BEFORE, SECONDS ago (all of its
// bytes for a flow that is new since).
void flow_interval_rates(std::vector<FwFlow> &flows, const std::vector<FwFlow> &before, double seconds);

// The TOP flows by SORT, largest first (ties: the most recent first).
std::vector<FwFlow> top_flows(std::vector<FwFlow> flows, FlowSort sort, size_t top);

} // namespace sonic::bpf
