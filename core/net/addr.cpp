#include "net/addr.hpp"

#include "out/error.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <sys/socket.h>

namespace sonic::net {

namespace {
const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool bit_set(const Addr16 &a, unsigned bit) { return a[bit / 8] & (0x80 >> (bit % 8)); }
} // namespace

bool IpAddr::is_unspecified() const
{
	unsigned from = family == AF_INET ? 12 : 0;
	for (unsigned i = from; i < 16; ++i)
		if (bytes[i])
			return false;
	return true;
}

unsigned Cidr::prefix16() const { return addr.family == AF_INET ? prefix + 96 : prefix; }

IpAddr ipv4_mapped(uint32_t addr_be)
{
	IpAddr a;
	a.family = AF_INET;
	std::memcpy(a.bytes.data(), kMappedPrefix, 12);
	std::memcpy(a.bytes.data() + 12, &addr_be, 4);
	return a;
}

IpAddr addr_of_ipv6_form(const uint8_t bytes[16])
{
	IpAddr a;
	std::memcpy(a.bytes.data(), bytes, 16);
	a.family = std::memcmp(bytes, kMappedPrefix, 12) == 0 ? AF_INET : AF_INET6;
	return a;
}

Cidr cidr_of_ipv6_form(const uint8_t bytes[16], unsigned prefix16)
{
	Cidr c;
	c.addr = addr_of_ipv6_form(bytes);
	if (prefix16 < 96)
		c.addr.family = AF_INET6;
	c.prefix = c.addr.family == AF_INET ? prefix16 - 96 : prefix16;
	return c;
}

IpAddr parse_ip(std::string_view text)
{
	std::string s(text);
	struct in_addr v4{};
	if (inet_pton(AF_INET, s.c_str(), &v4) == 1)
		return ipv4_mapped(v4.s_addr);
	IpAddr a;
	if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
		a.family = AF_INET6;
		return a;
	}
	throw usage_error("parse address", "'" + s + "' is not an IPv4 or IPv6 address");
}

Cidr parse_cidr(std::string_view text)
{
	Cidr c;
	size_t slash = text.find('/');
	c.addr = parse_ip(text.substr(0, slash));
	const unsigned max = c.addr.family == AF_INET ? 32 : 128;
	c.prefix = max;
	if (slash != std::string_view::npos) {
		std::string_view len = text.substr(slash + 1);
		unsigned value = 0;
		auto [ptr, ec] = std::from_chars(len.data(), len.data() + len.size(), value);
		if (len.empty() || ec != std::errc() || ptr != len.data() + len.size() || value > max)
			throw usage_error("parse prefix", "'" + std::string(len) + "' is not a prefix length 0-" +
							  std::to_string(max),
					  std::string(text));
		c.prefix = value;
	}
	for (unsigned bit = c.prefix16(); bit < 128; ++bit)
		if (bit_set(c.addr.bytes, bit))
			throw usage_error("parse prefix", "address has bits set beyond the prefix length",
					  std::string(text));
	return c;
}

Endpoint parse_endpoint(std::string_view text)
{
	Endpoint e;
	std::string_view host, port;
	if (!text.empty() && text.front() == '[') {
		size_t close = text.find(']');
		if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
			throw usage_error("parse address", "expected [ADDR]:PORT", std::string(text));
		host = text.substr(1, close - 1);
		port = text.substr(close + 2);
		e.addr = parse_ip(host);
		if (e.addr.family != AF_INET6)
			throw usage_error("parse address", "brackets are for IPv6 addresses", std::string(text));
	} else {
		size_t colon = text.rfind(':');
		if (colon == std::string_view::npos || text.find(':') != colon)
			throw usage_error("parse address", "expected ADDR:PORT (IPv6 as [ADDR]:PORT)", std::string(text));
		host = text.substr(0, colon);
		port = text.substr(colon + 1);
		e.addr = parse_ip(host);
	}
	unsigned value = 0;
	auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
	if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535)
		throw usage_error("parse address", "'" + std::string(port) + "' is not a port 1-65535", std::string(text));
	e.port = static_cast<uint16_t>(value);
	return e;
}

std::string to_string(const IpAddr &addr)
{
	char buf[INET6_ADDRSTRLEN] = {};
	if (addr.family == AF_INET)
		inet_ntop(AF_INET, addr.bytes.data() + 12, buf, sizeof(buf));
	else
		inet_ntop(AF_INET6, addr.bytes.data(), buf, sizeof(buf));
	return buf;
}

std::string to_string(const Cidr &cidr) { return to_string(cidr.addr) + "/" + std::to_string(cidr.prefix); }

std::string to_string(const Endpoint &e) { return host_port(to_string(e.addr), e.port); }

std::string host_port(std::string_view host, uint16_t port)
{
	const bool bracket = host.find(':') != std::string_view::npos;
	std::string out;
	out.reserve(host.size() + 8);
	if (bracket)
		out += '[';
	out += host;
	if (bracket)
		out += ']';
	out += ':';
	out += std::to_string(port);
	return out;
}

bool contains(const Cidr &cidr, const Addr16 &addr)
{
	const unsigned bits = cidr.prefix16();
	for (unsigned i = 0; i < 16 && i * 8 < bits; ++i) {
		const unsigned take = std::min(8u, bits - i * 8);
		const uint8_t mask = static_cast<uint8_t>(0xff00u >> take);
		if ((cidr.addr.bytes[i] & mask) != (addr[i] & mask))
			return false;
	}
	return true;
}

} // namespace sonic::net
