// One worker: a thread with its own io_context, its own SO_REUSEPORT
// listening sockets, its own upstream keep-alive pools, buffers, counters and
// access log buffer. Nothing on the request path is shared with another
// worker, so nothing there takes a lock.
#pragma once

#include "config/config.hpp"
#include "http/parser.hpp"
#include "proxy/access_log.hpp"
#include "proxy/asio.hpp"
#include "proxy/deadlines.hpp"
#include "proxy/lane.hpp"
#include "proxy/limits.hpp"
#include "proxy/metrics.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sonic::bpf {
class Splice;
class AccelProxy;
class Blocker;
}

namespace sonic::proxy {

using Clock = std::chrono::steady_clock;

// Fixed-size buffers recycled by a worker: a connection holds one only while
// it has bytes to keep, so idle keep-alive connections cost no buffer.
class BufferPool {
public:
	explicit BufferPool(size_t size) : size_(size) {}
	size_t size() const { return size_; }
	// Buffers of another size (from before a reload) are freed when given back.
	void resize(size_t size);
	std::unique_ptr<char[]> take();
	void give(std::unique_ptr<char[]> buf, size_t size);

private:
	size_t size_;
	std::vector<std::unique_ptr<char[]>> free_;
};

// Bytes read from a socket and not used yet: [begin, end) of data.
struct ReadBuffer {
	std::unique_ptr<char[]> data;
	size_t cap = 0;
	size_t begin = 0;
	size_t end = 0;

	size_t size() const { return end - begin; }
	const char *head() const { return data.get() + begin; }
	char *tail() { return data.get() + end; }
	size_t room() const { return cap - end; }
	void consume(size_t n)
	{
		begin += n;
		if (begin == end)
			begin = end = 0;
	}
	// Moves the unread bytes to the front.
	void compact();
};

struct ServerState;
class TlsEngine;
class TlsContext;

// A connection to an upstream server, pooled between requests.
struct UpConn {
	UpConn(asio::io_context &ctx, size_t header_limit);
	~UpConn();
	tcp::socket sock;
	// TLS to the origin (an intercepted connection's), over sock; null for
	// plain TCP. Reads and writes go through it when set.
	std::unique_ptr<TlsEngine> tls;
	http::Parser parser;
	ReadBuffer in;
	ServerState *server = nullptr;
	Clock::time_point idle_since{};
	bool reused = false;
};

// What a worker knows of one upstream server, kept across reloads.
struct ServerState {
	tcp::endpoint endpoint;
	std::string text; // "ADDR:PORT" for logs
	Clock::time_point down_until{};
	Clock::time_point resolved_at{};
	unsigned keepalive = 64;
	std::chrono::milliseconds fail_timeout{10000};
	std::vector<std::unique_ptr<UpConn>> idle;
	// An origin reached over TLS (intercepted traffic): the name sent as
	// SNI and verified, and the session data of the last handshake, to
	// resume with (one worker's, so no lock).
	bool tls = false;
	std::string tls_name;
	std::string tls_session;
};

// An upstream group of the current configuration, with its round robin.
struct Group {
	const config::Upstream *upstream = nullptr;
	std::vector<ServerState *> servers;
	size_t next = 0;
};

// A configuration as one worker uses it. Connections keep the generation
// they were accepted under; a reload makes a new one for new connections.
class Filter;
using FilterChain = std::vector<std::shared_ptr<Filter>>;

struct Generation {
	std::shared_ptr<const config::Config> config;
	std::vector<Group> groups;
	// Filters (worker scripts) per route, and for requests without one
	// (forward and transparent modes); empty chains cost nothing.
	std::vector<FilterChain> route_chains;
	FilterChain chain;
};

class Session;
class UpstreamClient;

class Worker {
public:
	// SPLICE: the splice family shared by every worker, or null. LIMITS:
	// the per-address counts every worker shares.
	Worker(unsigned index, std::shared_ptr<const config::Config> config, int access_log_fd,
	       std::shared_ptr<const bpf::Splice> splice, std::shared_ptr<ClientLimits> limits);
	~Worker();

	// Before run(): how many workers share the process's limits, and how
	// many client connections this worker's share of the descriptors can
	// hold (each may need one upstream connection besides).
	void set_capacity(unsigned workers, uint64_t descriptor_share);

	// Takes a listening socket made by the server; called before run() or
	// from the worker's own thread (through post()).
	void add_listener(int fd, const config::Listener &listener);
	// Applies a new configuration: listeners whose address is gone are closed,
	// new ones are taken from FDS (address text -> fd; the worker owns them).
	void apply(std::shared_ptr<const config::Config> config, std::map<std::string, int> fds);
	// Stops accepting, closes idle connections, and lets each busy one finish
	// its current request.
	void drain();

	void run();
	void stop() { ctx_.stop(); }
	asio::io_context &context() { return ctx_; }
	const Metrics &metrics() const { return metrics_; }
	unsigned index() const { return index_; }

	// ---- for sessions -------------------------------------------------
	Clock::time_point now() const { return now_; }
	const Clock::time_point *now_ptr() const { return &now_; }
	Metrics &counters() { return metrics_; }
	ClientLimits &client_limits() { return *limits_; }
	AccessLog &access_log() { return log_; }
	UpstreamClient &upstreams() { return *upstreams_; }
	BufferPool &buffers() { return buffers_; }
	const bpf::Splice *splice() const { return splice_.get(); }
	// The splice family for a tunnel between these sockets, or null when it
	// is not loaded or either socket is accelerated by the accel family
	// (whose redirected bytes the splice program would never see).
	const bpf::Splice *splice_for(int client_fd, int upstream_fd) const;
	// From the worker's own thread: tunnels opened from now on are spliced.
	void set_splice(std::shared_ptr<const bpf::Splice> splice) { splice_ = std::move(splice); }
	// Before run() or from the worker's own thread: the accel family's view.
	void set_accel(std::shared_ptr<const bpf::AccelProxy> accel) { accel_ = std::move(accel); }
	// Before run(): what scripts block addresses through (sonic.block()).
	void set_blocker(std::shared_ptr<bpf::Blocker> blocker) { blocker_ = std::move(blocker); }
	std::shared_ptr<bpf::Blocker> blocker() const { return blocker_; }
	bool draining() const { return draining_; }
	std::shared_ptr<Generation> generation() const { return gen_; }
	const Generation *current_generation() const { return gen_.get(); }

	void attach(Session *s);
	void detach(Session *s);
	// Where sessions keep their deadlines, for the tick to find the due ones.
	DeadlineTable &deadlines() { return deadlines_; }

	// An idle pooled connection to SERVER, or null. With VERIFY, or when it
	// sat idle longer than kTrustIdle, one that is seen to be still open (a
	// peek); otherwise the caller retries on a fresh connection should the
	// server have closed it, which only requests safe to send twice may do.
	std::unique_ptr<UpConn> pooled(ServerState &server, bool verify);
	static constexpr std::chrono::milliseconds kTrustIdle{1000};
	// Back to the pool (or closed when the pool is full or we drain).
	void release(std::unique_ptr<UpConn> conn);
	std::unique_ptr<UpConn> new_conn(ServerState &server);
	// The state of a server reached by address (forward, transparent).
	ServerState &server_for(const tcp::endpoint &endpoint);
	// The same over TLS, verified for NAME: its own pool, apart from plain
	// connections to the address.
	ServerState &server_for_tls(const tcp::endpoint &endpoint, const std::string &name);
	// What every worker's TLS shares, or null when no listener terminates TLS.
	TlsContext *tls() const { return tls_.get(); }
	void set_tls(std::shared_ptr<TlsContext> tls) { tls_ = std::move(tls); }
	// Where this worker's TLS handshakes (both sides) take turns with the
	// I/O of its open connections.
	Lane &handshakes() { return handshakes_; }
	// Where client connections that timed out take turns to end: slow
	// clients opened together time out together (slowloris opens them in
	// bursts), and each ending (a 408, a log line, the close) would
	// otherwise run back to back ahead of every open connection's I/O.
	Lane &timeouts() { return timeouts_; }
	// Forward mode: a cached name resolution, or null when it is stale.
	ServerState *resolved(const std::string &host_port);
	ServerState &remember_resolved(const std::string &host_port, const tcp::endpoint &endpoint);

private:
	struct Acceptor {
		tcp::acceptor acceptor;
		config::Listener listener;
		std::string key;
	};

	awaitable<void> accept_loop(std::shared_ptr<Acceptor> a);
	// The connection counted against this worker's and its address's
	// limits; nothing (and the socket closed) when it is over one.
	std::optional<ClientLimits::Ticket> admit(tcp::socket &sock);
	// Accepting cannot go on (out of descriptors, or this worker's share
	// of them in use): closes idle keep-alive connections to make room
	// and waits a moment, so the listen queue holds the new connections
	// instead of a loop spinning on them.
	awaitable<void> make_room(const Acceptor &a, const std::string &why);
	size_t close_idle(size_t most);
	awaitable<void> tick();
	void sweep();
	Generation *build(std::shared_ptr<const config::Config> config);
	// The filter chains of G's routes and of requests without a route.
	void build_chains(Generation &g);
	ServerState &server_state(const std::string &key, const tcp::endpoint &endpoint);

	// Declared so that the io_context (and with it every coroutine frame,
	// session and socket) goes before what sessions use, and after the
	// pools and acceptors that hold its sockets.
	unsigned index_;
	Clock::time_point now_;
	Metrics metrics_;
	AccessLog log_;
	BufferPool buffers_;
	Session *sessions_ = nullptr; // intrusive list of live sessions
	DeadlineTable deadlines_;    // theirs, for the tick to scan
	std::shared_ptr<ClientLimits> limits_;
	unsigned workers_ = 1;
	uint64_t descriptor_share_ = UINT64_MAX;
	Clock::time_point room_warned_{};
	uint64_t room_waits_ = 0; // since the last warning
	bool draining_ = false;
	std::shared_ptr<Generation> gen_;
	std::shared_ptr<const bpf::Splice> splice_;
	std::shared_ptr<const bpf::AccelProxy> accel_;
	std::shared_ptr<bpf::Blocker> blocker_;
	std::shared_ptr<TlsContext> tls_;
	Lane handshakes_;
	Lane timeouts_;
	asio::io_context ctx_;
	std::vector<std::shared_ptr<Acceptor>> acceptors_;
	std::map<std::string, std::unique_ptr<ServerState>, std::less<>> servers_;
	std::map<std::string, ServerState *, std::less<>> resolved_;
	std::unique_ptr<UpstreamClient> upstreams_;
};

} // namespace sonic::proxy
