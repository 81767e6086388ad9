#include "http/target.hpp"

#include "http/message.hpp"

#include <arpa/inet.h>
#include <cctype>
#include <cstring>

namespace sonic::http {

std::string_view host_part(std::string_view authority)
{
	if (!authority.empty() && authority[0] == '[') {
		size_t close = authority.find(']');
		return close == std::string_view::npos ? authority : authority.substr(0, close + 1);
	}
	size_t colon = authority.find(':');
	return colon == std::string_view::npos ? authority : authority.substr(0, colon);
}

namespace {

// RFC 3986 reg-name: unreserved, sub-delims and percent-encoded bytes.
bool is_reg_name(std::string_view s)
{
	for (size_t i = 0; i < s.size(); ++i) {
		const char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (c == '%') {
			if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
			    !std::isxdigit(static_cast<unsigned char>(s[i + 2])))
				return false;
			i += 2;
			continue;
		}
		if (c == '\0' || !std::strchr("-._~!$&'()*+,;=", c))
			return false;
	}
	return true;
}

bool is_ipv6_literal(std::string_view s)
{
	unsigned char buf[16];
	return s.size() < INET6_ADDRSTRLEN && inet_pton(AF_INET6, std::string(s).c_str(), buf) == 1;
}

} // namespace

std::optional<Authority> parse_authority(std::string_view authority, uint16_t default_port)
{
	std::string_view host = host_part(authority);
	std::string_view rest = authority.substr(host.size());
	Authority a;
	a.port = default_port;
	if (!rest.empty()) {
		if (rest[0] != ':' || rest.size() == 1)
			return std::nullopt;
		unsigned port = 0;
		for (char c : rest.substr(1)) {
			if (c < '0' || c > '9')
				return std::nullopt;
			port = port * 10 + static_cast<unsigned>(c - '0');
			if (port > 65535)
				return std::nullopt;
		}
		if (port == 0)
			return std::nullopt;
		a.port = static_cast<uint16_t>(port);
	}
	if (!host.empty() && host[0] == '[') {
		if (host.size() < 2 || host.back() != ']' || !is_ipv6_literal(host.substr(1, host.size() - 2)))
			return std::nullopt;
		host = host.substr(1, host.size() - 2);
	} else if (host.empty() || !is_reg_name(host)) {
		return std::nullopt; // an IPv4 address is a reg-name too
	}
	a.host.assign(host);
	return a;
}

std::optional<AbsoluteForm> parse_absolute_form(std::string_view target)
{
	constexpr std::string_view kHttp = "http://";
	if (target.size() < kHttp.size() || !iequals(target.substr(0, kHttp.size()), kHttp))
		return std::nullopt;
	std::string_view rest = target.substr(kHttp.size());
	size_t slash = rest.find_first_of("/?");
	AbsoluteForm f;
	f.authority = rest.substr(0, slash);
	f.origin_form = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
	if (f.authority.empty() || f.authority.find('@') != std::string_view::npos)
		return std::nullopt;
	return f;
}

} // namespace sonic::http
