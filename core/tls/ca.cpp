#include "tls/ca.hpp"

#include "out/error.hpp"
#include "sys/fs.hpp"
#include "tls/leaf_dir.hpp"
#include "tls/state.hpp"

#include <gnutls/pkcs12.h>
#include <sys/stat.h>

#include <cerrno>
#include <ctime>

namespace sonic::tls {

namespace {

constexpr int64_t kDay = 86400;

Error bad_ca_file(const std::string &path, const std::string &why)
{
	return env_error("load CA", why, path)
		.with_hint("`sonic ca init --force` replaces it (leaves it minted stop being trusted)");
}

void set_dn_entry(gnutls_x509_crt_t crt, const char *oid, const std::string &value)
{
	check(gnutls_x509_crt_set_dn_by_oid(crt, oid, 0, value.data(), static_cast<unsigned>(value.size())),
	      "set certificate subject", value);
}

} // namespace

std::optional<KeyType> parse_key_type(std::string_view text)
{
	if (text == "ecdsa-p256")
		return KeyType::EcdsaP256;
	if (text == "rsa-2048")
		return KeyType::Rsa2048;
	if (text == "rsa-4096")
		return KeyType::Rsa4096;
	return std::nullopt;
}

const char *key_type_name(KeyType type)
{
	switch (type) {
	case KeyType::EcdsaP256:
		return "ecdsa-p256";
	case KeyType::Rsa2048:
		return "rsa-2048";
	case KeyType::Rsa4096:
		return "rsa-4096";
	}
	return "ecdsa-p256";
}

X509Key generate_key(KeyType type)
{
	X509Key key = new_x509_key();
	int rc = 0;
	switch (type) {
	case KeyType::EcdsaP256:
		rc = gnutls_x509_privkey_generate(key.get(), GNUTLS_PK_ECDSA,
						  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
		break;
	case KeyType::Rsa2048:
		rc = gnutls_x509_privkey_generate(key.get(), GNUTLS_PK_RSA, 2048, 0);
		break;
	case KeyType::Rsa4096:
		rc = gnutls_x509_privkey_generate(key.get(), GNUTLS_PK_RSA, 4096, 0);
		break;
	}
	check(rc, "generate private key", key_type_name(type));
	return key;
}

Ca::Ca(Crt crt, X509Key key) : crt_(std::move(crt)), key_(std::move(key))
{
	signer_ = borrow_privkey(key_.get());
	check(gnutls_pcert_import_x509(&pcert_, crt_.get(), 0), "import CA certificate");
	key_id_ = subject_key_id(crt_.get());
	if (key_id_.empty())
		key_id_ = tls::key_id(crt_.get());
	cert_pem_ = export_crt(crt_.get(), GNUTLS_X509_FMT_PEM);
	cert_der_ = export_crt(crt_.get(), GNUTLS_X509_FMT_DER);
}

Ca::~Ca() { gnutls_pcert_deinit(&pcert_); }

std::shared_ptr<const Ca> Ca::generate(const CaOptions &options)
{
	if (options.common_name.empty() || options.common_name.size() > 64)
		throw usage_error("ca init", "the common name must be 1 to 64 bytes", options.common_name);
	if (options.days < 1 || options.days > 36500)
		throw usage_error("ca init", "--days must be 1 to 36500", std::to_string(options.days));
	X509Key key = generate_key(options.key_type);
	Crt crt = new_crt();
	gnutls_x509_crt_t c = crt.get();
	check(gnutls_x509_crt_set_version(c, 3), "set certificate version");
	check(gnutls_x509_crt_set_key(c, key.get()), "set certificate key");
	set_dn_entry(c, GNUTLS_OID_X520_ORGANIZATION_NAME, "sonic");
	set_dn_entry(c, GNUTLS_OID_X520_COMMON_NAME, options.common_name);
	set_random_serial(c);
	int64_t now = std::time(nullptr);
	set_validity(c, now - kDay, now + options.days * kDay);
	check(gnutls_x509_crt_set_basic_constraints(c, 1, 0), "set basic constraints");
	check(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN), "set key usage");
	std::vector<uint8_t> id = tls::key_id(key.get());
	check(gnutls_x509_crt_set_subject_key_id(c, id.data(), id.size()), "set subject key id");
	Privkey signer = borrow_privkey(key.get());
	check(gnutls_x509_crt_privkey_sign(c, c, signer.get(), GNUTLS_DIG_SHA256, 0), "sign CA certificate");
	Crt signed_crt = import_crt(export_crt(c, GNUTLS_X509_FMT_DER), GNUTLS_X509_FMT_DER, options.common_name);
	return std::shared_ptr<const Ca>(new Ca(std::move(signed_crt), std::move(key)));
}

bool Ca::exists(const std::string &state_dir)
{
	StatePaths paths(state_dir);
	struct stat st {};
	if (stat(paths.ca_file.c_str(), &st) == 0)
		return true;
	if (errno == ENOENT || errno == ENOTDIR)
		return false;
	throw errno_error("read CA", errno, paths.ca_file);
}

std::shared_ptr<const Ca> Ca::load(const std::string &state_dir)
{
	StatePaths paths(state_dir);
	if (!exists(state_dir))
		throw env_error("load CA", "there is no CA in " + paths.ca_dir + ": run `sonic ca init` first")
			.with_hint("`sonic ca init` creates one; see sonic-ca(8)");
	std::string pem = sys::read_file(paths.ca_file);
	Crt crt;
	X509Key key;
	try {
		crt = import_crt(pem, GNUTLS_X509_FMT_PEM, paths.ca_file);
		key = import_key(pem, paths.ca_file);
	} catch (const Error &e) {
		throw bad_ca_file(paths.ca_file, "the CA file is corrupt: " + e.reason());
	}
	if (tls::key_id(crt.get()) != tls::key_id(key.get()))
		throw bad_ca_file(paths.ca_file, "the CA key does not match the CA certificate");
	return std::shared_ptr<const Ca>(new Ca(std::move(crt), std::move(key)));
}

void Ca::save(const std::string &state_dir) const
{
	StatePaths paths(state_dir);
	sys::make_dir(paths.ca_dir, 0700);
	std::string pem = export_key_pem(key_.get()) + cert_pem_;
	sys::write_file_atomic(paths.ca_file, pem, 0600, true);
}

gnutls_digest_algorithm_t Ca::digest() const { return GNUTLS_DIG_SHA256; }

int64_t Ca::not_before() const { return gnutls_x509_crt_get_activation_time(crt_.get()); }

int64_t Ca::not_after() const { return gnutls_x509_crt_get_expiration_time(crt_.get()); }

std::string Ca::pkcs12() const
{
	gnutls_pkcs12_t p12 = nullptr;
	gnutls_pkcs12_bag_t bag = nullptr;
	check(gnutls_pkcs12_init(&p12), "create PKCS#12");
	std::unique_ptr<std::remove_pointer_t<gnutls_pkcs12_t>, void (*)(gnutls_pkcs12_t)> p12_owner(
		p12, gnutls_pkcs12_deinit);
	check(gnutls_pkcs12_bag_init(&bag), "create PKCS#12 bag");
	std::unique_ptr<std::remove_pointer_t<gnutls_pkcs12_bag_t>, void (*)(gnutls_pkcs12_bag_t)> bag_owner(
		bag, gnutls_pkcs12_bag_deinit);
	int index = gnutls_pkcs12_bag_set_crt(bag, crt_.get());
	check(index, "add certificate to PKCS#12");
	check(gnutls_pkcs12_bag_set_friendly_name(bag, static_cast<unsigned>(index), "sonic CA"),
	      "name PKCS#12 certificate");
	check(gnutls_pkcs12_set_bag(p12, bag), "add PKCS#12 bag");
	// SHA-1 MAC: the one every importer (older Windows, Android) reads; it
	// guards a public certificate under an empty password, so it protects nothing.
	check(gnutls_pkcs12_generate_mac(p12, ""), "MAC PKCS#12");
	gnutls_datum_t out{nullptr, 0};
	check(gnutls_pkcs12_export2(p12, GNUTLS_X509_FMT_DER, &out), "export PKCS#12");
	std::string der(reinterpret_cast<const char *>(out.data), out.size);
	gnutls_free(out.data);
	return der;
}

std::optional<ExportFormat> parse_export_format(std::string_view text)
{
	if (text == "pem")
		return ExportFormat::Pem;
	if (text == "der")
		return ExportFormat::Der;
	if (text == "p12")
		return ExportFormat::Pkcs12;
	return std::nullopt;
}

const char *export_format_name(ExportFormat format)
{
	switch (format) {
	case ExportFormat::Pem:
		return "pem";
	case ExportFormat::Der:
		return "der";
	case ExportFormat::Pkcs12:
		return "p12";
	}
	return "pem";
}

std::string ca_export(const Ca &ca, ExportFormat format)
{
	switch (format) {
	case ExportFormat::Pem:
		return ca.cert_pem();
	case ExportFormat::Der:
		return ca.cert_der();
	case ExportFormat::Pkcs12:
		return ca.pkcs12();
	}
	return ca.cert_pem();
}

bool export_matches(std::string_view existing, const Ca &ca, ExportFormat format)
{
	if (format != ExportFormat::Pkcs12)
		return existing == ca_export(ca, format);
	gnutls_pkcs12_t p12 = nullptr;
	if (gnutls_pkcs12_init(&p12) < 0)
		return false;
	std::unique_ptr<std::remove_pointer_t<gnutls_pkcs12_t>, void (*)(gnutls_pkcs12_t)> owner(p12,
												    gnutls_pkcs12_deinit);
	gnutls_datum_t d = {reinterpret_cast<unsigned char *>(const_cast<char *>(existing.data())),
			    static_cast<unsigned>(existing.size())};
	if (gnutls_pkcs12_import(p12, &d, GNUTLS_X509_FMT_DER, 0) < 0 || gnutls_pkcs12_verify_mac(p12, "") < 0)
		return false;
	auto bag_at = [p12](int index) {
		gnutls_pkcs12_bag_t bag = nullptr;
		if (gnutls_pkcs12_bag_init(&bag) < 0)
			bag = nullptr;
		else if (gnutls_pkcs12_get_bag(p12, index, bag) < 0) {
			gnutls_pkcs12_bag_deinit(bag);
			bag = nullptr;
		}
		return std::unique_ptr<std::remove_pointer_t<gnutls_pkcs12_bag_t>, void (*)(gnutls_pkcs12_bag_t)>(
			bag, gnutls_pkcs12_bag_deinit);
	};
	auto bag = bag_at(0);
	if (!bag || bag_at(1) || gnutls_pkcs12_bag_get_count(bag.get()) != 1 ||
	    gnutls_pkcs12_bag_get_type(bag.get(), 0) != GNUTLS_BAG_CERTIFICATE)
		return false;
	gnutls_datum_t data{nullptr, 0};
	if (gnutls_pkcs12_bag_get_data(bag.get(), 0, &data) < 0)
		return false;
	try {
		Crt crt = import_crt(std::string_view(reinterpret_cast<const char *>(data.data), data.size),
				     GNUTLS_X509_FMT_DER, {});
		return export_crt(crt.get(), GNUTLS_X509_FMT_DER) == ca.cert_der();
	} catch (const Error &) {
		return false;
	}
}

CaInitResult ca_init(const std::string &state_dir, const CaOptions &options, bool force)
{
	StatePaths paths(state_dir);
	CaInitResult r;
	r.path = paths.ca_file;
	if (!force && Ca::exists(state_dir)) {
		r.ca = Ca::load(state_dir);
		return r;
	}
	r.ca = Ca::generate(options);
	r.ca->save(state_dir);
	r.changed = true;
	if (force)
		r.leaves_removed = LeafDir(paths.certs_dir).remove_all().size();
	return r;
}

} // namespace sonic::tls
