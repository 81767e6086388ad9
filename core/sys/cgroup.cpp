#include "sys/cgroup.hpp"

#include "out/error.hpp"
#include "sys/mounts.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

namespace sonic::sys {

std::string cgroup2_root_or_throw()
{
	auto root = cgroup2_root(read_mounts());
	if (!root)
		throw env_error("find cgroup v2", "no cgroup2 filesystem is mounted (see /proc/mounts)");
	return *root;
}

Cgroup resolve_cgroup(const std::optional<std::string> &path)
{
	Cgroup cg;
	cg.path = path && !path->empty() ? *path : cgroup2_root_or_throw();
	std::error_code ec;
	auto abs = std::filesystem::absolute(cg.path, ec);
	if (!ec)
		cg.path = abs.lexically_normal().string();
	while (cg.path.size() > 1 && cg.path.back() == '/')
		cg.path.pop_back();

	struct statfs fs{};
	if (statfs(cg.path.c_str(), &fs) != 0) {
		int err = errno;
		throw env_error("resolve cgroup", err == ENOENT ? "no such directory" : std::strerror(err), cg.path);
	}
	if (fs.f_type != CGROUP2_SUPER_MAGIC)
		throw env_error("resolve cgroup", "not a cgroup v2 directory", cg.path)
			.with_hint("cgroup v2 is mounted at " + cgroup2_root(read_mounts()).value_or("(nowhere)"));
	struct stat st{};
	if (stat(cg.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
		throw env_error("resolve cgroup", "not a cgroup v2 directory", cg.path);
	cg.id = st.st_ino;
	return cg;
}

std::string cgroup_path_of(uint64_t id)
{
	auto root = cgroup2_root(read_mounts());
	if (!root)
		return {};
	struct stat st{};
	if (stat(root->c_str(), &st) == 0 && st.st_ino == id)
		return *root;
	std::error_code ec;
	std::filesystem::recursive_directory_iterator it(*root, std::filesystem::directory_options::skip_permission_denied, ec);
	for (; !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
		if (!it->is_directory(ec))
			continue;
		if (stat(it->path().c_str(), &st) == 0 && st.st_ino == id)
			return it->path().string();
	}
	return {};
}

} // namespace sonic::sys
