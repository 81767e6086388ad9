#include "sys/fs.hpp"

#include "out/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace sonic::sys {

std::optional<std::string> try_read_file(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		return std::nullopt;
	std::ostringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

std::string read_file(const std::string &path, const char *op)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		throw errno_error(op, errno ? errno : ENOENT, path);
	std::ostringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

std::optional<long long> read_int_file(const std::string &path)
{
	auto text = try_read_file(path);
	if (!text)
		return std::nullopt;
	try {
		return std::stoll(*text);
	} catch (...) {
		return std::nullopt;
	}
}

namespace {

// mkdir -p: missing parents are made 0755, existing ones are left alone.
bool create_dir(const std::string &dir, mode_t mode)
{
	if (mkdir(dir.c_str(), mode) == 0)
		return true;
	if (errno == ENOENT) {
		size_t slash = dir.find_last_of('/');
		if (slash == std::string::npos || slash == 0)
			throw errno_error("create directory", ENOENT, dir);
		create_dir(dir.substr(0, slash), 0755);
		if (mkdir(dir.c_str(), mode) == 0)
			return true;
	}
	if (errno != EEXIST)
		throw errno_error("create directory", errno, dir);
	return false;
}

} // namespace

void make_dir(const std::string &dir, mode_t mode)
{
	if (create_dir(dir, mode))
		return;
	struct stat st {};
	if (stat(dir.c_str(), &st) != 0)
		throw errno_error("create directory", errno, dir);
	if (!S_ISDIR(st.st_mode))
		throw errno_error("create directory", ENOTDIR, dir);
	if ((st.st_mode & 07777) != mode && chmod(dir.c_str(), mode) != 0)
		throw errno_error("set directory mode", errno, dir);
}

void write_file_atomic(const std::string &path, std::string_view data, mode_t mode, bool sync)
{
	size_t slash = path.find_last_of('/');
	std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
	std::string tmp = dir + "/.tmp-XXXXXX";
	int fd = mkostemp(tmp.data(), O_CLOEXEC);
	if (fd < 0)
		throw errno_error("write", errno, path);
	auto fail = [&](int err) {
		close(fd);
		unlink(tmp.c_str());
		throw errno_error("write", err, path);
	};
	if (fchmod(fd, mode) != 0)
		fail(errno);
	for (size_t done = 0; done < data.size();) {
		ssize_t n = write(fd, data.data() + done, data.size() - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(errno);
		done += static_cast<size_t>(n);
	}
	if (sync && fsync(fd) != 0)
		fail(errno);
	if (close(fd) != 0) {
		unlink(tmp.c_str());
		throw errno_error("write", errno, path);
	}
	if (rename(tmp.c_str(), path.c_str()) != 0) {
		int err = errno;
		unlink(tmp.c_str());
		throw errno_error("write", err, path);
	}
	if (sync) {
		int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
}

} // namespace sonic::sys
