#include "tls/gnutls.hpp"

#include "out/error.hpp"

#include <arpa/inet.h>
#include <gnutls/crypto.h>

#include <ctime>

namespace sonic::tls {

namespace {

struct Datum {
	gnutls_datum_t d{nullptr, 0};
	~Datum() { gnutls_free(d.data); }
	std::string str() const { return std::string(reinterpret_cast<const char *>(d.data), d.size); }
};

gnutls_datum_t view(std::string_view s)
{
	return {reinterpret_cast<unsigned char *>(const_cast<char *>(s.data())), static_cast<unsigned>(s.size())};
}

template <typename Fn>
std::vector<uint8_t> id_bytes(Fn fn)
{
	std::vector<uint8_t> out(64);
	size_t size = out.size();
	if (fn(out.data(), &size) < 0)
		return {};
	out.resize(size);
	return out;
}

} // namespace

void check(int rc, const char *op, const std::string &object)
{
	if (rc < 0)
		throw kernel_error(op, gnutls_strerror(rc), object);
}

Crt new_crt()
{
	gnutls_x509_crt_t p = nullptr;
	check(gnutls_x509_crt_init(&p), "create certificate");
	return Crt(p);
}

X509Key new_x509_key()
{
	gnutls_x509_privkey_t p = nullptr;
	check(gnutls_x509_privkey_init(&p), "create private key");
	return X509Key(p);
}

Crt import_crt(std::string_view data, gnutls_x509_crt_fmt_t format, const std::string &object)
{
	Crt crt = new_crt();
	gnutls_datum_t d = view(data);
	check(gnutls_x509_crt_import(crt.get(), &d, format), "parse certificate", object);
	return crt;
}

X509Key import_key(std::string_view pem, const std::string &object)
{
	X509Key key = new_x509_key();
	gnutls_datum_t d = view(pem);
	check(gnutls_x509_privkey_import2(key.get(), &d, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN),
	      "parse private key", object);
	return key;
}

Privkey borrow_privkey(gnutls_x509_privkey_t key)
{
	gnutls_privkey_t p = nullptr;
	check(gnutls_privkey_init(&p), "create private key");
	Privkey out(p);
	check(gnutls_privkey_import_x509(out.get(), key, 0), "import private key");
	return out;
}

std::string export_crt(gnutls_x509_crt_t crt, gnutls_x509_crt_fmt_t format)
{
	Datum d;
	check(gnutls_x509_crt_export2(crt, format, &d.d), "export certificate");
	return d.str();
}

std::string export_key_pem(gnutls_x509_privkey_t key)
{
	Datum d;
	check(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &d.d),
	      "export private key");
	return d.str();
}

std::vector<uint8_t> key_id(gnutls_x509_crt_t crt)
{
	return id_bytes([crt](uint8_t *out, size_t *size) { return gnutls_x509_crt_get_key_id(crt, 0, out, size); });
}

std::vector<uint8_t> key_id(gnutls_x509_privkey_t key)
{
	return id_bytes([key](uint8_t *out, size_t *size) { return gnutls_x509_privkey_get_key_id(key, 0, out, size); });
}

std::vector<uint8_t> subject_key_id(gnutls_x509_crt_t crt)
{
	return id_bytes(
		[crt](uint8_t *out, size_t *size) { return gnutls_x509_crt_get_subject_key_id(crt, out, size, nullptr); });
}

std::vector<uint8_t> authority_key_id(gnutls_x509_crt_t crt)
{
	return id_bytes([crt](uint8_t *out, size_t *size) {
		return gnutls_x509_crt_get_authority_key_id(crt, out, size, nullptr);
	});
}

std::string hex(const uint8_t *data, size_t size, bool colons)
{
	static const char digits[] = "0123456789ABCDEF";
	std::string out;
	out.reserve(size * 3);
	for (size_t i = 0; i < size; ++i) {
		if (colons && i > 0)
			out.push_back(':');
		out.push_back(digits[data[i] >> 4]);
		out.push_back(digits[data[i] & 15]);
	}
	return out;
}

std::string fingerprint_sha256(gnutls_x509_crt_t crt)
{
	uint8_t buf[32];
	size_t size = sizeof(buf);
	check(gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, buf, &size), "fingerprint certificate");
	return hex(buf, size, true);
}

std::string serial_hex(gnutls_x509_crt_t crt)
{
	uint8_t buf[40];
	size_t size = sizeof(buf);
	check(gnutls_x509_crt_get_serial(crt, buf, &size), "read certificate serial");
	return hex(buf, size);
}

std::string subject_dn(gnutls_x509_crt_t crt)
{
	Datum d;
	check(gnutls_x509_crt_get_dn3(crt, &d.d, 0), "read certificate subject");
	return d.str();
}

std::string issuer_dn(gnutls_x509_crt_t crt)
{
	Datum d;
	check(gnutls_x509_crt_get_issuer_dn3(crt, &d.d, 0), "read certificate issuer");
	return d.str();
}

std::string key_type(gnutls_x509_crt_t crt)
{
	unsigned bits = 0;
	int algo = gnutls_x509_crt_get_pk_algorithm(crt, &bits);
	if (algo == GNUTLS_PK_RSA)
		return "rsa-" + std::to_string(bits);
	if (algo == GNUTLS_PK_ECDSA) {
		gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
		Datum x, y;
		if (gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x.d, &y.d) == 0) {
			if (curve == GNUTLS_ECC_CURVE_SECP256R1)
				return "ecdsa-p256";
			if (curve == GNUTLS_ECC_CURVE_SECP384R1)
				return "ecdsa-p384";
			if (curve == GNUTLS_ECC_CURVE_SECP521R1)
				return "ecdsa-p521";
		}
		return "ecdsa";
	}
	const char *name = gnutls_pk_algorithm_get_name(static_cast<gnutls_pk_algorithm_t>(algo));
	return name ? name : "unknown";
}

std::vector<std::string> alt_names(gnutls_x509_crt_t crt)
{
	std::vector<std::string> names;
	for (unsigned seq = 0;; ++seq) {
		char buf[512];
		size_t size = sizeof(buf);
		unsigned type = 0;
		int rc = gnutls_x509_crt_get_subject_alt_name2(crt, seq, buf, &size, &type, nullptr);
		if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (rc < 0)
			continue;
		if (type == GNUTLS_SAN_DNSNAME) {
			names.emplace_back(buf, size);
		} else if (type == GNUTLS_SAN_IPADDRESS && (size == 4 || size == 16)) {
			char text[INET6_ADDRSTRLEN];
			if (inet_ntop(size == 4 ? AF_INET : AF_INET6, buf, text, sizeof(text)))
				names.emplace_back(text);
		}
	}
	return names;
}

void set_random_serial(gnutls_x509_crt_t crt)
{
	uint8_t serial[16];
	random_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	if (serial[0] == 0)
		serial[0] = 0x01;
	check(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), "set certificate serial");
}

void set_validity(gnutls_x509_crt_t crt, int64_t not_before, int64_t not_after)
{
	check(gnutls_x509_crt_set_activation_time(crt, static_cast<time_t>(not_before)), "set certificate validity");
	check(gnutls_x509_crt_set_expiration_time(crt, static_cast<time_t>(not_after)), "set certificate validity");
}

void random_bytes(void *out, size_t size)
{
	check(gnutls_rnd(GNUTLS_RND_NONCE, out, size), "generate random bytes");
}

std::string base64(std::string_view data)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	std::string out;
	out.reserve((data.size() + 2) / 3 * 4);
	for (size_t i = 0; i < data.size(); i += 3) {
		uint32_t n = static_cast<uint8_t>(data[i]) << 16;
		if (i + 1 < data.size())
			n |= static_cast<uint8_t>(data[i + 1]) << 8;
		if (i + 2 < data.size())
			n |= static_cast<uint8_t>(data[i + 2]);
		out.push_back(digits[(n >> 18) & 63]);
		out.push_back(digits[(n >> 12) & 63]);
		out.push_back(i + 1 < data.size() ? digits[(n >> 6) & 63] : '=');
		out.push_back(i + 2 < data.size() ? digits[n & 63] : '=');
	}
	return out;
}

} // namespace sonic::tls
