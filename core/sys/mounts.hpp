// Mount table lookups: where cgroup v2 and bpffs live on this machine.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::sys {

struct Mount {
	std::string source;
	std::string target;
	std::string fstype;
	std::string options;
};

// Parses /proc/mounts text (octal escapes such as \040 decoded).
std::vector<Mount> parse_mounts(std::string_view text);
std::vector<Mount> read_mounts();

// The first cgroup2 mount point, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified.
std::optional<std::string> cgroup2_root(const std::vector<Mount> &mounts);

} // namespace sonic::sys
