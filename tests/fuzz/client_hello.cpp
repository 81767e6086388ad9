// libFuzzer target: the ClientHello peek (core/tls/peek.cpp) over arbitrary
// first bytes of a connection, with the properties the proxy relies on when
// it decides before any byte is consumed: no read past the input, and a
// hello judged whole stays judged the same however its bytes were cut.
#include "tls/peek.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

void require(bool ok, const char *what)
{
	if (!ok) {
		std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
		std::abort();
	}
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	// A copy of exactly SIZE bytes: ASan sees any read past the end.
	const std::string bytes(reinterpret_cast<const char *>(data), size);
	const sonic::tls::ClientHello h = sonic::tls::parse_client_hello(bytes);
	if (h.status != sonic::tls::HelloStatus::Complete)
		return 0;
	require(h.sni.find('\0') == std::string::npos, "NUL in the SNI");
	for (char c : h.sni)
		require(!(c >= 'A' && c <= 'Z'), "SNI not lowercased");
	for (const std::string &p : h.alpn)
		require(!p.empty(), "empty ALPN name accepted");
	require(!h.versions.empty(), "no version");
	require(h.has_supported_versions || h.versions == std::vector<uint16_t>{h.legacy_version},
		"versions other than legacy_version without supported_versions");
	const uint16_t best = h.best_modern();
	require(best == 0 || best == 0x0303 || (best == 0x0304 && h.has_supported_versions),
		"TLS 1.3 chosen without supported_versions");
	// Any prefix asks for more or is the same whole hello.
	for (size_t cut : {size / 2, size > 0 ? size - 1 : 0}) {
		const sonic::tls::ClientHello p = sonic::tls::parse_client_hello(std::string(bytes, 0, cut));
		require(p.status == sonic::tls::HelloStatus::NeedMore || p.status == sonic::tls::HelloStatus::Complete,
			"a prefix of a whole hello judged otherwise");
		if (p.status == sonic::tls::HelloStatus::Complete)
			require(p.sni == h.sni && p.alpn == h.alpn && p.versions == h.versions, "a prefix read differently");
	}
	return 0;
}
