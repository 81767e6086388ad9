// Transparent steering: the userspace half of bpf/steer.bpf.c.
//
// A rule sends TCP connections to the proxy's transparent listener, either
// packets arriving on an interface (dev: tc ingress + bpf_sk_assign, with an
// fwmark rule and a local route table) or connections made by processes in a
// cgroup (cgroup: connect4/connect6 rewrite the destination, and the proxy
// reads the original one back with getsockopt(SO_ORIGINAL_DST)). Rules live
// in pinned maps; adding or deleting one never loads a program.
#pragma once

#include "bpf/bpffs.hpp"
#include "bpf/steer_spec.hpp"
#include "net/addr.hpp"
#include "net/ports.hpp"
#include "sonic_abi.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <vector>

namespace sonic::bpf {

// A rule as the kernel holds it.
struct SteerRule {
	uint32_t slot = 0;
	SteerKind kind = SteerKind::Dev;
	uint64_t netns = 0; // dev: the namespace cookie; cgroup: 0
	uint64_t scope = 0; // ifindex or cgroup id
	std::string where;  // interface name or cgroup path ("" when unknown)
	int family = 0;
	std::vector<net::PortRange> ports;
	std::optional<net::Cidr> dst;
	net::Endpoint to;
	uint32_t mark = 0;
	uint32_t table = 0;
};

struct SteerRuleState {
	SteerRule rule;
	bool this_netns = true; // dev rule of the namespace sonic runs in
	bool attached = false;  // tc filter on the interface, or cgroup links
	bool routing = false;   // dev: fwmark rule and local route present
	bool listener = false;  // something listens at the target
};

struct SteerChange {
	bool changed = false;
	bool loaded = false; // the programs were loaded by this call
	SteerRule rule;
};

struct SteerFlush {
	bool changed = false;
	unsigned rules = 0;
	unsigned filters = 0;
	unsigned qdiscs = 0;
	unsigned routes = 0;
	unsigned links = 0;
	unsigned other_netns_rules = 0; // dev rules of other namespaces, kept
};

struct SteerCounters {
	uint64_t rules = 0;
	std::array<uint64_t, SONIC_STEER_NR_COUNTERS> counter{};
};

std::string_view steer_counter_name(size_t index);

SteerChange steer_add(const Bpffs &fs, const SteerSpec &spec);
// Deletes the rule with SPEC's selector (scope, ports, dst, family); a rule
// there with another target is an error. Nothing there: changed false.
SteerChange steer_del(const Bpffs &fs, const SteerSpec &spec);
std::vector<SteerRuleState> steer_list(const Bpffs &fs);
// Removes every rule of this namespace and every cgroup rule, sonic's tc
// filters, the clsact qdiscs sonic made, sonic's policy routing and links.
SteerFlush steer_flush(const Bpffs &fs);
// The same, for a caller that holds the bpffs lock (prog unload).
SteerFlush steer_flush_locked(const Bpffs &fs);
SteerCounters steer_counters(const Bpffs &fs);

// The rule SPEC makes, as the kernel would hold it (interface index and
// namespace, cgroup id). A missing interface or cgroup is a usage error.
SteerRule steer_rule_of(const SteerSpec &spec);

// The canonical text of a rule's selector and target, one line.
std::string steer_rule_text(const SteerRule &rule);

// The original destination of a connection the proxy accepted: what
// getsockopt(SO_ORIGINAL_DST) says (sonic's cgroup steering, iptables
// REDIRECT), else the socket's local address (tc steering, TPROXY).
std::optional<sockaddr_storage> original_destination(int fd);

} // namespace sonic::bpf
