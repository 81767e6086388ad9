// A steering rule's SPEC as the command line gives it (sonic-tproxy(8)):
// {dev IFACE | cgroup PATH} proto tcp dport PORTS [dst CIDR] to ADDR:PORT
// [mark MARK] [table N], parsed and checked without touching the kernel.
#pragma once

#include "net/addr.hpp"
#include "net/ports.hpp"
#include "sonic_abi.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sonic::bpf {

enum class SteerKind { Dev, Cgroup };

inline constexpr uint32_t kSteerDefaultMark = 0x5300;
inline constexpr uint32_t kSteerDefaultTable = 5300;
// The mark the proxy puts on its upstream sockets (SO_MARK): they are never
// steered back to it.
inline constexpr uint32_t kSteerBypassMark = SONIC_STEER_BYPASS_MARK;

// A SPEC as given on the command line, validated.
struct SteerSpec {
	SteerKind kind = SteerKind::Dev;
	std::string where; // interface name or cgroup path
	std::vector<net::PortRange> ports;
	std::optional<net::Cidr> dst;
	net::Endpoint to;
	uint32_t mark = kSteerDefaultMark;
	uint32_t table = kSteerDefaultTable;
	int family() const { return to.addr.family; }
};

// The words of a SPEC, each as given (nullopt when absent). Throws a usage
// error (exit 1) on a missing or contradictory keyword, bad ports, a bad
// address or prefix, a family mismatch, or mark/table on a cgroup rule.
struct SteerWords {
	std::optional<std::string> dev, cgroup, proto, dport, dst, to, mark, table;
};
SteerSpec parse_steer_spec(const SteerWords &words);

} // namespace sonic::bpf
