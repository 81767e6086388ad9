#include "proxy/origdst.hpp"

#include <cerrno>
#include <cstring>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

namespace sonic::proxy {

namespace {

bool same(const sockaddr_storage &a, const sockaddr_storage &b)
{
	if (a.ss_family != b.ss_family)
		return false;
	if (a.ss_family == AF_INET) {
		auto &x = reinterpret_cast<const sockaddr_in &>(a);
		auto &y = reinterpret_cast<const sockaddr_in &>(b);
		return x.sin_port == y.sin_port &&
		       (y.sin_addr.s_addr == htonl(INADDR_ANY) || x.sin_addr.s_addr == y.sin_addr.s_addr);
	}
	auto &x = reinterpret_cast<const sockaddr_in6 &>(a);
	auto &y = reinterpret_cast<const sockaddr_in6 &>(b);
	return x.sin6_port == y.sin6_port && (IN6_IS_ADDR_UNSPECIFIED(&y.sin6_addr) ||
					      std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0);
}

} // namespace

std::optional<sockaddr_storage> original_destination(int fd, const sockaddr_storage &listener)
{
	sockaddr_storage ss{};
	socklen_t len = sizeof(ss);
	if (getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0)
		return std::nullopt;
	// The three ways a connection arrives, one question each: an iptables
	// or nft REDIRECT (conntrack) and sonic's cgroup steering (its
	// getsockopt program) answer SO_ORIGINAL_DST; under TPROXY or sonic's
	// tc steering (bpf_sk_assign) the accepted socket already has the
	// original destination as its own address. TPROXY answers the first
	// question too, with that same address.
	sockaddr_storage orig{};
	socklen_t olen = sizeof(orig);
	int rc = ss.ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &olen)
					  : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &olen);
	if (rc == 0)
		ss = orig;
	if (same(ss, listener))
		return std::nullopt;
	return ss;
}

int set_transparent(int fd, int family)
{
	int one = 1;
	int rc = family == AF_INET6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))
				    : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
	return rc == 0 ? 0 : errno;
}

} // namespace sonic::proxy
