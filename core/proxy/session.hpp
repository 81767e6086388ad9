// One client connection: HTTP/1.1 exchanges (reverse, forward,
// transparent) or a tunnel (CONNECT, Upgrade, tcp routes, non-HTTP
// transparent traffic).
#pragma once

#include "proxy/worker.hpp"

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
	Clock::time_point deadline = Clock::time_point::max();
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
	struct Target;

	awaitable<void> run();
	awaitable<void> run_http();
	awaitable<void> run_tcp(const tcp::endpoint *direct);
	awaitable<Outcome> exchange();
	// Waits for the first bytes of a request; false when the client is gone.
	awaitable<bool> wait_request();
	awaitable<Outcome> connect_tunnel();
	awaitable<bool> read_client();
	awaitable<Outcome> fail(int status, const char *why);
	// The client went away or stalled (client_body) during its body.
	awaitable<Outcome> body_cut_short();
	// [limits] requests_per_second_per_ip: takes a token for this request.
	// Without one, true, and fail_headers_ holds the 503's Retry-After.
	bool rate_limited();
	awaitable<bool> write_client(std::string_view head, std::string_view body = {});
	awaitable<std::unique_ptr<UpConn>> connect(ServerState &server, int &status);
	awaitable<std::unique_ptr<UpConn>> acquire(Target &target, int &status, bool fresh);
	awaitable<Outcome> relay_response(std::unique_ptr<UpConn> up, bool &retry);
	awaitable<Outcome> tunnel_upgrade(std::unique_ptr<UpConn> up);
	awaitable<void> pump_tunnel(tcp::socket &upstream, std::span<const char> from_client,
				    std::span<const char> from_upstream, TunnelKind kind, const std::string &where);
	void build_request_head(std::string_view target, std::string_view host);
	awaitable<bool> resolve_target(Target &target, int &status);
	awaitable<ServerState *> resolve_name(const std::string &host, uint16_t port);
	// Counts STATUS (an HTTP answer) and writes the access log line.
	void log_request(int status, bool count = true);
	// Whether the request may be sent again on a fresh connection when a
	// reused one turns out closed: idempotent (RFC 9110 9.2.2), no body.
	bool replayable() const { return req_.idempotent && req_.framing == http::Framing::None; }
	void set_deadline(std::chrono::milliseconds d) { deadline = worker_.now() + d; }
	void take_buffer(ReadBuffer &b);
	void give_buffer(ReadBuffer &b);

	Worker &worker_;
	std::shared_ptr<Generation> gen_;
	const config::Config &cfg_;
	config::Mode mode_;
	size_t tcp_upstream_;
	sockaddr_storage listener_addr_{};
	tcp::socket client_;
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
	tcp::endpoint original_dst_;
	bool have_original_dst_ = false;

	// The current request, copied out of the read buffer before the body
	// reuses it.
	struct Request {
		const char *method = "";
		std::string host;   // as sent, for logs
		std::string path;   // request target as sent
		std::string upstream;
		http::Framing framing = http::Framing::None;
		uint8_t minor = 1;
		bool keep_alive = true;
		bool head = false;
		bool idempotent = false;
		bool upgrade = false;
		std::string upgrade_to;
		uint64_t bytes_sent = 0;
		uint64_t bytes_received = 0;
		Clock::time_point start;
	} req_;
	std::vector<std::string_view> decoded_;
	std::string scratch_; // X-Forwarded-For and friends while a head is built
	// Header lines for the next fail() response (a view into scratch_).
	std::string_view fail_headers_;
	// An idle connection waits with this small buffer, not a pooled one.
	char first_[512];
	size_t first_bytes_ = 0; // read by wait_request(), counted by exchange()
};

} // namespace sonic::proxy
