// What every worker's TLS shares: the server credentials that serve the
// store's leaves, the session ticket key (GnuTLS rotates the keys it
// derives from it, and every worker derives the same ones, so a client
// resumes on any worker), the client credentials for origins (the system
// trust store plus --upstream-ca), the priorities, and the certificate
// lookup that never blocks a worker.
#pragma once

#include "proxy/asio.hpp"
#include "tls/store.hpp"

#include <gnutls/gnutls.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace sonic::proxy {

// A leaf for a name, looked up without stalling the event loop: a leaf in
// memory answers at once; a miss loads or mints on a small thread pool and
// the coroutine resumes on its own executor. Concurrent misses for one
// name mint once (the store's single flight).
class CertLookup {
public:
	CertLookup(std::shared_ptr<tls::CertStore> store, unsigned threads);
	~CertLookup();

	struct Result {
		std::shared_ptr<const tls::Leaf> leaf; // null on failure
		bool hit = false;                      // from memory, on the worker
		tls::LeafSource source = tls::LeafSource::Memory;
		std::string error; // why there is no leaf
	};
	// NAME: an SNI, or a destination address as text. ALSO: the names of
	// the origin's certificate, which the leaf is to carry too (a leaf in
	// memory without them is minted again with them).
	awaitable<Result> get(const std::string &name, const std::vector<std::string> &also = {});
	tls::CertStore &store() { return *store_; }
	// Ends the mint threads (a mint in progress finishes; its waiter is
	// never resumed): before the workers' io_contexts go.
	void shutdown();

private:
	std::shared_ptr<tls::CertStore> store_;
	// The mint threads run at a lower priority (nice 10) than the workers:
	// on a busy host a burst of new names slows its own handshakes, not
	// every open connection.
	asio::io_context pool_;
	asio::executor_work_guard<asio::io_context::executor_type> work_;
	std::vector<std::thread> threads_;
};

class TlsContext {
public:
	// STORE: the CA's leaves for terminating clients' TLS, or null where
	// sonic only speaks TLS to origins (no CA needed). UPSTREAM_CA: a PEM
	// file of extra roots for origins, or empty. Throws a sonic error when
	// a file cannot be read.
	TlsContext(std::shared_ptr<tls::CertStore> store, const std::string &upstream_ca);
	~TlsContext();
	TlsContext(const TlsContext &) = delete;
	TlsContext &operator=(const TlsContext &) = delete;

	gnutls_certificate_credentials_t server_credentials() const { return server_; }
	gnutls_certificate_credentials_t client_credentials() const { return client_; }
	gnutls_priority_t server_priority() const { return server_prio_; }
	gnutls_priority_t client_priority() const { return client_prio_; }
	const gnutls_datum_t *ticket_key() const { return &ticket_key_; }
	// Whether clients' TLS can be terminated (there is a store).
	bool terminates() const { return lookup_ != nullptr; }
	// Only where terminates().
	CertLookup &lookup() { return *lookup_; }
	// True the first time a client at IP rejects the leaf for NAME (an
	// alert such as unknown_ca): that is logged once per client and name.
	bool first_rejection(const std::string &ip, const std::string &name);

private:
	gnutls_certificate_credentials_t server_ = nullptr;
	gnutls_certificate_credentials_t client_ = nullptr;
	gnutls_priority_t server_prio_ = nullptr;
	gnutls_priority_t client_prio_ = nullptr;
	gnutls_datum_t ticket_key_{nullptr, 0};
	std::unique_ptr<CertLookup> lookup_;
	std::mutex rejections_mutex_;
	std::unordered_set<std::string> rejections_;
};

} // namespace sonic::proxy
