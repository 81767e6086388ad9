// IP addresses, prefixes and ADDR:PORT endpoints as operators write them.
// Every address is kept in IPv6 form (IPv4 as ::ffff:a.b.c.d), the form the
// BPF maps use, with the family it was written in.
#pragma once

#include "net/local.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace sonic::net {

struct IpAddr {
	int family = 0; // AF_INET or AF_INET6
	Addr16 bytes{};
	bool operator==(const IpAddr &) const = default;
	bool is_unspecified() const;
};

// prefix counts bits of the address as written (0-32 for IPv4).
struct Cidr {
	IpAddr addr;
	unsigned prefix = 0;
	bool operator==(const Cidr &) const = default;
	// The prefix length in IPv6 form (IPv4 /24 is /120).
	unsigned prefix16() const;
};

struct Endpoint {
	IpAddr addr;
	uint16_t port = 0;
	bool operator==(const Endpoint &) const = default;
};

// Each throws a usage error (exit 1) naming the bad text.
IpAddr parse_ip(std::string_view text);
// "10.0.0.0/8", "2001:db8::/32", or an address alone (a host prefix). Bits
// set beyond the prefix are an error, as in `ip route`.
Cidr parse_cidr(std::string_view text);
// Whether ADDR (in IPv6 form) lies in CIDR.
bool contains(const Cidr &cidr, const Addr16 &addr);

// "10.0.0.1:8080", "[2001:db8::1]:8080".
Endpoint parse_endpoint(std::string_view text);

// An IPv4-mapped address in IPv6 form.
IpAddr ipv4_mapped(uint32_t addr_be);
// An address in IPv6 form as a map holds it: IPv4 when it is IPv4-mapped.
IpAddr addr_of_ipv6_form(const uint8_t bytes[16]);
// A prefix in IPv6 form (PREFIX16 bits): IPv4 when it lies in the
// IPv4-mapped range (::ffff:0:0/96 or longer).
Cidr cidr_of_ipv6_form(const uint8_t bytes[16], unsigned prefix16);

std::string to_string(const IpAddr &addr);
std::string to_string(const Cidr &cidr);
std::string to_string(const Endpoint &endpoint);
// The one way sonic writes ADDR:PORT: "10.0.0.1:80", "[2001:db8::1]:80",
// "name:80"; HOST as text (an address, a name, or "*").
std::string host_port(std::string_view host, uint16_t port);

} // namespace sonic::net
