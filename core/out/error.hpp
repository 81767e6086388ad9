// The error model: every failure carries what was attempted, why it failed
// and on which object. Only cmd/main.cpp turns an Error into an exit status.
#pragma once

#include <exception>
#include <string>

namespace sonic {

enum class ErrorKind {
	Usage,       // bad command line or bad input value        -> exit 1
	Kernel,      // kernel, netlink, libbpf or TLS library       -> exit 2
	Environment, // privileges, cgroup v2, bpffs, missing files  -> exit 3
};

int exit_code(ErrorKind kind);

// "EPERM", "ECONNREFUSED", ...; "ENOTSUPP" for the kernel's 524, "errno N"
// for one without a name.
std::string errno_name(int err);
const char *kind_name(ErrorKind kind);

class Error : public std::exception {
public:
	Error(ErrorKind kind, std::string op, std::string reason, std::string object = {});

	ErrorKind kind() const { return kind_; }
	const std::string &op() const { return op_; }
	const std::string &reason() const { return reason_; }
	const std::string &object() const { return object_; }
	// Long diagnostic (libbpf or verifier log), shown under -d.
	const std::string &detail() const { return detail_; }
	// One line telling the user what to do next.
	const std::string &hint() const { return hint_; }

	Error &with_detail(std::string detail);
	Error &with_hint(std::string hint);
	// A mistake in the shape of the command line: the CLI prints the
	// command's usage after the message. Bad values are not marked.
	Error &with_usage();
	bool shows_usage() const { return usage_; }

	// "<op>: <reason> [object = <object>]"
	const char *what() const noexcept override { return message_.c_str(); }

private:
	ErrorKind kind_;
	std::string op_, reason_, object_, detail_, hint_, message_;
	bool usage_ = false;
};

Error usage_error(std::string op, std::string reason, std::string object = {});
Error kernel_error(std::string op, std::string reason, std::string object = {});
Error env_error(std::string op, std::string reason, std::string object = {});
// A failed system call: reason is strerror(err). EPERM/EACCES become
// environment errors (missing privilege), ENOENT too (missing file).
Error errno_error(std::string op, int err, std::string object = {});

} // namespace sonic
