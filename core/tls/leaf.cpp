#include "tls/leaf.hpp"

#include "out/error.hpp"


namespace sonic::tls {

namespace {

constexpr int64_t kDay = 86400;
constexpr size_t kMaxCommonName = 64;

// NAME as a subject alternative name of C: an IP address or a DNS name.
// FLAGS: GNUTLS_FSAN_SET for the first, GNUTLS_FSAN_APPEND after.
void add_san(gnutls_x509_crt_t c, const HostName &name, unsigned flags)
{
	const int rc = name.addr_len
			       ? gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_IPADDRESS, name.addr, name.addr_len,
								      flags)
			       : gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_DNSNAME, name.text.data(),
								      static_cast<unsigned>(name.text.size()), flags);
	check(rc, "set subject alternative name", name.text);
}

} // namespace

LeafKey::LeafKey(X509Key key) : key_(std::move(key))
{
	signer_ = borrow_privkey(key_.get());
	id_ = key_id(key_.get());
}

std::shared_ptr<const LeafKey> LeafKey::generate()
{
	return std::make_shared<const LeafKey>(generate_key(KeyType::EcdsaP256));
}

std::shared_ptr<const LeafKey> LeafKey::parse(std::string_view pem, const std::string &object)
{
	return std::make_shared<const LeafKey>(import_key(pem, object));
}

Leaf::Leaf(std::shared_ptr<const Ca> ca, Crt crt, std::shared_ptr<const LeafKey> key, bool own_key)
	: ca_(std::move(ca)), crt_(std::move(crt)), key_(std::move(key)), own_key_(own_key)
{
	names_ = alt_names(crt_.get());
	if (names_.empty())
		throw kernel_error("read leaf certificate", "it has no subject alternative name");
	not_before_ = gnutls_x509_crt_get_activation_time(crt_.get());
	not_after_ = gnutls_x509_crt_get_expiration_time(crt_.get());
	cert_pem_ = export_crt(crt_.get(), GNUTLS_X509_FMT_PEM);
	check(gnutls_pcert_import_x509(&chain_[0], crt_.get(), 0), "import leaf certificate");
	// The CA's entry is shared, not copied: ca_ keeps it alive and only
	// chain_[0] is ours to free.
	chain_[1] = ca_->pcert();
}

Leaf::~Leaf() { gnutls_pcert_deinit(&chain_[0]); }

std::string Leaf::file_text() const { return own_key_ ? cert_pem_ + key_->pem() : cert_pem_; }

std::shared_ptr<const Leaf> Leaf::mint(std::shared_ptr<const Ca> ca, const HostName &name, int days,
				       std::shared_ptr<const LeafKey> key, bool own_key, int64_t now,
				       const std::vector<HostName> &also)
{
	if (days < 1 || days > kMaxLeafDays)
		throw usage_error("mint certificate", "validity must be 1 to 397 days", std::to_string(days));
	if (!key) {
		key = LeafKey::generate();
		own_key = true;
	}
	Crt crt = new_crt();
	gnutls_x509_crt_t c = crt.get();
	check(gnutls_x509_crt_set_version(c, 3), "set certificate version", name.text);
	check(gnutls_x509_crt_set_key(c, key->x509()), "set certificate key", name.text);
	if (name.text.size() <= kMaxCommonName)
		check(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, name.text.data(),
						    static_cast<unsigned>(name.text.size())),
		      "set certificate subject", name.text);
	else
		check(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, "sonic", 5),
		      "set certificate subject", name.text);
	set_random_serial(c);
	set_validity(c, now - kDay, now + days * kDay);
	add_san(c, name, GNUTLS_FSAN_SET);
	for (const HostName &n : also)
		if (n.text != name.text)
			add_san(c, n, GNUTLS_FSAN_APPEND);
	check(gnutls_x509_crt_set_basic_constraints(c, 0, -1), "set basic constraints", name.text);
	check(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_DIGITAL_SIGNATURE), "set key usage", name.text);
	check(gnutls_x509_crt_set_key_purpose_oid(c, GNUTLS_KP_TLS_WWW_SERVER, 0), "set extended key usage",
	      name.text);
	check(gnutls_x509_crt_set_subject_key_id(c, key->id().data(), key->id().size()), "set subject key id",
	      name.text);
	check(gnutls_x509_crt_set_authority_key_id(c, ca->key_id().data(), ca->key_id().size()),
	      "set authority key id", name.text);
	check(gnutls_x509_crt_privkey_sign(c, ca->crt(), ca->signer(), ca->digest(), 0), "sign leaf certificate",
	      name.text);
	// GnuTLS reads a certificate's extensions back only once it is parsed.
	Crt signed_crt = import_crt(export_crt(c, GNUTLS_X509_FMT_DER), GNUTLS_X509_FMT_DER, name.text);
	return std::make_shared<const Leaf>(std::move(ca), std::move(signed_crt), std::move(key), own_key);
}

std::shared_ptr<const Leaf> Leaf::parse(std::shared_ptr<const Ca> ca, std::string_view file,
					const std::shared_ptr<const LeafKey> &shared_key, const std::string &path)
{
	Crt crt = import_crt(file, GNUTLS_X509_FMT_PEM, path);
	if (authority_key_id(crt.get()) != ca->key_id())
		return nullptr;
	std::vector<uint8_t> id = key_id(crt.get());
	if (file.find("PRIVATE KEY-----") != std::string_view::npos) {
		auto key = LeafKey::parse(file, path);
		if (key->id() != id)
			throw kernel_error("read leaf certificate", "its key does not match its certificate", path);
		return std::make_shared<const Leaf>(std::move(ca), std::move(crt), std::move(key), true);
	}
	if (!shared_key || shared_key->id() != id)
		throw kernel_error("read leaf certificate", "it holds no key and its key is not the shared leaf key",
				   path);
	return std::make_shared<const Leaf>(std::move(ca), std::move(crt), shared_key, false);
}

} // namespace sonic::tls
