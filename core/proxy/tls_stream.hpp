// TLS over an asio TCP socket with GnuTLS, for both ends of an intercepted
// connection: the server side facing the client (the store's leaf), and the
// client side facing the origin (SNI, verification, resumption). The socket
// is non-blocking; GnuTLS reads and writes it itself (recv/sendmsg through
// its transport functions) and, when it would block, the coroutine waits for
// the socket to be ready in the direction GnuTLS names. Bytes read from the
// socket before the handshake (a ClientHello after a CONNECT head) are fed
// to GnuTLS first.
#pragma once

#include "proxy/lane.hpp"
#include "proxy/stream.hpp"
#include "proxy/tls_context.hpp"

#include <gnutls/gnutls.h>

#include <memory>
#include <string>

namespace sonic::proxy {

// What was agreed, for the access log and filters.
struct TlsFacts {
	std::string sni;
	std::string version; // "TLS1.3"
	std::string cipher;  // "AES-128-GCM"
	std::string alpn;    // "http/1.1", or empty
	bool resumed = false;
};

class TlsEngine {
public:
	explicit TlsEngine(tcp::socket &sock) : sock_(sock) {}
	~TlsEngine();
	TlsEngine(const TlsEngine &) = delete;
	TlsEngine &operator=(const TlsEngine &) = delete;

	// The server side, serving LEAF (which must outlive the engine).
	// BEFORE: bytes of the connection read already.
	void init_server(const TlsContext &ctx, std::shared_ptr<const tls::Leaf> leaf, std::string before = {});
	// The client side to an origin: NAME goes as SNI (unless an address) and
	// is what the origin's certificate is verified for. RESUME: session
	// data from an earlier connection to the same origin, or empty.
	void init_client(const TlsContext &ctx, const std::string &name, const std::string &resume);

	// 0, or the GnuTLS error that ended the handshake; the wait's error
	// (timeout, drain) comes back as GNUTLS_E_PUSH_ERROR/PULL_ERROR with
	// error() saying so. Each step of the handshake waits for its turn in
	// LANE (the worker's), so a burst of handshakes does not hold up the
	// worker's open connections.
	awaitable<int> handshake(Lane &lane);
	awaitable<IoResult> read_some(std::span<char> buf);
	awaitable<IoResult> write(std::span<const asio::const_buffer> bufs);
	// close_notify, when the socket takes it at once.
	void bye();
	// Cancels the socket's waits; a handshake also ends when the cancel
	// came while a step waited its turn in the lane (a timeout is not lost).
	void cancel();

	TlsFacts facts() const;
	// Session data to resume with next time (client side), or empty.
	std::string session_data() const;
	// Why the last handshake or record call failed: the GnuTLS error, the
	// certificate's verification status, the alert received.
	std::string error_text() const;
	int error() const { return error_; }
	// The alert the peer sent to end the handshake, or -1.
	int alert_received() const { return alert_; }
	// Bytes read from the socket that GnuTLS has not taken yet.
	size_t read_ahead() const { return ahead_end_ - ahead_at_; }
	// The DNS names and addresses of the peer's certificate (client side).
	std::vector<std::string> peer_names() const;
	gnutls_session_t session() const { return s_; }
	tcp::socket &socket() { return sock_; }

private:
	static ssize_t pull(gnutls_transport_ptr_t self, void *data, size_t size);
	static ssize_t vec_push(gnutls_transport_ptr_t self, const giovec_t *iov, int count);
	static int pull_timeout(gnutls_transport_ptr_t self, unsigned ms);
	void set_transport();
	// Waits until the socket is ready the way GnuTLS wants it; false when
	// the wait ended otherwise (cancelled by a timeout or a drain).
	awaitable<bool> wait_ready();
	awaitable<IoResult> write_one(const char *data, size_t size);
	IoResult failed(int rc);
	void keep_tail(const unsigned char *data, size_t n);
	// recv() into DATA, the errno handed to GnuTLS when it fails.
	ssize_t receive(void *data, size_t size);
	// An empty read-ahead filled by one recv(); its result.
	ssize_t refill();

	tcp::socket &sock_;
	gnutls_session_t s_ = nullptr;
	std::shared_ptr<const tls::Leaf> leaf_;
	// Bytes of the connection read ahead of what GnuTLS has asked for:
	// those read before the engine began (a peeked or tunnelled hello),
	// then the rest of each recv. GnuTLS asks for a record's 5-byte header
	// and then its body, two system calls per record; reading ahead makes
	// it one for records up to kReadAhead. ahead_[ahead_at_, ahead_end_) is
	// unread.
	static constexpr size_t kReadAhead = 4096;
	std::unique_ptr<char[]> ahead_;
	size_t ahead_cap_ = 0;
	size_t ahead_at_ = 0;
	size_t ahead_end_ = 0;
	std::string verify_name_; // GnuTLS keeps a pointer to it
	std::string sni_;
	int error_ = 0;
	int alert_ = -1;
	bool established_ = false;
	bool cancelled_ = false;
	unsigned char tail_[16] = {};
	size_t tail_len_ = 0;
	asio::error_code wait_error_;
};

// TLS as a stream, over an engine held elsewhere (an origin connection's,
// as one side of a tunnel).
class TlsEngineStream : public ClientStream {
public:
	explicit TlsEngineStream(TlsEngine &engine) : engine_(engine) {}

	awaitable<IoResult> read_some(std::span<char> buf) override { return engine_.read_some(buf); }
	awaitable<IoResult> write(std::span<const asio::const_buffer> bufs) override { return engine_.write(bufs); }
	using ClientStream::write;
	// close_notify (when it fits), then a TCP FIN.
	awaitable<void> shutdown() override;
	void cancel() override { engine_.cancel(); }
	void close() override
	{
		asio::error_code ec;
		engine_.socket().shutdown(tcp::socket::shutdown_both, ec);
		engine_.socket().close(ec);
	}
	int raw_fd() const override { return -1; }
	tcp::socket &socket() override { return engine_.socket(); }

private:
	TlsEngine &engine_;
};

// The socket and engine a TlsStream owns, made before the stream.
struct OwnedTls {
	explicit OwnedTls(tcp::socket sock) : owned_socket(std::move(sock)), owned_engine(owned_socket) {}
	tcp::socket owned_socket;
	TlsEngine owned_engine;
};

// The client side of a session as TLS: owns its socket and engine.
class TlsStream final : private OwnedTls, public TlsEngineStream {
public:
	explicit TlsStream(tcp::socket sock) : OwnedTls(std::move(sock)), TlsEngineStream(owned_engine) {}
	TlsEngine &engine() { return owned_engine; }
};

} // namespace sonic::proxy
