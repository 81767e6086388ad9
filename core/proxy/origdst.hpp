// The original destination of a connection steered to a transparent
// listener: with TPROXY (IP_TRANSPARENT) the accepted socket's own address,
// with iptables REDIRECT what conntrack remembers (SO_ORIGINAL_DST).
#pragma once

#include <netinet/in.h>
#include <optional>
#include <sys/socket.h>

namespace sonic::proxy {

// FD is an accepted socket. Returns nullopt when the destination cannot be
// known, or when it is the listener itself (a client that connected to the
// proxy directly, which would loop).
std::optional<sockaddr_storage> original_destination(int fd, const sockaddr_storage &listener);

// Makes a listening socket able to accept connections for any address
// (IP_TRANSPARENT / IPV6_TRANSPARENT; needs CAP_NET_ADMIN). Returns errno.
int set_transparent(int fd, int family);

} // namespace sonic::proxy
