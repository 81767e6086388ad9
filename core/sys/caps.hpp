// Effective capability checks, so a missing privilege is reported by name
// before anything is attempted.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::sys {

enum class Cap : int {
	NetAdmin = 12,
	SysAdmin = 21,
	Perfmon = 38,
	Bpf = 39,
};

std::string cap_name(Cap cap);

// CapEff from a /proc/<pid>/status text; 0 when the line is missing.
uint64_t parse_cap_eff(std::string_view status);
uint64_t effective_caps();

std::vector<Cap> missing_caps(uint64_t effective, std::initializer_list<Cap> needed);

// Throws an environment error (exit 3) naming every missing capability.
void require_caps(const std::string &op, std::initializer_list<Cap> needed);

} // namespace sonic::sys
