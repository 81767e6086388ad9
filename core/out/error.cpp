#include "out/error.hpp"

#include <cerrno>
#include <cstring>

namespace sonic {

std::string errno_name(int err)
{
	if (err == 524)
		return "ENOTSUPP"; // the kernel's own, not in errno.h
	const char *name = strerrorname_np(err);
	return name ? name : "errno " + std::to_string(err);
}

int exit_code(ErrorKind kind)
{
	switch (kind) {
	case ErrorKind::Usage:
		return 1;
	case ErrorKind::Kernel:
		return 2;
	case ErrorKind::Environment:
		return 3;
	}
	return 2;
}

const char *kind_name(ErrorKind kind)
{
	switch (kind) {
	case ErrorKind::Usage:
		return "usage";
	case ErrorKind::Kernel:
		return "kernel";
	case ErrorKind::Environment:
		return "environment";
	}
	return "kernel";
}

Error::Error(ErrorKind kind, std::string op, std::string reason, std::string object)
	: kind_(kind), op_(std::move(op)), reason_(std::move(reason)), object_(std::move(object))
{
	message_ = op_.empty() ? reason_ : op_ + ": " + reason_;
	if (!object_.empty())
		message_ += " [object = " + object_ + "]";
}

Error &Error::with_detail(std::string detail)
{
	detail_ = std::move(detail);
	return *this;
}

Error &Error::with_hint(std::string hint)
{
	hint_ = std::move(hint);
	return *this;
}

Error &Error::with_usage()
{
	usage_ = true;
	return *this;
}

Error usage_error(std::string op, std::string reason, std::string object)
{
	return Error(ErrorKind::Usage, std::move(op), std::move(reason), std::move(object));
}

Error kernel_error(std::string op, std::string reason, std::string object)
{
	return Error(ErrorKind::Kernel, std::move(op), std::move(reason), std::move(object));
}

Error env_error(std::string op, std::string reason, std::string object)
{
	return Error(ErrorKind::Environment, std::move(op), std::move(reason), std::move(object));
}

Error errno_error(std::string op, int err, std::string object)
{
	ErrorKind kind = ErrorKind::Kernel;
	if (err == EPERM || err == EACCES || err == ENOENT || err == EROFS)
		kind = ErrorKind::Environment;
	return Error(kind, std::move(op), std::strerror(err), std::move(object));
}

} // namespace sonic
