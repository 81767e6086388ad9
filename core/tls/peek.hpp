// What a TLS ClientHello says before any byte of it is consumed: the name
// the client asks for (SNI), the protocols it offers (ALPN) and the
// versions it speaks. The proxy peeks at a connection's first bytes and
// decides with this whether to intercept it, pass it through, or treat it
// as something other than TLS. The hello may arrive over several TCP
// segments and span several TLS records; parse_client_hello() is given all
// the bytes seen so far and says whether it needs more.
// Model: Envoy's tls_inspector.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::tls {

// A hello bigger than this (its handshake message, across records) is
// refused: no legitimate client needs more, and the peek buffer is bounded.
constexpr size_t kMaxHelloBytes = 16384;

enum class HelloStatus {
	Complete, // the whole ClientHello was read: the facts are set
	NeedMore, // a TLS handshake record so far; more bytes are needed
	NotTls,   // the first bytes are not a TLS handshake record
	Malformed, // TLS, but the hello breaks the format
	TooBig,   // the hello is over kMaxHelloBytes
};
const char *hello_status_name(HelloStatus s);

struct ClientHello {
	HelloStatus status = HelloStatus::NeedMore;
	std::string sni;                // the host_name, lower case; empty when none
	std::vector<std::string> alpn;  // as offered, in order
	// The versions offered: supported_versions when present (never empty
	// then: RFC 8446 4.2.1 gives it at least one), else the legacy
	// client_version. 0x0303 is TLS 1.2, 0x0304 TLS 1.3.
	std::vector<uint16_t> versions;
	uint16_t legacy_version = 0;
	// Whether the hello had supported_versions: then legacy_version plays no
	// part in choosing a version (RFC 8446 4.2.1).
	bool has_supported_versions = false;
	// Whether VERSION is in `versions`, as the client wrote it.
	bool offers(uint16_t version) const;
	// The highest version offered that is TLS 1.2 or 1.3, or 0. A hello
	// without supported_versions offers TLS 1.2 at most, whatever its
	// legacy_version says.
	uint16_t best_modern() const;
};

// Parses BYTES, the connection's first bytes (as many as were peeked).
ClientHello parse_client_hello(std::string_view bytes);

// Whether NAME matches GLOB: '*' matches any run of characters inside one
// label ("*.example.com" matches "a.example.com", not "a.b.example.com"); a
// leading "**." matches any number of labels, the bare domain included.
// Case-insensitive.
bool name_matches(std::string_view glob, std::string_view name);

// "TLS 1.2", "TLS 1.3", "SSL 3.0", ...
std::string version_name(uint16_t version);

} // namespace sonic::tls
