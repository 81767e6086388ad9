#include "net/local.hpp"

#include "out/error.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace sonic::net {

std::vector<Addr16> local_addresses()
{
	struct ifaddrs *list = nullptr;
	if (getifaddrs(&list) != 0)
		throw errno_error("list local addresses", errno);
	std::vector<Addr16> out;
	for (struct ifaddrs *ifa = list; ifa; ifa = ifa->ifa_next) {
		if (!ifa->ifa_addr)
			continue;
		Addr16 a{};
		if (ifa->ifa_addr->sa_family == AF_INET) {
			auto *sin = reinterpret_cast<const sockaddr_in *>(ifa->ifa_addr);
			if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
				continue;
			a[10] = a[11] = 0xff;
			std::memcpy(&a[12], &sin->sin_addr, 4);
		} else if (ifa->ifa_addr->sa_family == AF_INET6) {
			auto *sin6 = reinterpret_cast<const sockaddr_in6 *>(ifa->ifa_addr);
			if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
				continue;
			std::memcpy(a.data(), &sin6->sin6_addr, 16);
		} else {
			continue;
		}
		if (std::find(out.begin(), out.end(), a) == out.end())
			out.push_back(a);
	}
	freeifaddrs(list);
	return out;
}

uint64_t netns_cookie()
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		throw errno_error("read network namespace cookie", errno);
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int rc = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
	int err = errno;
	close(fd);
	if (rc != 0)
		throw kernel_error("read network namespace cookie", std::strerror(err))
			.with_hint("SO_NETNS_COOKIE needs Linux 5.14 or later");
	return cookie;
}

std::string addr_to_string(const Addr16 &addr)
{
	char buf[INET6_ADDRSTRLEN] = {};
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (std::memcmp(addr.data(), mapped, 12) == 0)
		inet_ntop(AF_INET, &addr[12], buf, sizeof(buf));
	else
		inet_ntop(AF_INET6, addr.data(), buf, sizeof(buf));
	return buf;
}

} // namespace sonic::net
