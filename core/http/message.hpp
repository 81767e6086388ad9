// The HTTP/1.1 message model: a head (start line and header fields) whose
// strings are views into the connection's read buffer, parsed in place.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace sonic::http {

// Header fields the proxy acts on, recognised once while parsing so later
// passes compare a byte instead of names.
enum class Field : uint8_t {
	Other,
	Connection,
	KeepAlive,
	ProxyConnection,
	Te,
	Trailer,
	Upgrade,
	TransferEncoding,
	ContentLength,
	Host,
	Expect,
	XForwardedFor,
	Forwarded,
	Via,
	ProxyAuthorization,
	ProxyAuthenticate,
};

Field classify(std::string_view name);

// ASCII case-insensitive equality (header names, tokens).
bool iequals(std::string_view a, std::string_view b);

// SP / HTAB trimmed from both ends.
std::string_view trim_ows(std::string_view s);

struct Header {
	std::string_view name;
	std::string_view value;
	Field field = Field::Other;
};

// How the body of a message is delimited (RFC 9112 section 6).
enum class Framing : uint8_t {
	None,       // no body
	Length,     // Content-Length bytes
	Chunked,    // chunked transfer coding
	UntilClose, // a response read until the connection closes
};

struct Head {
	bool request = true;
	// Request line.
	uint8_t method = 0; // llhttp_method_t
	std::string_view method_name;
	std::string_view target;
	// Status line.
	int status = 0;
	std::string_view reason;
	uint8_t major = 1, minor = 1;

	std::vector<Header> headers;
	Framing framing = Framing::None;
	uint64_t content_length = 0;
	// The peer wants the connection kept open after this message.
	bool keep_alive = true;
	// A request asking to switch protocols (Connection: upgrade + Upgrade),
	// or a 101 response.
	bool upgrade = false;
	// Expect: 100-continue.
	bool expect_continue = false;
	std::string_view host;

	void clear();
	const Header *find(Field field) const;
	// Whether NAME is listed in a Connection header (and so hop-by-hop).
	bool connection_lists(std::string_view name) const;
	bool is_connect() const;
	bool is_head() const;
};

// Hop-by-hop fields (RFC 9110 section 7.6.1) a proxy must not forward:
// the fixed list plus the names the message's Connection header lists.
// Transfer-Encoding is not among them: sonic forwards chunked bodies as
// they came, so it keeps the header that says so.
bool is_hop_by_hop(const Head &head, const Header &header);

} // namespace sonic::http
