// The system trust store: installing sonic's CA so every TLS client of the
// host trusts the leaves sonic mints, and taking it out again.
#pragma once

#include "tls/ca.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sonic::tls {

struct TrustStore {
	std::string layout;               // "debian" or "rhel"
	std::string file;                 // where sonic's CA goes
	std::vector<std::string> update;  // the command that rebuilds the bundles after an addition
	std::vector<std::string> rebuild; // ... after a removal (Debian's leaves dangling links otherwise)
};

// The layout under ROOT ("/" on a live system): Debian
// (/usr/local/share/ca-certificates + update-ca-certificates) or RHEL
// (/etc/pki/ca-trust/source/anchors + update-ca-trust); nullopt when neither.
std::optional<TrustStore> detect_trust_store(const std::string &root = "/");

struct TrustResult {
	bool changed = false;
	TrustStore store;
};

// Installs CA's certificate and rebuilds the bundles; unchanged when the
// same certificate is already installed. Environment error when no layout
// is found, the file cannot be written (not root) or the update fails.
TrustResult trust_install(const Ca &ca);
// Removes sonic's CA and rebuilds the bundles; unchanged when absent.
TrustResult trust_remove();
// Whether the system store holds CA (nullopt: no known layout).
std::optional<bool> is_trusted(const Ca &ca);

} // namespace sonic::tls
