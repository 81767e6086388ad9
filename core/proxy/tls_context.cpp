#include "proxy/tls_context.hpp"

#include "out/error.hpp"
#include "tls/gnutls.hpp"
#include "tls/leaf.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sonic::proxy {

namespace {

// TLS 1.2 and 1.3 only; AEAD ciphers with forward secrecy; renegotiation
// refused (safe renegotiation is GnuTLS's default, and sonic never asks).
// X25519 first: with GnuTLS's default order (P-256 first) and server
// precedence, every client that sends an X25519 key share (OpenSSL, curl,
// browsers) got a HelloRetryRequest, a round trip and a key exchange more.
constexpr const char *kServerPriority =
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
	"-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-MAC-ALL:+AEAD:"
	"-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-X448:+GROUP-SECP521R1:%SERVER_PRECEDENCE";
// Origins: what GnuTLS offers by default, TLS 1.2 at least.
constexpr const char *kClientPriority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";

// The leaf a server session was given (gnutls_session_get_ptr's object
// is the engine; its first member says which leaf).
int retrieve(gnutls_session_t session, const gnutls_datum_t *, int, const gnutls_pk_algorithm_t *, int,
	     gnutls_pcert_st **pcert, unsigned *pcert_length, gnutls_privkey_t *key)
{
	auto *leaf = static_cast<const tls::Leaf *>(gnutls_session_get_ptr(session));
	if (!leaf)
		return -1;
	*pcert = const_cast<gnutls_pcert_st *>(leaf->chain());
	*pcert_length = leaf->chain_length();
	*key = leaf->privkey();
	return 0;
}

} // namespace

CertLookup::CertLookup(std::shared_ptr<tls::CertStore> store, unsigned threads)
	: store_(std::move(store)), work_(pool_.get_executor())
{
	for (unsigned i = 0; i < threads; ++i)
		threads_.emplace_back([this] {
			setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
			pool_.run();
		});
}

CertLookup::~CertLookup() { shutdown(); }

void CertLookup::shutdown()
{
	work_.reset();
	pool_.stop();
	for (std::thread &t : threads_)
		if (t.joinable())
			t.join();
}

awaitable<CertLookup::Result> CertLookup::get(const std::string &name, const std::vector<std::string> &also)
{
	Result r;
	r.leaf = store_->cached_for_sni(name);
	if (r.leaf && tls::CertStore::covers(*r.leaf, also)) {
		r.hit = true;
		co_return r;
	}
	// A miss: the store loads or mints on the pool; this coroutine resumes
	// on its worker when that is done.
	tls::CertStore *store = store_.get();
	std::string key = name;
	std::vector<std::string> names = also;
	auto produce = [store, key, names]() -> awaitable<Result> {
		Result m;
		try {
			tls::Fetched f = store->fetch_covering(key, names);
			m.leaf = std::move(f.leaf);
			m.source = f.source;
		} catch (const std::exception &e) {
			m.error = e.what();
		}
		co_return m;
	};
	Result got = co_await asio::co_spawn(pool_, produce, asio::use_awaitable);
	co_return got;
}

TlsContext::TlsContext(std::shared_ptr<tls::CertStore> store, const std::string &upstream_ca)
{
	if (store)
		lookup_ = std::make_unique<CertLookup>(std::move(store), 2);
	tls::check(gnutls_certificate_allocate_credentials(&server_), "gnutls_certificate_allocate_credentials");
	gnutls_certificate_set_retrieve_function2(server_, retrieve);
	tls::check(gnutls_certificate_allocate_credentials(&client_), "gnutls_certificate_allocate_credentials");
	int n = gnutls_certificate_set_x509_system_trust(client_);
	if (n < 0)
		tls::check(n, "gnutls_certificate_set_x509_system_trust");
	if (!upstream_ca.empty()) {
		struct stat st;
		if (stat(upstream_ca.c_str(), &st) != 0)
			throw errno_error("read --upstream-ca", errno, upstream_ca);
		n = gnutls_certificate_set_x509_trust_file(client_, upstream_ca.c_str(), GNUTLS_X509_FMT_PEM);
		if (n <= 0)
			throw usage_error("read --upstream-ca", n < 0 ? gnutls_strerror(n) : "no certificate in the file",
					  upstream_ca);
	}
	const char *where = nullptr;
	tls::check(gnutls_priority_init(&server_prio_, kServerPriority, &where), "gnutls_priority_init");
	tls::check(gnutls_priority_init(&client_prio_, kClientPriority, &where), "gnutls_priority_init");
	tls::check(gnutls_session_ticket_key_generate(&ticket_key_), "gnutls_session_ticket_key_generate");
}

bool TlsContext::first_rejection(const std::string &ip, const std::string &name)
{
	std::lock_guard<std::mutex> lock(rejections_mutex_);
	if (rejections_.size() > 10000)
		rejections_.clear(); // bounded: a few repeats beat unbounded memory
	return rejections_.insert(ip + " " + name).second;
}

TlsContext::~TlsContext()
{
	if (ticket_key_.data) {
		gnutls_memset(ticket_key_.data, 0, ticket_key_.size);
		gnutls_free(ticket_key_.data);
	}
	gnutls_priority_deinit(server_prio_);
	gnutls_priority_deinit(client_prio_);
	gnutls_certificate_free_credentials(server_);
	gnutls_certificate_free_credentials(client_);
}

} // namespace sonic::proxy
