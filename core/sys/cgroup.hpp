// cgroup v2 directories: validation, ids and paths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sonic::sys {

struct Cgroup {
	std::string path; // absolute, as given or the default root
	uint64_t id = 0;  // the kernel's cgroup id (kernfs inode number)
};

// The cgroup v2 root from /proc/mounts; environment error when none.
std::string cgroup2_root_or_throw();

// Resolves PATH (or the cgroup v2 root when empty) to a cgroup v2 directory.
// Anything that is not a directory on a cgroup2 filesystem is an
// environment error (exit 3) naming the path.
Cgroup resolve_cgroup(const std::optional<std::string> &path);

// Finds the directory of cgroup ID under the cgroup v2 root; empty if gone.
std::string cgroup_path_of(uint64_t id);

// Whether cgroup ID still has its directory. A removed cgroup lingers in the
// kernel (its BPF links still attached, their cgroup id still set) until its
// last reference goes, asynchronously after rmdir; this answers from the
// directory tree, which changes at rmdir.
bool cgroup_exists(uint64_t id);

} // namespace sonic::sys
