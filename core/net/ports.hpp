// Port lists as operators write them: "80", "80,443", "8000-8100,9090".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::net {

struct PortRange {
	uint16_t first = 0;
	uint16_t last = 0;
	bool operator==(const PortRange &) const = default;
};

// Sorted, merged ranges. Throws a usage error (exit 1) naming the bad item:
// empty items, non-numbers, port 0, ports above 65535, reversed ranges.
std::vector<PortRange> parse_port_list(std::string_view text);

// Canonical text form of parsed ranges, e.g. "80,443,8000-8100".
std::string format_port_list(const std::vector<PortRange> &ranges);

bool port_in(const std::vector<PortRange> &ranges, uint16_t port);

} // namespace sonic::net
