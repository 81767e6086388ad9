// Facts about the network namespace sonic runs in.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace sonic::net {

// An address in IPv6 form (IPv4 as ::ffff:a.b.c.d), network byte order.
using Addr16 = std::array<uint8_t, 16>;

// Every non-loopback address configured on this namespace's interfaces.
std::vector<Addr16> local_addresses();

// The kernel's cookie for this process's network namespace.
uint64_t netns_cookie();

std::string addr_to_string(const Addr16 &addr);

} // namespace sonic::net
