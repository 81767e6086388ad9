// One client connection: HTTP/1.1 exchanges (reverse, forward,
// transparent) or a tunnel (CONNECT, Upgrade, tcp routes, non-HTTP
// transparent traffic). The session talks to its client only through a
// ClientStream, reaches servers through the worker's UpstreamClient, and
// runs the route's FilterChain when it has one. An exchange reads as its
// steps: read the head, route, on_request, forward, read the response head,
// on_response, stream the body.
#pragma once

#include "http/serialize.hpp"
#include "proxy/filter.hpp"
#include "proxy/stream.hpp"
#include "proxy/tls_stream.hpp"
#include "proxy/upstream.hpp"
#include "proxy/worker.hpp"
#include "tls/peek.hpp"

#include <optional>
#include <span>
#include <sys/socket.h>

namespace sonic::proxy {

class Session {
public:
	// TICKET counts the connection against its address's limit while it lives.
	Session(Worker &worker, tcp::socket client, const config::Listener &listener, ClientLimits::Ticket ticket);
	~Session();
	Session(const Session &) = delete;
	Session &operator=(const Session &) = delete;

	// Serves the connection until it ends; the coroutine owns the session.
	static awaitable<void> serve(std::unique_ptr<Session> self);

	// ---- for the worker's sweep and drain ------------------------------
	// Its slot in the worker's deadline table.
	Clock::time_point &deadline;
	Session *prev = nullptr;
	Session *next = nullptr;
	// Waiting for the first byte of a request: drain closes such a session.
	bool idle = true;
	// Called when the deadline passed: cancels what the session waits on.
	void expire();
	// Drain: closes the session if idle, else it ends after this request.
	void drain();
	// It served a request and waits for the next (an idle keep-alive one).
	bool kept_alive() const { return requests_ > 0; }
	bool closing() const { return closing_; }

private:
	enum class Outcome { KeepAlive, Close };
	// A step that ends the exchange says how; nullopt lets it go on.
	using Stop = std::optional<Outcome>;
	// What reading a response head came to.
	enum class HeadEnd { Final, Retry, Done };
	// A response relayed, or found missing on a reused connection (retry).
	struct Relayed {
		Outcome outcome;
		bool retry;
	};

	awaitable<void> run();
	awaitable<void> run_http();
	awaitable<void> run_tcp(const tcp::endpoint *direct);
	// Waits for the first bytes of a request; false when the client is gone.
	awaitable<bool> wait_request();

	// ---- the steps of one exchange
	awaitable<Outcome> exchange();
	void begin_request();
	awaitable<Stop> read_request_head();
	void note_request(const http::Head &h);
	awaitable<Stop> route(Target &target);
	// TARGET's host and port to a server, or a 502 with the Resolve cause.
	awaitable<Stop> resolve_server(Target &target);
	awaitable<Stop> run_request_filters(const FilterChain &chain, Target &target);
	awaitable<Stop> read_small_body();
	awaitable<Outcome> forward(Target &target);
	awaitable<Stop> send_request(UpConn &up);
	awaitable<HeadEnd> read_response_head(UpConn &up, bool sent_any);
	awaitable<Stop> run_response_filters(UpConn &up);
	awaitable<Relayed> relay_response(std::unique_ptr<UpConn> up);
	awaitable<Outcome> stream_response_body(std::unique_ptr<UpConn> up);
	// How a response's body goes to the client, decided from its head.
	struct BodyPlan {
		http::Framing framing = http::Framing::None;
		bool encode = false; // until-close body, HTTP/1.1 client: sent chunked
		bool decode = false; // chunked body, HTTP/1.0 client: sent decoded, until close
		bool keep = false;   // the client's connection stays open after it
	};
	BodyPlan plan_response_body(const http::Head &h) const;
	// The client's head for H into out_, which holds it until it is sent.
	void build_response_head(const http::Head &h, const BodyPlan &plan);
	// The Connection header a response to this client needs to be KEEP (or
	// not) after it, into out_.
	void append_connection(bool keep);
	// The head while out_ holds it, then USED bytes of UP's buffer (or the
	// pieces decoded from them) as PLAN says, and the last chunk when DONE.
	// False when the client is gone.
	awaitable<bool> send_response_piece(UpConn &up, const BodyPlan &plan, http::ChunkedEncoder &chunker, size_t used,
					    bool done);
	// A body the upstream ended or stalled in: logged once, with the cause.
	void note_cut_short(const UpConn &up, int status, const asio::error_code &ec);
	awaitable<Outcome> respond(const http::Response &r);
	awaitable<bool> read_whole_body();

	// ---- tunnels
	awaitable<Outcome> connect_tunnel();
	awaitable<Outcome> tunnel_upgrade(std::unique_ptr<UpConn> up);
	// Between the client's stream and UP's (its TLS when it has one).
	awaitable<void> pump_tunnel(UpConn &up, std::span<const char> from_client, std::span<const char> from_upstream,
				    TunnelKind kind, const std::string &where);

	// ---- TLS: which stream the client gets
	// The client's first bytes as a ClientHello, peeked after what in_
	// holds already (nothing is consumed), within client_header.
	awaitable<tls::ClientHello> peek_hello();
	// Whether TLS to DST with HELLO passes through untouched ([tls]).
	bool passes_through(const tls::ClientHello &hello, const tcp::endpoint &dst) const;
	// A hello that is not to be served (malformed, too big, too slow, the
	// client gone): counted and logged; the connection closes.
	void refuse_hello(const tls::ClientHello &hello);
	// Terminates the client's TLS with a leaf for NAME: the stream becomes
	// a TlsStream. False when the handshake failed (counted, logged).
	awaitable<bool> accept_tls(const tls::ClientHello &hello, const std::string &name);
	// Forward (after CONNECT, CONN the origin's connection) and transparent
	// (CONN null): TLS with the origin as HOST, then with the client, then
	// the requests inside, through routes and filters, to that origin.
	awaitable<Outcome> intercept(const tls::ClientHello &hello, const std::string &host, const tcp::endpoint &dst,
				     std::unique_ptr<UpConn> conn);
	// Reverse listeners with tls = "intercept".
	awaitable<void> run_https();
	// Transparent with [tls] on: TLS is seen by peeking; anything else goes
	// on as without it. False when the connection is done.
	awaitable<bool> transparent_tls();

	// ---- the upstream connection, plain or TLS
	awaitable<IoResult> up_read(UpConn &up);
	awaitable<IoResult> up_write(UpConn &up, std::span<const asio::const_buffer> bufs);

	// ---- plumbing
	awaitable<bool> read_client();
	awaitable<bool> write_client(std::string_view head, std::string_view body = {});
	// Answers STATUS with a short text body and ends the connection. A 5xx
	// is logged once with CAUSE (the server, the errno or timeout, the
	// phase) and counted by it.
	awaitable<Outcome> fail(int status, const char *why, const UpstreamError *cause = nullptr);
	awaitable<Outcome> fail(const UpstreamError &e);
	// [limits] requests_per_second_per_ip: takes a token for this request.
	// Without one, true, and fail_headers_ holds the 503's Retry-After.
	bool rate_limited();
	// The upstream head for H with TARGET and HOST: the request line, the
	// end-to-end fields, then what sonic adds as a proxy.
	void build_request_head(const http::Head &h, std::string_view target, std::string_view host);
	// What earlier proxies said in the client's head, for sonic's own
	// Forwarded and Via to extend (X-Forwarded-For's values gather in
	// scratch_).
	struct PriorHops {
		std::string_view forwarded, via;
	};
	// Copies H's fields except hop-by-hop ones and those sonic rewrites.
	PriorHops copy_end_to_end_headers(const http::Head &h);
	// X-Forwarded-For, Forwarded and Via, as [headers] asks.
	void append_proxy_headers(const http::Head &h, std::string_view host, const PriorHops &prior);
	// The upstream head for H: its origin-form and authority, then the rest.
	void build_forward_head(const http::Head &h);
	// "502 for GET host/path from ADDR:PORT": the answer as 5xx log lines name it.
	std::string answer_text(int status) const;
	// Counts STATUS (an HTTP answer) and writes the access log line.
	void log_request(int status, bool count = true);
	// Whether the request may be sent again on a fresh connection when a
	// reused one turns out closed: idempotent (RFC 9110 9.2.2), no body.
	bool replayable() const { return req_.idempotent && req_.framing == http::Framing::None; }
	void set_deadline(std::chrono::milliseconds d) { deadline = worker_.now() + d; }
	void take_buffer(ReadBuffer &b);
	void give_buffer(ReadBuffer &b);
	const FilterChain *chain_for(const Target &target) const;
	ClientFacts client_facts() const;

	Worker &worker_;
	std::shared_ptr<Generation> gen_;
	const config::Config &cfg_;
	config::Mode mode_;
	size_t tcp_upstream_;
	sockaddr_storage listener_addr_{};
	std::unique_ptr<ClientStream> stream_;
	ReadBuffer in_;
	http::Parser parser_;
	std::string out_;
	// The upstream socket the session waits on, for expire().
	tcp::socket *upstream_ = nullptr;
	bool timed_out_ = false;
	bool closing_ = false;
	unsigned requests_ = 0;
	char client_text_[64] = {};
	size_t client_text_len_ = 0;
	std::string client_ip_;
	net::Addr16 client_addr_{};
	ClientLimits::Ticket ticket_;
	bool listener_tls_ = false; // a reverse listener with tls = "intercept"
	// The client's TLS: what was agreed (intercepted) or peeked (passed through).
	std::unique_ptr<TlsFacts> tls_;
	const char *tls_action_ = ""; // "intercepted", "passthrough"
	// Intercepted forward and transparent connections: every request goes
	// to this origin over TLS, or is answered 502 with why it could not be
	// reached.
	ServerState *tls_origin_ = nullptr;
	std::optional<UpstreamError> origin_failure_;
	std::vector<std::string> origin_names_; // its certificate's, for the leaf
	tcp::endpoint original_dst_;
	bool have_original_dst_ = false;
	size_t head_bytes_ = 0; // of the request head in in_, then of the response head
	int send_errno_ = 0;    // why the last request write to an upstream failed

	// The current request, copied out of the read buffer before the body
	// reuses it.
	struct Request {
		const char *method = "";
		std::string host;   // as sent, for logs
		std::string path;   // request target as sent
		std::string upstream;
		http::Framing framing = http::Framing::None;
		uint64_t content_length = 0;
		uint8_t minor = 1;
		bool keep_alive = true;
		bool head = false;
		bool idempotent = false;
		bool upgrade = false;
		bool expect_continue = false;
		std::string upgrade_to;
		uint64_t bytes_sent = 0;
		uint64_t bytes_received = 0;
		Clock::time_point start;
	} req_;
	// Set while a route's filters run on this exchange.
	const FilterChain *chain_ = nullptr;
	std::unique_ptr<Exchange> ex_;
	std::unique_ptr<ClientFacts> facts_;
	std::vector<std::string_view> decoded_;
	std::string scratch_; // X-Forwarded-For and friends while a head is built
	// Header lines for the next fail() response (a view into scratch_).
	std::string_view fail_headers_;
	// An idle connection waits with this small buffer, not a pooled one.
	char first_[512];
	size_t first_bytes_ = 0; // read by wait_request(), counted by exchange()
};

} // namespace sonic::proxy
