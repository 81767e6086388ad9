// Request targets (RFC 9112 section 3.2) a proxy takes apart: the
// authority-form of CONNECT, and the absolute-form a forward proxy is asked
// with ("http://host:port/path").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sonic::http {

// The host of an authority or a Host value, brackets kept:
// "Example.com:8080" -> "Example.com", "[::1]:80" -> "[::1]".
std::string_view host_part(std::string_view authority);

struct Authority {
	std::string host; // an IPv6 literal without its brackets
	uint16_t port = 0;
};

// "host:port", or "host" alone (DEFAULT_PORT). The host is a reg-name (a
// name or an IPv4 address: letters, digits, "-._~!$&'()*+,;=" and %HH) or an
// IPv6 address in brackets. Nothing for an empty or malformed host, or a
// port that is not 1-65535 in decimal.
std::optional<Authority> parse_authority(std::string_view authority, uint16_t default_port);

struct AbsoluteForm {
	std::string_view authority;
	// "/path?query"; "/" when the target has neither; "?query" when it has
	// no path (append_request_line() puts the "/" before it).
	std::string_view origin_form;
};

// An "http://" target (the scheme in any case). Nothing for another form or
// scheme, an empty authority, or userinfo (not allowed in http URIs, RFC
// 9110 section 4.2.4).
std::optional<AbsoluteForm> parse_absolute_form(std::string_view target);

} // namespace sonic::http
