#include "sys/cgroup.hpp"

#include "out/error.hpp"
#include "sys/mounts.hpp"

#include "bpf/fd.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

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

namespace {

// The file handle type kernfs (cgroupfs) gives its nodes: the 64-bit node id,
// which is the cgroup id (include/linux/exportfs.h, FILEID_KERNFS).
constexpr int kFileidKernfs = 0xfe;

// Opens cgroup ID by its id, as a kernfs file handle: ENOENT or ESTALE once
// its directory is removed. nullopt when this kernel or these privileges
// cannot say (no CAP_DAC_READ_SEARCH, no handle support).
std::optional<bool> cgroup_handle_exists(const std::string &root, uint64_t id)
{
	Fd mount(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!mount)
		return std::nullopt;
	struct {
		struct file_handle head;
		unsigned char id[sizeof(uint64_t)];
	} handle{};
	handle.head.handle_bytes = sizeof(uint64_t);
	handle.head.handle_type = kFileidKernfs;
	std::memcpy(handle.head.f_handle, &id, sizeof id);
	Fd dir(::open_by_handle_at(mount.get(), &handle.head, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (dir)
		return true;
	if (errno == ESTALE || errno == ENOENT)
		return false;
	return std::nullopt;
}

} // namespace

bool cgroup_exists(uint64_t id)
{
	auto root = cgroup2_root(read_mounts());
	if (!root)
		return false;
	if (auto known = cgroup_handle_exists(*root, id))
		return *known;
	return !cgroup_path_of(id).empty();
}

} // namespace sonic::sys
