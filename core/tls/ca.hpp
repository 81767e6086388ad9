// sonic's certificate authority: made once by `sonic ca init`, kept as one
// file (key and certificate, 0600) so replacing it is a single rename, and
// loaded by everything that mints leaves.
#pragma once

#include "tls/gnutls.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::tls {

enum class KeyType { EcdsaP256, Rsa2048, Rsa4096 };

std::optional<KeyType> parse_key_type(std::string_view text);
const char *key_type_name(KeyType type);
// A fresh private key of TYPE.
X509Key generate_key(KeyType type);

struct CaOptions {
	KeyType key_type = KeyType::EcdsaP256;
	std::string common_name = "sonic CA";
	int days = 3650;
};

class Ca {
public:
	// A new self-signed CA: basicConstraints CA:TRUE pathlen 0, keyCertSign
	// and cRLSign, random serial, backdated a day.
	static std::shared_ptr<const Ca> generate(const CaOptions &options);
	// The CA of STATE_DIR. No CA: environment error telling to run
	// `sonic ca init`; an unreadable or corrupt file: environment error.
	static std::shared_ptr<const Ca> load(const std::string &state_dir);
	static bool exists(const std::string &state_dir);

	~Ca();
	Ca(const Ca &) = delete;
	Ca &operator=(const Ca &) = delete;

	// Writes the CA file atomically and durably (fsync), 0600 in a 0700 directory.
	void save(const std::string &state_dir) const;

	gnutls_x509_crt_t crt() const { return crt_.get(); }
	gnutls_privkey_t signer() const { return signer_.get(); }
	// The CA certificate ready to send as the last element of a chain.
	const gnutls_pcert_st &pcert() const { return pcert_; }
	// The subject key identifier leaves carry as their authority key id.
	const std::vector<uint8_t> &key_id() const { return key_id_; }
	// The digest leaves are signed with.
	gnutls_digest_algorithm_t digest() const;

	const std::string &cert_pem() const { return cert_pem_; }
	const std::string &cert_der() const { return cert_der_; }
	std::string subject() const { return subject_dn(crt_.get()); }
	std::string key_type() const { return tls::key_type(crt_.get()); }
	std::string fingerprint() const { return fingerprint_sha256(crt_.get()); }
	std::string serial() const { return serial_hex(crt_.get()); }
	int64_t not_before() const;
	int64_t not_after() const;

	// PKCS#12 holding the certificate alone (no key), MAC'd with an empty
	// password, the form browsers and Windows import as a trusted root.
	std::string pkcs12() const;

private:
	Ca(Crt crt, X509Key key);

	Crt crt_;
	X509Key key_;
	Privkey signer_;
	gnutls_pcert_st pcert_{};
	std::vector<uint8_t> key_id_;
	std::string cert_pem_, cert_der_;
};

enum class ExportFormat { Pem, Der, Pkcs12 };
std::optional<ExportFormat> parse_export_format(std::string_view text);
const char *export_format_name(ExportFormat format);
// The CA certificate (never its key) in FORMAT.
std::string ca_export(const Ca &ca, ExportFormat format);
// Whether EXISTING already is CA's certificate in FORMAT (for PKCS#12:
// holds the same certificate, since the MAC salt differs per export).
bool export_matches(std::string_view existing, const Ca &ca, ExportFormat format);

struct CaInitResult {
	bool changed = false;
	std::shared_ptr<const Ca> ca;
	std::string path;
	size_t leaves_removed = 0;
};

// `sonic ca init`: makes the CA when there is none; with FORCE replaces it
// and empties the leaf cache (leaves of the old CA are useless).
CaInitResult ca_init(const std::string &state_dir, const CaOptions &options, bool force);

} // namespace sonic::tls
