// What sonic has in the kernel: pinned programs with their attach points,
// and the links sonic pinned.
#pragma once

#include "bpf/bpffs.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sonic::bpf {

struct ProgramInfo {
	uint32_t id = 0;
	std::string name;
	std::string type;
	std::string tag;
	std::string pinned;
	std::vector<std::string> attached; // e.g. "cgroup /sys/fs/cgroup (sock_ops)"
	std::optional<uint64_t> run_count;   // only with kernel.bpf_stats_enabled=1
	std::optional<uint64_t> run_time_ns;
};

bool bpf_stats_enabled();

// Every program pinned under <root>/prog, sorted by name.
std::vector<ProgramInfo> list_programs(const Bpffs &fs);

} // namespace sonic::bpf
