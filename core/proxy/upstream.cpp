#include "proxy/upstream.hpp"

#include "bpf/steer.hpp"
#include "out/error.hpp"
#include "out/log.hpp"
#include "proxy/tls_stream.hpp"

#include <asio/experimental/awaitable_operators.hpp>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>

namespace sonic::proxy {

namespace {

// Marks an upstream socket as the proxy's own, before it connects: the steer
// family never sends a socket with this mark back to the proxy (cgroup rules
// would otherwise catch sonic's connections when sonic runs in a steered
// cgroup). Setting it needs CAP_NET_ADMIN; without it the connection goes
// unmarked, which is said once.
void mark_upstream(tcp::socket &sock)
{
	static std::atomic<bool> told{false};
	const int mark = static_cast<int>(bpf::kSteerBypassMark);
	if (setsockopt(sock.native_handle(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == 0)
		return;
	const int err = errno;
	if (told.exchange(true))
		return;
	if (err == EPERM)
		log::info("upstream connections carry no steering bypass mark (SO_MARK needs CAP_NET_ADMIN)");
	else
		log::warn(std::string("upstream connections carry no steering bypass mark: ") + std::strerror(err));
}

} // namespace

static_assert(kCauses == Metrics::kLocalErrorCauses);

const char *phase_name(Phase p)
{
	switch (p) {
	case Phase::Resolve: return "resolve";
	case Phase::Connect: return "connect";
	case Phase::Handshake: return "tls handshake";
	case Phase::Send: return "send";
	case Phase::ResponseHead: return "response head";
	case Phase::ResponseBody: return "response body";
	case Phase::Script: return "script";
	}
	return "?";
}

const char *cause_name(Cause c)
{
	switch (c) {
	case Cause::Resolve: return "resolve";
	case Cause::ConnectRefused: return "connect_error";
	case Cause::ConnectTimeout: return "connect_timeout";
	case Cause::SendFailed: return "send_error";
	case Cause::ResponseTimeout: return "response_timeout";
	case Cause::ClosedEarly: return "closed_early";
	case Cause::BadResponse: return "bad_response";
	case Cause::ScriptError: return "script_error";
	case Cause::ScriptLimit: return "script_limit";
	case Cause::NoServer: return "no_server";
	case Cause::UpstreamTls: return "upstream_tls";
	}
	return "?";
}

std::string UpstreamError::describe() const
{
	std::string s = cause_name(cause);
	s += " in ";
	s += phase_name(phase);
	if (!server.empty())
		s += " with " + server;
	if (error)
		s += std::string(": ") + std::strerror(error) + " (" + errno_name(error) + ")";
	if (!detail.empty())
		s += ": " + detail;
	return s;
}

std::unique_ptr<UpConn> UpstreamClient::pooled(ServerState &server, bool verify)
{
	std::unique_ptr<UpConn> c = worker_.pooled(server, verify);
	if (c)
		worker_.counters().upstream_reuses.add();
	return c;
}

awaitable<Acquired> UpstreamClient::connect(ServerState &server, std::chrono::milliseconds timeout, bool mark_down)
{
	using namespace asio::experimental::awaitable_operators;
	Acquired a;
	a.conn = worker_.new_conn(server);
	tcp::socket &sock = a.conn->sock;
	asio::error_code ec;
	bool timed_out = false;
	sock.open(server.endpoint.protocol(), ec);
	if (!ec) {
		mark_upstream(sock);
		asio::steady_timer timer(sock.get_executor(), timeout);
		asio::error_code tec;
		auto which = co_await (sock.async_connect(server.endpoint, with(ec)) || timer.async_wait(with(tec)));
		if (which.index() == 1) {
			timed_out = true;
			ec = asio::error::timed_out;
		}
	}
	if (!ec) {
		sock.set_option(tcp::no_delay(true), ec);
		worker_.counters().upstream_connects.add();
		if (server.tls) {
			Acquired t = co_await start_tls(std::move(a.conn), server);
			co_return t;
		}
		co_return a;
	}
	Metrics &m = worker_.counters();
	m.upstream_connect_errors.add();
	if (timed_out)
		m.upstream_timeouts.add();
	if (mark_down)
		server.down_until = worker_.now() + server.fail_timeout;
	a.conn.reset();
	a.error = UpstreamError{timed_out ? 504 : 502, timed_out ? Cause::ConnectTimeout : Cause::ConnectRefused,
				Phase::Connect, server.text, timed_out ? 0 : ec.value()};
	co_return a;
}

awaitable<Acquired> UpstreamClient::acquire(Target &target, bool fresh, bool verify,
					    std::chrono::milliseconds connect_timeout)
{
	if (target.server) {
		if (!fresh)
			if (auto c = pooled(*target.server, verify))
				co_return Acquired{std::move(c), {}};
		co_return co_await connect(*target.server, connect_timeout, false);
	}
	Group &g = *target.group;
	const size_t n = g.servers.size();
	if (n == 0)
		co_return Acquired{nullptr, UpstreamError{502, Cause::NoServer, Phase::Connect, {}, 0}};
	const size_t start = g.next++;
	const bool alone = n == 1;
	// Round robin over the servers not marked down, each tried once; when
	// all are down, over all of them, so that a recovered group is found.
	bool any_live = false;
	for (ServerState *s : g.servers)
		any_live = any_live || s->down_until <= worker_.now();
	Acquired last;
	for (size_t k = 0; k < n; ++k) {
		ServerState *s = g.servers[(start + k) % n];
		if (any_live && s->down_until > worker_.now())
			continue;
		if (!fresh)
			if (auto c = pooled(*s, verify))
				co_return Acquired{std::move(c), {}};
		last = co_await connect(*s, connect_timeout, !alone);
		if (last)
			co_return last;
	}
	co_return last;
}

awaitable<Acquired> UpstreamClient::start_tls(std::unique_ptr<UpConn> conn, ServerState &server)
{
	Metrics &m = worker_.counters();
	conn->server = &server;
	conn->tls = std::make_unique<TlsEngine>(conn->sock);
	conn->tls->init_client(*worker_.tls(), server.tls_name, server.tls_session);
	// Bounded by the session's deadline (upstream_connect and a second).
	int rc = co_await conn->tls->handshake(worker_.handshakes());
	if (rc == 0) {
		m.tls_upstream_handshakes.add();
		if (gnutls_session_is_resumed(conn->tls->session()))
			m.tls_upstream_resumed.add();
		else
			server.tls_session.clear(); // a fresh one is taken when it is released
		co_return Acquired{std::move(conn), {}};
	}
	m.tls_upstream_failures.add();
	server.tls_session.clear();
	Acquired a;
	a.error = UpstreamError{502, Cause::UpstreamTls, Phase::Handshake, server.tls_name + " at " + server.text, 0,
				conn->tls->error_text()};
	co_return a;
}

awaitable<ServerState *> UpstreamClient::resolve(const std::string &host, uint16_t port)
{
	asio::error_code ec;
	asio::ip::address addr = asio::ip::make_address(host, ec);
	if (!ec)
		co_return &worker_.server_for(tcp::endpoint(addr, port));
	std::string key = host + ":" + std::to_string(port);
	if (ServerState *s = worker_.resolved(key))
		co_return s;
	tcp::resolver resolver(worker_.context());
	auto results = co_await resolver.async_resolve(host, std::to_string(port), with(ec));
	if (ec || results.empty())
		co_return nullptr;
	co_return &worker_.remember_resolved(key, *results.begin());
}

} // namespace sonic::proxy
