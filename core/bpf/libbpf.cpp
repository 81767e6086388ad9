#include "bpf/libbpf.hpp"

#include "out/log.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <sstream>
#include <vector>

namespace sonic::bpf {

namespace {
thread_local std::string captured;

int print_cb(enum libbpf_print_level level, const char *fmt, va_list args)
{
	va_list copy;
	va_copy(copy, args);
	int n = std::vsnprintf(nullptr, 0, fmt, copy);
	va_end(copy);
	if (n < 0)
		return 0;
	std::vector<char> buf(static_cast<size_t>(n) + 1);
	std::vsnprintf(buf.data(), buf.size(), fmt, args);
	std::string text(buf.data(), static_cast<size_t>(n));
	captured += text;
	(void)level; // warnings reach the user through the Error they explain
	log::debug(text);
	return n;
}

bool contains(const std::string &s, const char *needle) { return s.find(needle) != std::string::npos; }
} // namespace

void install_libbpf_logger()
{
	libbpf_set_print(print_cb);
}

std::string take_libbpf_log()
{
	return std::exchange(captured, std::string());
}

std::string libbpf_reason(const std::string &log)
{
	std::istringstream in(log);
	std::string line, failed, last_verifier;
	bool in_log = false;
	while (std::getline(in, line)) {
		if (contains(line, "-- BEGIN PROG LOAD LOG --")) {
			in_log = true;
			continue;
		}
		if (contains(line, "-- END PROG LOAD LOG --")) {
			in_log = false;
			continue;
		}
		if (in_log) {
			// The verifier's complaint is the last line before its summary.
			if (!line.empty() && line.rfind("processed ", 0) != 0 && line[0] != ';' &&
			    !contains(line, "verification time"))
				last_verifier = line;
			continue;
		}
		if (failed.empty() && contains(line, "failed")) {
			auto pos = line.find("libbpf: ");
			failed = pos == std::string::npos ? line : line.substr(pos + 8);
		}
	}
	std::string reason = failed;
	if (!last_verifier.empty())
		reason += (reason.empty() ? "" : ": ") + last_verifier;
	return reason;
}

Error libbpf_error(const std::string &op, int err, const std::string &object)
{
	if (err < 0)
		err = -err;
	std::string log = take_libbpf_log();
	std::string reason = libbpf_reason(log);
	if (reason.empty())
		reason = std::strerror(err);
	Error e = (err == EPERM || err == EACCES) && !contains(log, "BEGIN PROG LOAD LOG")
			  ? env_error(op, reason, object)
			  : kernel_error(op, reason, object);
	if (!log.empty()) {
		e.with_detail(log);
		if (contains(log, "BEGIN PROG LOAD LOG"))
			e.with_hint("run with -d to see the verifier log");
	}
	return e;
}

std::optional<Fd> open_pinned(const std::string &path)
{
	int fd = bpf_obj_get(path.c_str());
	if (fd < 0) {
		int err = errno;
		if (err == ENOENT)
			return std::nullopt;
		throw errno_error("open pinned object", err, path);
	}
	return Fd(fd);
}

Fd open_pinned_or_throw(const std::string &path, const std::string &op)
{
	auto fd = open_pinned(path);
	if (!fd)
		throw env_error(op, "pinned object missing", path);
	return std::move(*fd);
}

uint32_t prog_id(int fd)
{
	struct bpf_prog_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

uint32_t map_id(int fd)
{
	struct bpf_map_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

} // namespace sonic::bpf
