// Leaf certificates: minted for one name by sonic's CA, or read back from
// the cache directory, and held ready for a GnuTLS server session.
#pragma once

#include "tls/ca.hpp"
#include "tls/gnutls.hpp"
#include "tls/names.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::tls {

// Longest leaf validity sonic mints, in days: with the day of backdating
// the span stays within the 398 days browsers accept.
constexpr int kMaxLeafDays = 397;
constexpr int kDefaultLeafDays = 30;

// An ECDSA P-256 key with its signing handle and identifier.
class LeafKey {
public:
	static std::shared_ptr<const LeafKey> generate();
	static std::shared_ptr<const LeafKey> parse(std::string_view pem, const std::string &object);

	gnutls_x509_privkey_t x509() const { return key_.get(); }
	gnutls_privkey_t privkey() const { return signer_.get(); }
	const std::vector<uint8_t> &id() const { return id_; }
	std::string pem() const { return export_key_pem(key_.get()); }

	explicit LeafKey(X509Key key);

private:
	X509Key key_;
	Privkey signer_;
	std::vector<uint8_t> id_;
};

class Leaf {
public:
	// Mints a leaf for NAME: SAN with NAME, CN only when it fits (64
	// bytes), serverAuth EKU, a random 128-bit serial, SKI and AKI, valid
	// from a day ago (clock skew) for DAYS days, signed by CA. KEY is the
	// leaf's key, its own when OWN_KEY (stored in its file) or one shared
	// by many leaves; a null KEY means a fresh one. NOW is the Unix time
	// the validity counts from.
	// ALSO: more names for the SAN after NAME (an origin's own names, as
	// mitmproxy copies them), each already canonical.
	static std::shared_ptr<const Leaf> mint(std::shared_ptr<const Ca> ca, const HostName &name, int days,
						std::shared_ptr<const LeafKey> key, bool own_key, int64_t now,
						const std::vector<HostName> &also = {});

	// Reads a leaf file (certificate, then its key unless it uses
	// SHARED_KEY). Null when CA did not issue it (the CA was replaced);
	// throws Error when the file is corrupt or its key does not match.
	static std::shared_ptr<const Leaf> parse(std::shared_ptr<const Ca> ca, std::string_view file,
						 const std::shared_ptr<const LeafKey> &shared_key, const std::string &path);

	Leaf(std::shared_ptr<const Ca> ca, Crt crt, std::shared_ptr<const LeafKey> key, bool own_key);
	~Leaf();
	Leaf(const Leaf &) = delete;
	Leaf &operator=(const Leaf &) = delete;

	// The name the leaf was minted for (its first SAN), the cache key.
	const std::string &name() const { return names_.front(); }
	const std::vector<std::string> &names() const { return names_; }
	int64_t not_before() const { return not_before_; }
	int64_t not_after() const { return not_after_; }

	// For gnutls_certificate_set_retrieve_function2(): the chain (leaf,
	// then the CA) and the key. GnuTLS neither frees nor changes them;
	// they live as long as this Leaf.
	const gnutls_pcert_st *chain() const { return chain_; }
	unsigned chain_length() const { return 2; }
	gnutls_privkey_t privkey() const { return key_->privkey(); }

	// For gnutls_certificate_set_x509_key() and friends.
	gnutls_x509_crt_t crt() const { return crt_.get(); }
	gnutls_x509_privkey_t x509_key() const { return key_->x509(); }

	const std::string &cert_pem() const { return cert_pem_; }
	// Whether the key is this leaf's own (and so lives in its file).
	bool own_key() const { return own_key_; }
	// What the cache file holds: the certificate, then the key if own.
	std::string file_text() const;

private:
	std::shared_ptr<const Ca> ca_;
	Crt crt_;
	std::shared_ptr<const LeafKey> key_;
	bool own_key_;
	gnutls_pcert_st chain_[2];
	std::vector<std::string> names_;
	int64_t not_before_ = 0, not_after_ = 0;
	std::string cert_pem_;
};

} // namespace sonic::tls
