// Thin RAII over the GnuTLS handles core/tls uses, and the one way a GnuTLS
// failure becomes a sonic error (kernel_error: exit 2).
#pragma once

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::tls {

// Throws kernel_error("OP", gnutls_strerror(RC), OBJECT) when RC < 0.
void check(int rc, const char *op, const std::string &object = {});

struct CrtDeleter {
	void operator()(gnutls_x509_crt_t p) const { gnutls_x509_crt_deinit(p); }
};
struct X509KeyDeleter {
	void operator()(gnutls_x509_privkey_t p) const { gnutls_x509_privkey_deinit(p); }
};
struct PrivkeyDeleter {
	void operator()(gnutls_privkey_t p) const { gnutls_privkey_deinit(p); }
};
using Crt = std::unique_ptr<std::remove_pointer_t<gnutls_x509_crt_t>, CrtDeleter>;
using X509Key = std::unique_ptr<std::remove_pointer_t<gnutls_x509_privkey_t>, X509KeyDeleter>;
using Privkey = std::unique_ptr<std::remove_pointer_t<gnutls_privkey_t>, PrivkeyDeleter>;

Crt new_crt();
X509Key new_x509_key();

// A certificate parsed from PEM or DER (the first certificate in PEM text).
Crt import_crt(std::string_view data, gnutls_x509_crt_fmt_t format, const std::string &object);
// A private key parsed from PEM text (PKCS#8 or the legacy forms).
X509Key import_key(std::string_view pem, const std::string &object);
// An abstract key for signing over KEY, which must outlive it.
Privkey borrow_privkey(gnutls_x509_privkey_t key);

std::string export_crt(gnutls_x509_crt_t crt, gnutls_x509_crt_fmt_t format);
// Unencrypted PKCS#8 PEM.
std::string export_key_pem(gnutls_x509_privkey_t key);

// Key identifiers (SHA-1 of the public key, as in RFC 5280 method 1).
std::vector<uint8_t> key_id(gnutls_x509_crt_t crt);
std::vector<uint8_t> key_id(gnutls_x509_privkey_t key);
std::vector<uint8_t> subject_key_id(gnutls_x509_crt_t crt);
std::vector<uint8_t> authority_key_id(gnutls_x509_crt_t crt);

// "AB:CD:..." over the DER encoding.
std::string fingerprint_sha256(gnutls_x509_crt_t crt);
std::string serial_hex(gnutls_x509_crt_t crt);
std::string subject_dn(gnutls_x509_crt_t crt);
std::string issuer_dn(gnutls_x509_crt_t crt);
// "ecdsa-p256", "rsa-2048", ...
std::string key_type(gnutls_x509_crt_t crt);

// The subject alternative names, DNS names and addresses as text.
std::vector<std::string> alt_names(gnutls_x509_crt_t crt);

// A random positive 128-bit serial number (16 bytes, top bit clear as DER
// needs for a positive INTEGER, top byte never zero).
void set_random_serial(gnutls_x509_crt_t crt);
void set_validity(gnutls_x509_crt_t crt, int64_t not_before, int64_t not_after);

// Cryptographically random bytes.
void random_bytes(void *out, size_t size);

std::string hex(const uint8_t *data, size_t size, bool colons = false);
std::string base64(std::string_view data);

} // namespace sonic::tls
