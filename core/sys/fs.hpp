// Small file helpers with sonic errors.
#pragma once

#include <optional>
#include <string>

namespace sonic::sys {

// Whole file as a string; throws (ENOENT -> environment error).
std::string read_file(const std::string &path);
std::optional<std::string> try_read_file(const std::string &path);

// A single integer from a file such as /proc/sys/kernel/bpf_stats_enabled.
std::optional<long long> read_int_file(const std::string &path);

} // namespace sonic::sys
