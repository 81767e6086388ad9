#include "sys/notify.hpp"

#include "out/error.hpp"
#include "out/log.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace sonic::sys {

namespace {

// The address $NOTIFY_SOCKET names and its length, or 0 when unusable.
socklen_t notify_address(const char *name, sockaddr_un &addr)
{
	addr = {};
	addr.sun_family = AF_UNIX;
	const size_t len = std::strlen(name);
	if (len < 2 || len >= sizeof(addr.sun_path) || (name[0] != '/' && name[0] != '@'))
		return 0;
	std::memcpy(addr.sun_path, name, len);
	if (name[0] == '@')
		addr.sun_path[0] = '\0'; // abstract namespace: no terminating NUL counted
	return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (name[0] == '/' ? 1 : 0));
}

void warn_once(const std::string &why)
{
	static bool warned = false;
	if (!warned)
		log::warn("sd_notify: " + why + "; the service manager is not told of readiness");
	warned = true;
}

} // namespace

bool notify(std::string_view state)
{
	const char *name = std::getenv("NOTIFY_SOCKET");
	if (!name || !*name)
		return false;
	sockaddr_un addr;
	socklen_t len = notify_address(name, addr);
	if (len == 0) {
		warn_once(std::string("NOTIFY_SOCKET=") + name + " is not a socket path or @name");
		return false;
	}
	int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		warn_once(std::string("socket: ") + std::strerror(errno));
		return false;
	}
	ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr *>(&addr), len);
	const int err = errno;
	::close(fd);
	if (n != static_cast<ssize_t>(state.size())) {
		warn_once(std::string("send to ") + name + ": " + (n < 0 ? std::strerror(err) : "short write"));
		return false;
	}
	return true;
}

std::string reloading_state()
{
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	const unsigned long long usec =
		static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL + static_cast<unsigned long long>(ts.tv_nsec) / 1000;
	return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

} // namespace sonic::sys
