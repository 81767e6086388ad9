#include "bpf/bpffs.hpp"

#include "out/error.hpp"
#include "out/log.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace sonic::bpf {

namespace fs = std::filesystem;

namespace {
constexpr const char *kSysBpf = "/sys/fs/bpf";

bool on_bpffs(const std::string &path)
{
	struct statfs st{};
	return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

void make_dir(const std::string &path, mode_t mode)
{
	if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
		throw errno_error("create directory", errno, path);
}

void make_dirs(const std::string &path, mode_t mode)
{
	std::error_code ec;
	fs::create_directories(path, ec);
	if (ec)
		throw errno_error("create directory", ec.value(), path);
	chmod(path.c_str(), mode);
}

pid_t parent_of(pid_t pid)
{
	std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
	std::string line;
	std::getline(f, line);
	auto close = line.rfind(')');
	if (close == std::string::npos)
		return 0;
	std::istringstream rest(line.substr(close + 1));
	std::string state;
	pid_t ppid = 0;
	rest >> state >> ppid;
	return ppid;
}

// `ip netns exec` and `unshare -m` run sonic in a mount namespace of its
// own, with a fresh /sys and no bpffs. A bpffs mounted there, and every pin
// in it, vanishes with the command while what it attached stays. Returns
// true when the nearest ancestor in another mount namespace (the shell that
// ran `ip netns exec`) has a bpffs at /sys/fs/bpf: the one the user meant.
// (Binding it here is not possible: the kernel refuses bind mounts from
// another mount namespace.)
bool outer_bpffs_exists(const std::string &mountpoint)
{
	struct stat self{};
	if (mountpoint != kSysBpf || stat("/proc/self/ns/mnt", &self) != 0)
		return false;
	pid_t pid = getpid();
	for (int depth = 0; depth < 64 && pid > 1; depth++) {
		pid = parent_of(pid);
		if (pid <= 0)
			break;
		std::string proc = "/proc/" + std::to_string(pid);
		struct stat ns{};
		if (stat((proc + "/ns/mnt").c_str(), &ns) != 0)
			break; // not ours to look into
		if (ns.st_ino != self.st_ino || ns.st_dev != self.st_dev)
			return on_bpffs(proc + "/root" + kSysBpf);
	}
	return false;
}

bool under(const std::string &path, const std::string &dir)
{
	return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}
} // namespace

Bpffs::Bpffs(std::string root) : root_(std::move(root))
{
	std::error_code ec;
	auto abs = fs::absolute(root_, ec);
	if (!ec)
		root_ = abs.lexically_normal().string();
	while (root_.size() > 1 && root_.back() == '/')
		root_.pop_back();
}

std::string Bpffs::ensure() const
{
	std::string mounted;
	std::string mountpoint = under(root_, kSysBpf) ? std::string(kSysBpf) : root_;
	bool ready = fs::exists(mountpoint) && on_bpffs(mountpoint);
	if (!ready) {
		make_dirs(mountpoint, 0700);
		if (mount("bpf", mountpoint.c_str(), "bpf", 0, "mode=0700") != 0) {
			int err = errno;
			Error e = errno_error("mount bpffs", err, mountpoint);
			if (err == EPERM)
				e = env_error("mount bpffs", "not permitted (needs CAP_SYS_ADMIN)", mountpoint);
			throw e;
		}
		mounted = mountpoint;
		log::info("mounted bpffs at " + mountpoint);
		if (outer_bpffs_exists(mountpoint))
			log::warn("this mount namespace is not its parent's (ip netns exec?): the bpffs just mounted, and "
				  "every pin in it, vanish when sonic exits while its attachments stay; run sonic "
				  "through `nsenter --net=/run/netns/NAME` instead, which keeps the mount namespace");
	}
	if (!fs::exists(root_))
		make_dirs(root_, 0700);
	if (!on_bpffs(root_))
		throw env_error("prepare bpffs", "not on a bpf filesystem", root_);
	for (const char *sub : {"/prog", "/map", "/link"})
		make_dir(root_ + sub, 0700);
	return mounted;
}

bool Bpffs::present() const
{
	struct stat st{};
	if (stat(root_.c_str(), &st) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return false;
		throw errno_error("open bpffs directory", errno, root_); // EACCES: not privileged
	}
	return S_ISDIR(st.st_mode) && on_bpffs(root_);
}

std::vector<std::string> Bpffs::list(std::string_view dir) const
{
	std::vector<std::string> names;
	std::error_code ec;
	for (fs::directory_iterator it(root_ + "/" + std::string(dir), ec), end; !ec && it != end; it.increment(ec))
		names.push_back(it->path().filename().string());
	std::sort(names.begin(), names.end());
	return names;
}

bool Bpffs::remove_empty_dirs() const
{
	bool removed = false;
	for (const char *sub : {"/prog", "/map", "/link", ""})
		if (rmdir((root_ + sub).c_str()) == 0)
			removed = true;
	return removed;
}

Fd Bpffs::lock() const
{
	Fd fd(open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!fd)
		throw errno_error("lock bpffs directory", errno, root_);
	if (flock(fd.get(), LOCK_EX) != 0)
		throw errno_error("lock bpffs directory", errno, root_);
	return fd;
}

} // namespace sonic::bpf
