// The names a leaf certificate can be minted for: DNS names, wildcards
// (*.example.com) and IPv4/IPv6 addresses, checked and put in the one
// canonical form the cache is keyed by.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sonic::tls {

enum class NameKind { Dns, Wildcard, Ipv4, Ipv6 };

struct HostName {
	std::string text; // canonical: lowercase ASCII, no trailing dot; addresses as inet_ntop prints them
	NameKind kind = NameKind::Dns;
	unsigned char addr[16] = {}; // network order, for addresses
	size_t addr_len = 0;         // 4, 16, or 0 for DNS names
};

// Checks INPUT and returns its canonical form. Internationalised names are
// converted to their ASCII (IDNA 2008, punycode) form. Throws usage_error
// naming the input and why it is refused: empty, over 253 bytes, an empty
// label (".."), a label over 63 bytes or with bytes other than letters,
// digits, '-' and '_', a label starting or ending with '-', a numeric last
// label that is no IPv4 address, a '*' anywhere but as the whole leftmost
// label of a name with at least two more labels.
HostName parse_name(std::string_view input);

// The cache key of INPUT when it is cheap to get: lowercase ASCII with the
// trailing dot dropped, in BUF when a copy is needed. Empty when the full
// parse is needed (non-ASCII, too long); never allocates. For a valid name
// already in canonical form it equals parse_name(INPUT).text.
std::string_view quick_key(std::string_view input, char (&buf)[256]);

// The wildcard that covers a DNS name one level down ("a.example.com" ->
// "*.example.com"), when that wildcard is a valid name.
std::optional<std::string> covering_wildcard(const HostName &name);

// INPUT shown in a message: control bytes escaped, long names shortened.
std::string printable_name(std::string_view input);

} // namespace sonic::tls
