#include "proxy/worker.hpp"

#include "js/script_filter.hpp"
#include "proxy/tls_stream.hpp"

#include "bpf/accel.hpp"

#include "out/log.hpp"
#include "proxy/session.hpp"
#include "proxy/upstream.hpp"

#include <cerrno>
#include <cstring>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace sonic::proxy {

namespace {

constexpr auto kTick = std::chrono::milliseconds(250);
// Forward mode: how long a name resolution is used.
constexpr auto kResolveTtl = std::chrono::seconds(60);

size_t buffer_size(const config::Config &c) { return std::max<size_t>(c.limits.header_bytes + 4096, 32768); }

} // namespace

// ---- buffers -----------------------------------------------------------

void BufferPool::resize(size_t size)
{
	if (size == size_)
		return;
	size_ = size;
	free_.clear();
}

std::unique_ptr<char[]> BufferPool::take()
{
	if (free_.empty())
		return std::unique_ptr<char[]>(new char[size_]);
	std::unique_ptr<char[]> b = std::move(free_.back());
	free_.pop_back();
	return b;
}

void BufferPool::give(std::unique_ptr<char[]> buf, size_t size)
{
	if (buf && size == size_ && free_.size() < 1024)
		free_.push_back(std::move(buf));
}

void ReadBuffer::compact()
{
	if (begin == 0)
		return;
	std::memmove(data.get(), data.get() + begin, end - begin);
	end -= begin;
	begin = 0;
}

// ---- worker ------------------------------------------------------------

Worker::Worker(unsigned index, std::shared_ptr<const config::Config> config, int access_log_fd,
	       std::shared_ptr<const bpf::Splice> splice, std::shared_ptr<ClientLimits> limits)
	: index_(index), now_(Clock::now()), log_(access_log_fd), buffers_(buffer_size(*config)),
	  limits_(std::move(limits)), splice_(std::move(splice)), handshakes_(metrics_.tls_handshake_waits),
	  timeouts_(metrics_.timeout_waits, 8),
	  ctx_(ASIO_CONCURRENCY_HINT_UNSAFE_IO),
	  upstreams_(std::make_unique<UpstreamClient>(*this))
{
	gen_.reset(build(std::move(config)));
}

void Worker::set_capacity(unsigned workers, uint64_t descriptor_share)
{
	workers_ = workers;
	descriptor_share_ = descriptor_share;
}

const bpf::Splice *Worker::splice_for(int client_fd, int upstream_fd) const
{
	if (!splice_ || (accel_ && (accel_->accelerated(client_fd) || accel_->accelerated(upstream_fd))))
		return nullptr;
	return splice_.get();
}

Worker::~Worker()
{
	// The members go in reverse order (see the header); sessions detach
	// themselves from the list as the io_context destroys their frames.
	log_.flush();
}

Generation *Worker::build(std::shared_ptr<const config::Config> config)
{
	auto *g = new Generation;
	g->config = std::move(config);
	for (const config::Upstream &u : g->config->upstreams) {
		Group group;
		group.upstream = &u;
		for (const config::UpstreamServer &server : u.servers) {
			const config::HostPort &e = server.address;
			tcp::endpoint ep(asio::ip::make_address(e.host), e.port);
			ServerState &s = u.tls ? server_for_tls(ep, u.tls_name.empty() ? server.written.host : u.tls_name)
					       : server_state(e.text(), ep);
			s.keepalive = u.keepalive;
			s.fail_timeout = u.fail_timeout;
			group.servers.push_back(&s);
		}
		g->groups.push_back(std::move(group));
	}
	build_chains(*g);
	return g;
}

void Worker::build_chains(Generation &g)
{
	const config::Config &c = *g.config;
	// One filter (one heap on this worker) per script, whatever routes use it.
	std::vector<std::shared_ptr<Filter>> filters(c.programs.size());
	auto filter = [&](size_t script) -> std::shared_ptr<Filter> {
		if (script == config::kNoScript || script >= c.programs.size())
			return nullptr;
		if (!filters[script])
			filters[script] = std::make_shared<js::ScriptFilter>(c.programs[script], *this);
		return filters[script];
	};
	g.route_chains.resize(c.routes.size());
	for (size_t i = 0; i < c.routes.size(); i++)
		if (auto f = filter(c.routes[i].script != config::kNoScript ? c.routes[i].script : c.script))
			g.route_chains[i].push_back(f);
	if (auto f = filter(c.script))
		g.chain.push_back(f);
}

ServerState &Worker::server_state(const std::string &key, const tcp::endpoint &endpoint)
{
	auto it = servers_.find(key);
	if (it != servers_.end())
		return *it->second;
	auto s = std::make_unique<ServerState>();
	s->endpoint = endpoint;
	s->text = key;
	ServerState &ref = *s;
	servers_.emplace(key, std::move(s));
	return ref;
}

ServerState &Worker::server_for(const tcp::endpoint &endpoint)
{
	return server_state(endpoint_text(endpoint), endpoint);
}

ServerState &Worker::server_for_tls(const tcp::endpoint &endpoint, const std::string &name)
{
	std::string key = endpoint_text(endpoint);
	// The name in the key: one address may serve many names, each its own
	// verification and session.
	ServerState &s = server_state("tls:" + name + "@" + key, endpoint);
	s.text = key;
	s.tls = true;
	s.tls_name = name;
	return s;
}

ServerState *Worker::resolved(const std::string &host_port)
{
	auto it = resolved_.find(host_port);
	if (it == resolved_.end() || now_ - it->second->resolved_at > kResolveTtl)
		return nullptr;
	return it->second;
}

ServerState &Worker::remember_resolved(const std::string &host_port, const tcp::endpoint &endpoint)
{
	ServerState &s = server_for(endpoint);
	s.resolved_at = now_;
	// A forward proxy meets unbounded names: forget them all rather than grow.
	if (resolved_.size() > 10000)
		resolved_.clear();
	resolved_[host_port] = &s;
	return s;
}

void Worker::add_listener(int fd, const config::Listener &listener)
{
	auto a = std::make_shared<Acceptor>(Acceptor{tcp::acceptor(ctx_), listener, listener.address.text()});
	sockaddr_storage ss{};
	socklen_t len = sizeof(ss);
	getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
	a->acceptor.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd);
	acceptors_.push_back(a);
	asio::co_spawn(ctx_, accept_loop(a), asio::detached);
}

void Worker::apply(std::shared_ptr<const config::Config> config, std::map<std::string, int> fds)
{
	buffers_.resize(buffer_size(*config));
	std::shared_ptr<Generation> g(build(config));
	std::vector<std::shared_ptr<Acceptor>> keep;
	for (auto &a : acceptors_) {
		const config::Listener *now = nullptr;
		for (const config::Listener &l : config->listeners)
			if (l.address.text() == a->key)
				now = &l;
		if (now) {
			a->listener = *now;
			keep.push_back(a);
		} else {
			asio::error_code ec;
			a->acceptor.close(ec);
		}
	}
	acceptors_ = std::move(keep);
	gen_ = g;
	for (auto &[key, fd] : fds)
		for (const config::Listener &l : config->listeners)
			if (l.address.text() == key)
				add_listener(fd, l);
}

awaitable<void> Worker::accept_loop(std::shared_ptr<Acceptor> a)
{
	for (;;) {
		if (metrics_.connections_active.get() >= descriptor_share_) {
			co_await make_room(*a, "its share of the descriptors is in use");
			if (!a->acceptor.is_open())
				co_return;
			continue;
		}
		asio::error_code ec;
		tcp::socket sock = co_await a->acceptor.async_accept(with(ec));
		if (ec) {
			if (ec == asio::error::operation_aborted || !a->acceptor.is_open())
				co_return;
			metrics_.accept_errors.add();
			co_await make_room(*a, ec.message());
			continue;
		}
		metrics_.connections_accepted.add();
		std::optional<ClientLimits::Ticket> ticket = admit(sock);
		if (!ticket)
			continue;
		auto s = std::make_unique<Session>(*this, std::move(sock), a->listener, std::move(*ticket));
		asio::co_spawn(ctx_, Session::serve(std::move(s)), asio::detached);
	}
}

std::optional<ClientLimits::Ticket> Worker::admit(tcp::socket &sock)
{
	const config::Limits &l = gen_->config->limits;
	auto refuse = [&](Limit limit) -> std::optional<ClientLimits::Ticket> {
		metrics_.connections_refused[static_cast<int>(limit)].add();
		asio::error_code ec;
		sock.close(ec);
		return std::nullopt;
	};
	if (l.max_connections && metrics_.connections_active.get() >= l.worker_connections(workers_))
		return refuse(Limit::MaxConnections);
	if (!l.max_connections_per_ip)
		return ClientLimits::Ticket();
	asio::error_code ec;
	tcp::endpoint peer = sock.remote_endpoint(ec);
	if (ec)
		return ClientLimits::Ticket(); // gone already; the session sees it
	ClientLimits::Admit a = limits_->admit(addr16(peer.address()), l.max_connections_per_ip);
	if (a.admission == ClientLimits::Admission::Refused)
		return refuse(Limit::MaxConnectionsPerIp);
	if (a.admission == ClientLimits::Admission::Untracked)
		metrics_.client_table_full.add();
	return std::move(a.ticket);
}

awaitable<void> Worker::make_room(const Acceptor &a, const std::string &why)
{
	constexpr size_t kCloseAtOnce = 32;
	const size_t closed = close_idle(kCloseAtOnce);
	metrics_.idle_closed_for_room.add(closed);
	// Said at most once a second, with what happened since.
	++room_waits_;
	if (now_ - room_warned_ >= std::chrono::seconds(1)) {
		log::warn("accept on " + a.key + " paused: " + why + " (" + std::to_string(room_waits_) +
			  " time(s) since the last warning; " + std::to_string(closed) +
			  " idle keep-alive connection(s) closed now to make room)");
		room_warned_ = now_;
		room_waits_ = 0;
	}
	asio::steady_timer t(ctx_, std::chrono::milliseconds(closed ? 20 : 100));
	asio::error_code ec;
	co_await t.async_wait(with(ec));
}

size_t Worker::close_idle(size_t most)
{
	size_t n = 0;
	for (Session *s = sessions_; s && n < most; s = s->next)
		if (s->idle && s->kept_alive() && !s->closing()) {
			s->drain();
			++n;
		}
	return n;
}

void Worker::attach(Session *s)
{
	s->next = sessions_;
	if (sessions_)
		sessions_->prev = s;
	sessions_ = s;
	metrics_.connections_active.add();
}

void Worker::detach(Session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		sessions_ = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = nullptr;
	metrics_.connections_active.sub();
}

std::unique_ptr<UpConn> Worker::pooled(ServerState &server, bool verify)
{
	while (!server.idle.empty()) {
		std::unique_ptr<UpConn> c = std::move(server.idle.back());
		server.idle.pop_back();
		// Bytes read ahead after a response (an alert, a close_notify) are
		// as unexpected as bytes still in the socket.
		if (c->tls && c->tls->read_ahead())
			continue;
		// A server closes a connection it just answered on only after
		// saying so (Connection: close, and then it is not pooled), so a
		// recently used one is taken without the system call.
		if (!verify && now_ - c->idle_since < kTrustIdle) {
			c->reused = true;
			return c;
		}
		// The server may have closed it while it sat idle: a pending EOF (or
		// any unexpected byte) means it cannot carry a request.
		char byte;
		ssize_t n = ::recv(c->sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->reused = true;
			return c;
		}
	}
	return nullptr;
}

UpConn::UpConn(asio::io_context &ctx, size_t header_limit) : sock(ctx), parser(http::Kind::Response, header_limit) {}
UpConn::~UpConn() = default;

std::unique_ptr<UpConn> Worker::new_conn(ServerState &server)
{
	auto c = std::make_unique<UpConn>(ctx_, gen_->config->limits.header_bytes);
	c->server = &server;
	return c;
}

void Worker::release(std::unique_ptr<UpConn> conn)
{
	ServerState &s = *conn->server;
	if (draining_ || s.idle.size() >= s.keepalive || !conn->sock.is_open())
		return;
	if (conn->in.data) {
		buffers_.give(std::move(conn->in.data), conn->in.cap);
		conn->in = ReadBuffer{};
	}
	conn->idle_since = now_;
	// TLS 1.3 tickets come after the handshake: the session is worth
	// keeping once a response was read, for the next new connection.
	if (conn->tls && s.tls_session.empty())
		s.tls_session = conn->tls->session_data();
	s.idle.push_back(std::move(conn));
}

void Worker::sweep()
{
	deadlines_.each_due(now_, [](Session *s) { s->expire(); });
}

awaitable<void> Worker::tick()
{
	asio::steady_timer timer(ctx_);
	for (;;) {
		timer.expires_after(kTick);
		asio::error_code ec;
		co_await timer.async_wait(with(ec));
		if (ec)
			co_return;
		now_ = Clock::now();
		sweep();
		if (log_.pending())
			log_.flush();
		// Idle upstream connections past their time, or closed by the server.
		for (auto &[key, s] : servers_) {
			auto &idle = s->idle;
			std::erase_if(idle, [&](const std::unique_ptr<UpConn> &c) {
				if (now_ - c->idle_since > gen_->config->timeouts.upstream_idle)
					return true;
				char byte;
				ssize_t n = ::recv(c->sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
				return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
			});
		}
	}
}

void Worker::drain()
{
	draining_ = true;
	for (auto &a : acceptors_) {
		asio::error_code ec;
		a->acceptor.close(ec);
	}
	acceptors_.clear();
	for (auto &[key, s] : servers_)
		s->idle.clear();
	for (Session *s = sessions_; s;) {
		Session *next = s->next;
		s->drain();
		s = next;
	}
}

void Worker::run()
{
	asio::co_spawn(ctx_, tick(), asio::detached);
	ctx_.run();
	log_.flush();
}

} // namespace sonic::proxy
