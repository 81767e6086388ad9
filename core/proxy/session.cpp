#include "proxy/session.hpp"

#include "http/serialize.hpp"
#include "http/target.hpp"
#include "net/addr.hpp"
#include "out/log.hpp"
#include "proxy/origdst.hpp"
#include "proxy/tunnel.hpp"
#include "tls/peek.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <llhttp.h>
#include <sys/socket.h>

namespace sonic::proxy {

std::string endpoint_text(const tcp::endpoint &ep)
{
	asio::ip::address a = ep.address();
	if (a.is_v6() && a.to_v6().is_v4_mapped())
		a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
	return net::host_port(a.to_string(), ep.port());
}

namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n";

tcp::endpoint to_endpoint(const sockaddr_storage &ss)
{
	tcp::endpoint ep;
	std::memcpy(ep.data(), &ss, ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
	return ep;
}

void lower_into(std::string &out, std::string_view s)
{
	out.assign(s);
	for (char &c : out)
		if (c >= 'A' && c <= 'Z')
			c = static_cast<char>(c + 32);
}

bool looks_like_http(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && i < 16 && p[i] >= 'A' && p[i] <= 'Z')
		++i;
	return i >= 3 && i < n && p[i] == ' ';
}

} // namespace

Session::Session(Worker &worker, tcp::socket client, const config::Listener &listener, ClientLimits::Ticket ticket)
	: deadline(worker.deadlines().take(this)), worker_(worker), gen_(worker.generation()), cfg_(*gen_->config), mode_(listener.mode),
	  tcp_upstream_(listener.upstream), parser_(http::Kind::Request, cfg_.limits.header_bytes),
	  ticket_(std::move(ticket)), listener_tls_(listener.tls)
{
	worker_.attach(this);
	asio::error_code ec;
	client.set_option(tcp::no_delay(true), ec);
	tcp::endpoint peer = client.remote_endpoint(ec);
	std::string text = endpoint_text(peer);
	client_text_len_ = std::min(text.size(), sizeof(client_text_));
	std::memcpy(client_text_, text.data(), client_text_len_);
	client_ip_ = text.substr(0, text.rfind(':'));
	client_addr_ = addr16(peer.address());
	if (mode_ == config::Mode::Transparent) {
		tcp::endpoint l(asio::ip::make_address(listener.address.host, ec), listener.address.port);
		std::memcpy(&listener_addr_, l.data(), l.size());
	}
	stream_ = std::make_unique<PlainStream>(std::move(client));
}

Session::~Session()
{
	give_buffer(in_);
	worker_.detach(this);
	worker_.deadlines().give(deadline);
}

void Session::take_buffer(ReadBuffer &b)
{
	if (b.data)
		return;
	b.data = worker_.buffers().take();
	b.cap = worker_.buffers().size();
	b.begin = b.end = 0;
}

void Session::give_buffer(ReadBuffer &b)
{
	if (!b.data)
		return;
	worker_.buffers().give(std::move(b.data), b.cap);
	b = ReadBuffer{};
}

void Session::expire()
{
	timed_out_ = true;
	deadline = Clock::time_point::max();
	stream_->cancel();
	asio::error_code ec;
	if (upstream_)
		upstream_->cancel(ec);
}

void Session::drain()
{
	closing_ = true;
	if (idle)
		stream_->cancel();
}

awaitable<void> Session::serve(std::unique_ptr<Session> self) { co_await self->run(); }

awaitable<void> Session::run()
{
	if (mode_ == config::Mode::Tcp) {
		co_await run_tcp(nullptr);
	} else if (mode_ == config::Mode::Transparent) {
		auto orig = original_destination(stream_->socket().native_handle(), listener_addr_);
		if (orig) {
			original_dst_ = to_endpoint(*orig);
			have_original_dst_ = true;
			// HTTP is proxied as HTTP; TLS as [tls] says; anything else
			// (SSH, ...) is a tunnel.
			set_deadline(cfg_.timeouts.client_header);
			bool more = true;
			if (cfg_.tls.mode != config::TlsMode::Off)
				more = co_await transparent_tls();
			bool got = more;
			if (more)
				got = co_await read_client();
			if (got) {
				if (looks_like_http(in_.head(), in_.size()))
					co_await run_http();
				else
					co_await run_tcp(&original_dst_);
			}
		}
	} else if (listener_tls_) {
		co_await run_https();
	} else {
		co_await run_http();
	}
	co_await stream_->shutdown();
	stream_->close();
}

// ---- TLS: which stream the client gets --------------------------------------

awaitable<tls::ClientHello> Session::peek_hello()
{
	take_buffer(in_);
	const size_t before = in_.size();
	const int fd = stream_->socket().native_handle();
	// What a hello may take: the buffer past what it holds, at most 16 KiB
	// of handshake in records.
	const size_t cap = std::min(in_.room(), tls::kMaxHelloBytes + 64 * 5);
	size_t last = 0;
	asio::steady_timer pause(worker_.context());
	for (;;) {
		asio::error_code ec;
		co_await stream_->socket().async_wait(tcp::socket::wait_read, with(ec));
		if (ec || timed_out_)
			break;
		ssize_t n = ::recv(fd, in_.tail(), cap, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break; // gone before a whole hello
		const size_t got = n > 0 ? static_cast<size_t>(n) : 0;
		tls::ClientHello h = tls::parse_client_hello(std::string_view(in_.head(), before + got));
		if (h.status != tls::HelloStatus::NeedMore)
			co_return h;
		if (got >= cap) {
			h.status = tls::HelloStatus::TooBig;
			co_return h;
		}
		// The socket stays readable while the peeked bytes sit in it: the
		// rest of a hello split across segments is waited for by pausing.
		if (got == last) {
			pause.expires_after(std::chrono::milliseconds(2));
			co_await pause.async_wait(with(ec));
		}
		last = got;
	}
	co_return tls::ClientHello{};
}

bool Session::passes_through(const tls::ClientHello &hello, const tcp::endpoint &dst) const
{
	const config::Tls &t = cfg_.tls;
	if (t.mode == config::TlsMode::Passthrough)
		return true;
	for (const std::string &glob : t.passthrough_sni)
		if (!hello.sni.empty() && tls::name_matches(glob, hello.sni))
			return true;
	if (!t.passthrough_dst.empty()) {
		const net::Addr16 a = addr16(dst.address());
		for (const net::Cidr &c : t.passthrough_dst)
			if (net::contains(c, a))
				return true;
	}
	return false;
}

void Session::refuse_hello(const tls::ClientHello &hello)
{
	Metrics &m = worker_.counters();
	const std::string who(client_text_, client_text_len_);
	if (hello.status == tls::HelloStatus::NeedMore) {
		if (timed_out_) {
			m.tls_failures[static_cast<int>(TlsFailure::SlowHello)].add();
			log::debug("tls from " + who + ": no whole ClientHello within client_header; closed");
		}
		return; // else the client left
	}
	m.tls_failures[static_cast<int>(TlsFailure::BadHello)].add();
	log::debug("tls from " + who + ": ClientHello " + tls::hello_status_name(hello.status) + "; closed");
}

awaitable<bool> Session::accept_tls(const tls::ClientHello &hello, const std::string &name)
{
	Metrics &m = worker_.counters();
	TlsContext &ctx = *worker_.tls();
	const std::string who(client_text_, client_text_len_);
	CertLookup::Result leaf = co_await ctx.lookup().get(name, origin_names_);
	if (!leaf.leaf) {
		m.tls_failures[static_cast<int>(TlsFailure::NoLeaf)].add();
		// Said once per name: a client can send any SNI, and a broken CA
		// fails every name, which the first lines show.
		if (ctx.first_rejection("(no leaf)", name))
			log::warn("tls from " + who + ": no leaf for '" + name + "': " + leaf.error);
		co_return false;
	}
	(leaf.hit ? m.tls_cert_hits : m.tls_cert_misses).add();
	// The bytes read already (after a CONNECT head) go to GnuTLS first.
	std::string before(in_.head(), in_.size());
	in_.consume(in_.size());
	auto stream = std::make_unique<TlsStream>(std::move(stream_->socket()));
	TlsEngine &engine = stream->engine();
	engine.init_server(ctx, leaf.leaf, std::move(before));
	stream_ = std::move(stream);
	set_deadline(cfg_.timeouts.client_header);
	int rc = co_await engine.handshake(worker_.handshakes());
	if (rc != 0) {
		const int alert = engine.alert_received();
		if (hello.best_modern() == 0) {
			m.tls_failures[static_cast<int>(TlsFailure::OldVersion)].add();
			log::debug("tls from " + who + ": only " + tls::version_name(hello.versions.empty() ? 0 : hello.versions.back()) +
				   " or older offered; refused");
		} else if (alert == GNUTLS_A_UNKNOWN_CA || alert == GNUTLS_A_BAD_CERTIFICATE ||
			   alert == GNUTLS_A_CERTIFICATE_UNKNOWN) {
			m.tls_failures[static_cast<int>(TlsFailure::Handshake)].add();
			if (ctx.first_rejection(client_ip_, name))
				log::warn("tls from " + who + ": the client rejected sonic's certificate for '" + name + "' (" +
					  engine.error_text() + "); hint: `sonic ca trust` on the client host, or give it `sonic ca export`");
		} else {
			m.tls_failures[static_cast<int>(TlsFailure::Handshake)].add();
			log::debug("tls from " + who + " for '" + name + "': handshake failed: " + engine.error_text());
		}
		co_return false;
	}
	tls_ = std::make_unique<TlsFacts>(engine.facts());
	tls_->sni = hello.sni;
	tls_action_ = "intercepted";
	m.tls_intercepted.add();
	if (tls_->resumed)
		m.tls_resumed.add();
	co_return true;
}

awaitable<void> Session::run_https()
{
	set_deadline(cfg_.timeouts.client_header);
	tls::ClientHello hello = co_await peek_hello();
	if (hello.status != tls::HelloStatus::Complete) {
		refuse_hello(hello);
		co_return;
	}
	// Without SNI, the leaf is for the address the client connected to.
	std::string name = hello.sni;
	if (name.empty()) {
		asio::error_code ec;
		name = stream_->socket().local_endpoint(ec).address().to_string();
	}
	bool ok = co_await accept_tls(hello, name);
	if (ok)
		co_await run_http();
}

awaitable<bool> Session::transparent_tls()
{
	tls::ClientHello hello = co_await peek_hello();
	if (hello.status == tls::HelloStatus::NotTls)
		co_return true;
	if (hello.status != tls::HelloStatus::Complete) {
		refuse_hello(hello);
		co_return false;
	}
	if (passes_through(hello, original_dst_) || !worker_.tls()) {
		tls_ = std::make_unique<TlsFacts>();
		tls_->sni = hello.sni;
		tls_action_ = "passthrough";
		worker_.counters().tls_passthrough.add();
		co_await run_tcp(&original_dst_);
		co_return false;
	}
	std::string host = hello.sni.empty() ? original_dst_.address().to_string() : hello.sni;
	co_await intercept(hello, host, original_dst_, nullptr);
	co_return false;
}

awaitable<Session::Outcome> Session::intercept(const tls::ClientHello &hello, const std::string &host,
					       const tcp::endpoint &dst, std::unique_ptr<UpConn> conn)
{
	tls_origin_ = &worker_.server_for_tls(dst, host);
	// The origin first: whether its certificate verifies decides whether
	// the client gets answers or a 502 that says why, and its names go
	// into the client's leaf. The connection waits in the pool for the
	// first request.
	set_deadline(cfg_.timeouts.upstream_connect + std::chrono::seconds(1));
	Acquired t;
	if (conn) {
		Acquired secured = co_await worker_.upstreams().start_tls(std::move(conn), *tls_origin_);
		t = std::move(secured);
	} else {
		Target origin;
		origin.server = tls_origin_;
		Acquired fresh = co_await worker_.upstreams().acquire(origin, true, false, cfg_.timeouts.upstream_connect);
		t = std::move(fresh);
	}
	if (t) {
		origin_names_ = t.conn->tls->peer_names();
		worker_.release(std::move(t.conn));
	} else {
		origin_failure_ = t.error;
	}
	bool ok = co_await accept_tls(hello, host);
	if (!ok)
		co_return Outcome::Close;
	// HTTP inside: a new parse from the connection's next byte.
	parser_.reset();
	requests_ = 0;
	co_await run_http();
	co_return Outcome::Close;
}

awaitable<IoResult> Session::up_read(UpConn &up)
{
	std::span<char> room(up.in.tail(), up.in.room());
	if (up.tls) {
		IoResult t = co_await up.tls->read_some(room);
		co_return t;
	}
	IoResult r;
	r.bytes = co_await up.sock.async_read_some(asio::buffer(room.data(), room.size()), with(r.error));
	co_return r;
}

awaitable<IoResult> Session::up_write(UpConn &up, std::span<const asio::const_buffer> bufs)
{
	if (up.tls) {
		IoResult t = co_await up.tls->write(bufs);
		co_return t;
	}
	IoResult r;
	r.bytes = co_await asio::async_write(up.sock, bufs, with(r.error));
	co_return r;
}

awaitable<bool> Session::read_client()
{
	take_buffer(in_);
	if (in_.room() == 0)
		co_return false;
	IoResult r = co_await stream_->read_some(std::span<char>(in_.tail(), in_.room()));
	if (!r)
		co_return false;
	in_.end += r.bytes;
	req_.bytes_received += r.bytes;
	co_return true;
}

awaitable<bool> Session::write_client(std::string_view head, std::string_view body)
{
	std::array<asio::const_buffer, 2> bufs{asio::buffer(head.data(), head.size()), asio::buffer(body.data(), body.size())};
	IoResult r = co_await stream_->write(std::span<const asio::const_buffer>(bufs.data(), body.empty() ? 1 : 2));
	req_.bytes_sent += r.bytes;
	co_return bool(r);
}

void Session::log_request(int status, bool count)
{
	if (count)
		worker_.counters().count_status(status);
	AccessLog &log = worker_.access_log();
	if (!log.enabled())
		return;
	LogEntry e;
	e.client = std::string_view(client_text_, client_text_len_);
	e.method = req_.method;
	e.host = req_.host;
	e.path = req_.path;
	e.status = status;
	e.bytes_sent = req_.bytes_sent;
	e.bytes_received = req_.bytes_received;
	e.upstream = req_.upstream;
	e.duration = Clock::now() - req_.start;
	e.mode = config::mode_name(mode_);
	if (ex_) {
		e.script = ex_->script;
		e.script_outcome = ex_->script_outcome;
	}
	if (tls_) {
		e.tls = tls_action_;
		e.sni = tls_->sni;
		e.tls_version = tls_->version;
		e.cipher = tls_->cipher;
		e.alpn = tls_->alpn;
		e.tls_resumed = tls_->resumed;
	}
	log.add(e);
}

std::string Session::answer_text(int status) const
{
	return std::to_string(status) + " for " + req_.method + " " + req_.host + req_.path + " from " +
	       std::string(client_text_, client_text_len_);
}

awaitable<Session::Outcome> Session::fail(int status, const char *why, const UpstreamError *cause)
{
	if (status >= 500) {
		// Every 5xx sonic makes itself says once why, with what it knows.
		std::string line = answer_text(status) + ": " + why;
		if (cause) {
			line += " (" + cause->describe() + ")";
			worker_.counters().local_errors[static_cast<int>(cause->cause)].add();
		}
		log::warn(line);
	}
	out_.clear();
	std::string body = std::to_string(status) + " " + std::string(http::status_reason(status)) + ": " + why;
	if (cause && cause->cause == Cause::UpstreamTls && !cause->detail.empty())
		body += ": " + cause->detail; // the client is told why the origin is not trusted
	body += "\n";
	http::append_simple_response(out_, status, "text/plain", body, false, fail_headers_);
	fail_headers_ = {};
	co_await write_client(out_);
	log_request(status);
	co_return Outcome::Close;
}

awaitable<Session::Outcome> Session::fail(const UpstreamError &e)
{
	const char *why = "upstream unreachable";
	switch (e.cause) {
	case Cause::Resolve: why = "cannot resolve the upstream name"; break;
	case Cause::ConnectTimeout: why = "upstream timed out"; break;
	case Cause::SendFailed: why = "upstream write failed"; break;
	case Cause::ResponseTimeout: why = "upstream response timeout"; break;
	case Cause::ClosedEarly: why = "upstream closed before the response"; break;
	case Cause::BadResponse: why = "bad response from upstream"; break;
	case Cause::ScriptError: why = "worker script failed"; break;
	case Cause::ScriptLimit: why = "worker script over its limit"; break;
	case Cause::NoServer: why = "no upstream server"; break;
	case Cause::UpstreamTls: why = "TLS with the origin failed"; break;
	case Cause::ConnectRefused: break;
	}
	return fail(e.status, why, &e);
}

awaitable<void> Session::run_http()
{
	// (GCC 12 miscompiles co_await in a loop condition or a short-circuit
	// operand: every co_await here is a statement of its own.)
	for (;;) {
		// Idle connections wait here, in this small frame, not inside
		// exchange()'s: ten thousand idle clients cost what they must.
		if (in_.size() == 0) {
			bool got = co_await wait_request();
			if (!got)
				break;
		}
		Outcome o = co_await exchange();
		if (o != Outcome::KeepAlive)
			break;
	}
}

awaitable<bool> Session::wait_request()
{
	if (closing_)
		co_return false;
	idle = true;
	give_buffer(in_);
	if (requests_ > 0) {
		parser_.trim();
		std::string().swap(out_);
		std::string().swap(scratch_);
		std::vector<std::string_view>().swap(decoded_);
	}
	set_deadline(requests_ == 0 ? cfg_.timeouts.client_header : cfg_.timeouts.client_idle);
	IoResult r = co_await stream_->read_some(std::span<char>(first_, sizeof(first_)));
	idle = false;
	if (!r)
		co_return false; // closed, idle timeout or drain: no answer due
	take_buffer(in_);
	std::memcpy(in_.tail(), first_, r.bytes);
	in_.end += r.bytes;
	first_bytes_ = r.bytes;
	co_return true;
}

// ---- one exchange ----------------------------------------------------------

awaitable<Session::Outcome> Session::exchange()
{
	begin_request();
	if (Stop s = co_await read_request_head())
		co_return *s;
	const http::Head &h = parser_.message();
	note_request(h);
	if (rate_limited())
		co_return co_await fail(503, "request rate over the limit for this address");
	if (h.is_connect()) {
		if (mode_ != config::Mode::Forward || tls_origin_)
			co_return co_await fail(405, "CONNECT is served by forward listeners only");
		in_.consume(head_bytes_);
		co_return co_await connect_tunnel();
	}
	if (cfg_.limits.body_bytes && h.framing == http::Framing::Length && h.content_length > cfg_.limits.body_bytes)
		co_return co_await fail(413, "request body over the limit");

	Target target;
	if (Stop s = co_await route(target))
		co_return *s;
	chain_ = chain_for(target);
	if (chain_) {
		if (Stop s = co_await run_request_filters(*chain_, target))
			co_return *s;
	} else {
		build_forward_head(h);
		// The head is rebuilt for the upstream; the read buffer's head bytes go.
		in_.consume(head_bytes_);
	}
	if (mode_ == config::Mode::Forward && !target.server) {
		if (Stop s = co_await resolve_server(target))
			co_return *s;
	}
	if (Stop s = co_await read_small_body())
		co_return *s;
	co_return co_await forward(target);
}

bool Session::rate_limited()
{
	const config::Limits &l = cfg_.limits;
	if (l.requests_per_second_per_ip <= 0)
		return false;
	ClientLimits::Rate r =
		worker_.client_limits().take(client_addr_, l.requests_per_second_per_ip, l.burst_per_ip(), Clock::now());
	if (r.untracked)
		worker_.counters().client_table_full.add();
	if (r.allowed)
		return false;
	worker_.counters().requests_rate_limited.add();
	scratch_ = "Retry-After: " + std::to_string(r.retry_after.count()) + "\r\n";
	fail_headers_ = scratch_;
	return true;
}

void Session::begin_request()
{
	req_.bytes_sent = 0;
	req_.bytes_received = first_bytes_;
	first_bytes_ = 0;
	req_.upstream.clear();
	req_.host.clear();
	req_.path.clear();
	req_.method = "-";
	idle = false;
	req_.start = Clock::now();
	chain_ = nullptr;
	ex_.reset();
	set_deadline(cfg_.timeouts.client_header);
}

awaitable<Session::Stop> Session::read_request_head()
{
	in_.compact();
	size_t parsed = 0;
	for (;;) {
		const auto [r, used] = parser_.head(in_.head() + parsed, in_.size() - parsed);
		parsed += used;
		if (r == http::Parser::Result::Done)
			break;
		if (r == http::Parser::Result::Error)
			co_return co_await fail(parser_.error_status(), parser_.error_reason());
		bool got = co_await read_client();
		if (!got) {
			if (!timed_out_)
				co_return Outcome::Close;
			co_await worker_.timeouts().turn();
			co_return co_await fail(408, "request header timeout");
		}
	}
	head_bytes_ = parsed;
	++requests_;
	co_return std::nullopt;
}

void Session::note_request(const http::Head &h)
{
	req_.method = h.method_name.data();
	req_.host.assign(h.host);
	req_.path.assign(h.target);
	req_.framing = h.framing;
	req_.content_length = h.content_length;
	req_.minor = h.minor;
	req_.keep_alive = h.keep_alive;
	req_.head = h.is_head();
	req_.idempotent = h.is_idempotent();
	req_.upgrade = h.upgrade;
	req_.expect_continue = h.expect_continue && h.framing != http::Framing::None;
	if (h.upgrade) {
		const http::Header *u = h.find(http::Field::Upgrade);
		req_.upgrade_to.assign(u ? u->value : std::string_view());
		if (!u)
			req_.upgrade = false;
	}
}

awaitable<Session::Stop> Session::route(Target &target)
{
	const http::Head &h = parser_.message();
	const auto absolute = http::parse_absolute_form(h.target);
	std::string_view origin_form = absolute ? absolute->origin_form : h.target;
	std::string_view authority = absolute ? absolute->authority : h.host;
	if (tls_origin_) {
		// Inside an intercepted connection: the origin the client reached.
		if (origin_failure_)
			co_return co_await fail(*origin_failure_);
		target.server = tls_origin_;
		target.host = tls_origin_->tls_name;
		target.port = tls_origin_->endpoint.port();
	} else if (mode_ == config::Mode::Forward) {
		// A forward proxy is asked with absolute-form.
		auto a = absolute ? http::parse_authority(authority, 80) : std::nullopt;
		if (!a)
			co_return co_await fail(400, "bad request target");
		// Resolved after the filters: a script may answer for any name.
		target.host = std::move(a->host);
		target.port = a->port;
	} else if (mode_ == config::Mode::Transparent) {
		target.server = &worker_.server_for(original_dst_);
	} else {
		lower_into(scratch_, http::host_part(authority));
		std::string_view path = origin_form.substr(0, origin_form.find('?'));
		const config::Route *r = cfg_.route(scratch_, path);
		if (!r)
			co_return co_await fail(404, "no route for this host and path");
		target.group = &gen_->groups[r->upstream];
		target.route = static_cast<size_t>(r - cfg_.routes.data());
	}
	co_return std::nullopt;
}

awaitable<Session::Stop> Session::resolve_server(Target &target)
{
	target.server = co_await worker_.upstreams().resolve(target.host, target.port);
	if (target.server)
		co_return std::nullopt;
	const UpstreamError cause{502, Cause::Resolve, Phase::Resolve, target.host + ":" + std::to_string(target.port), 0};
	co_return co_await fail(cause);
}

const FilterChain *Session::chain_for(const Target &target) const
{
	const FilterChain *c = target.route != Target::kNoRoute && target.route < gen_->route_chains.size()
				       ? &gen_->route_chains[target.route]
				       : &gen_->chain;
	return c->empty() ? nullptr : c;
}

ClientFacts Session::client_facts() const
{
	ClientFacts f;
	f.address.assign(client_text_, client_text_len_);
	f.ip = client_ip_;
	if (have_original_dst_)
		f.original_dst = endpoint_text(original_dst_);
	asio::error_code ec;
	f.listener = endpoint_text(stream_->socket().local_endpoint(ec));
	if (tls_) {
		f.sni = tls_->sni;
		f.tls_version = tls_->version;
		f.cipher = tls_->cipher;
		f.alpn = tls_->alpn;
		f.intercepted = true;
		f.resumed = tls_->resumed;
	}
	return f;
}

awaitable<Session::Stop> Session::run_request_filters(const FilterChain &chain, Target &target)
{
	if (!facts_)
		facts_ = std::make_unique<ClientFacts>(client_facts());
	ex_ = std::make_unique<Exchange>();
	// No response head until the origin's (run_response_filters).
	ex_->response.status = 0;
	ex_->request = http::Request::from(parser_.message());
	ex_->client = facts_.get();
	ex_->scheme = tls_ ? "https" : "http";
	ex_->origin = &target;
	ex_->read_body = [this]() { return read_whole_body(); };
	// The owned request holds what the filters need: the head's bytes go.
	in_.consume(head_bytes_);
	worker_.counters().script_runs.add();
	for (const std::shared_ptr<Filter> &f : chain) {
		FilterResult r = co_await f->on_request(*ex_);
		if (r.verdict == Verdict::Continue)
			continue;
		if (r.verdict == Verdict::Close) {
			log_request(499, false);
			co_return Outcome::Close;
		}
		if (r.failure) {
			worker_.counters().script_errors.add();
			co_return co_await fail(*r.failure);
		}
		co_return co_await respond(r.response);
	}
	// The request as the filters left it goes to the origin.
	const http::Head view = ex_->request.view();
	for (const http::Header &f : view.headers)
		if (!http::valid_field_name(f.name) || !http::valid_field_value(f.value)) {
			const UpstreamError cause{500, Cause::ScriptError, Phase::Script, {}, 0};
			co_return co_await fail(cause);
		}
	req_.framing = view.framing;
	req_.content_length = view.content_length;
	build_forward_head(view);
	co_return std::nullopt;
}

awaitable<bool> Session::read_whole_body()
{
	http::Request &r = ex_->request;
	if (r.body_read)
		co_return true;
	r.body_read = true;
	if (req_.framing == http::Framing::None)
		co_return true;
	if (req_.expect_continue && in_.size() == 0) {
		bool sent = co_await write_client("HTTP/1.1 100 Continue\r\n\r\n");
		if (!sent)
			co_return false;
		req_.expect_continue = false;
	}
	const uint64_t limit = cfg_.limits.body_bytes ? cfg_.limits.body_bytes : (64u << 20);
	parser_.set_decode(&decoded_);
	for (;;) {
		decoded_.clear();
		const auto [res, used] = parser_.body(in_.head(), in_.size());
		for (std::string_view piece : decoded_)
			r.body.append(piece);
		in_.consume(used);
		if (res == http::Parser::Result::Error || r.body.size() > limit)
			break;
		if (res == http::Parser::Result::Done) {
			parser_.set_decode(nullptr);
			decoded_.clear();
			req_.framing = r.body.empty() ? http::Framing::None : http::Framing::Length;
			req_.content_length = r.body.size();
			co_return true;
		}
		if (in_.size() == 0)
			in_.begin = in_.end = 0;
		set_deadline(cfg_.timeouts.client_body);
		bool got = co_await read_client();
		if (!got)
			break;
	}
	parser_.set_decode(nullptr);
	decoded_.clear();
	r.body.clear();
	closing_ = true;
	co_return false;
}

awaitable<Session::Stop> Session::read_small_body()
{
	// A Content-Length body that fits in the read buffer is read whole
	// before an upstream connection is taken, so that a client dribbling it
	// (slowhttptest -B) holds no upstream connection and no origin; a
	// bigger or chunked body streams.
	if (ex_ && ex_->request.body_read)
		co_return std::nullopt;
	if (req_.framing != http::Framing::Length || req_.content_length > in_.size() + in_.room())
		co_return std::nullopt;
	if (req_.expect_continue && in_.size() == 0) {
		bool sent = co_await write_client("HTTP/1.1 100 Continue\r\n\r\n");
		if (!sent)
			co_return Outcome::Close;
		req_.expect_continue = false;
	}
	while (in_.size() < req_.content_length) {
		set_deadline(cfg_.timeouts.client_body);
		bool got = co_await read_client();
		if (!got) {
			worker_.counters().client_aborts.add();
			if (timed_out_)
				co_return co_await fail(408, "request body timeout");
			log_request(499);
			co_return Outcome::Close;
		}
	}
	co_return std::nullopt;
}

awaitable<Session::Outcome> Session::forward(Target &target)
{
	for (int attempt = 0;; ++attempt) {
		// The connect has its own timer; the session's deadline stays out
		// of its way.
		set_deadline(cfg_.timeouts.upstream_connect + std::chrono::seconds(1));
		Acquired a = co_await worker_.upstreams().acquire(target, attempt > 0, !replayable(),
								  cfg_.timeouts.upstream_connect);
		if (!a)
			co_return co_await fail(a.error);
		std::unique_ptr<UpConn> up = std::move(a.conn);
		req_.upstream.assign(up->server->text);
		// A pooled connection the server closed meanwhile fails before any
		// response byte: a request safe to send twice goes again on a
		// fresh one.
		const bool can_retry = up->reused && replayable() && attempt == 0;
		if (Stop s = co_await send_request(*up)) {
			// Close: the client was answered already. KeepAlive: the write
			// to the upstream failed.
			if (*s == Outcome::Close)
				co_return Outcome::Close;
			if (can_retry)
				continue;
			const UpstreamError cause{timed_out_ ? 504 : 502, Cause::SendFailed, Phase::Send, up->server->text,
						  send_errno_};
			co_return co_await fail(cause);
		}
		Relayed r = co_await relay_response(std::move(up));
		upstream_ = nullptr;
		if (r.retry && can_retry)
			continue;
		if (r.retry) {
			const UpstreamError cause{502, Cause::ClosedEarly, Phase::ResponseHead, req_.upstream, 0};
			co_return co_await fail(cause);
		}
		co_return r.outcome;
	}
}

// Sends the built head and the request body. A failed write to the
// upstream comes back as KeepAlive (the exchange may go on elsewhere);
// anything the client did wrong has been answered already and comes back
// as Close.
awaitable<Session::Stop> Session::send_request(UpConn &up)
{
	asio::error_code ec;
	if (req_.expect_continue && in_.size() == 0) {
		bool sent = co_await write_client("HTTP/1.1 100 Continue\r\n\r\n");
		if (!sent)
			co_return Outcome::Close;
	}
	upstream_ = &up.sock;
	set_deadline(cfg_.timeouts.upstream_response);
	if (ex_ && ex_->request.body_read) {
		// A body the filters read whole goes as one Content-Length body.
		const std::string &body = ex_->request.body;
		std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(body)};
		IoResult w = co_await up_write(up, bufs);
		if (!w) {
			upstream_ = nullptr;
			send_errno_ = w.error.value();
			co_return Outcome::KeepAlive;
		}
		co_return std::nullopt;
	}
	http::Parser::Step step = parser_.body(in_.head(), in_.size());
	std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(in_.head(), step.consumed)};
	IoResult w = co_await up_write(up, bufs);
	in_.consume(step.consumed);
	if (!w) {
		upstream_ = nullptr;
		send_errno_ = w.error.value();
		co_return Outcome::KeepAlive;
	}
	uint64_t body_seen = step.consumed;
	while (step.result == http::Parser::Result::More) {
		if (in_.size() == 0)
			in_.begin = in_.end = 0;
		set_deadline(cfg_.timeouts.client_body);
		bool got = co_await read_client();
		if (!got) {
			// The client went away (or stalled) mid-body: the upstream
			// request is cut short, so its connection cannot be reused.
			upstream_ = nullptr;
			worker_.counters().client_aborts.add();
			if (timed_out_)
				co_return co_await fail(408, "request body timeout");
			log_request(499);
			co_return Outcome::Close;
		}
		step = parser_.body(in_.head(), in_.size());
		const size_t used = step.consumed;
		body_seen += used;
		if (cfg_.limits.body_bytes && body_seen > cfg_.limits.body_bytes + 64) {
			upstream_ = nullptr;
			co_return co_await fail(413, "request body over the limit");
		}
		if (used) {
			set_deadline(cfg_.timeouts.upstream_response);
			asio::const_buffer piece(in_.head(), used);
			IoResult pw = co_await up_write(up, std::span<const asio::const_buffer>(&piece, 1));
			in_.consume(used);
			if (!pw) {
				upstream_ = nullptr;
				const UpstreamError cause{timed_out_ ? 504 : 502, Cause::SendFailed, Phase::Send,
							  up.server->text, pw.error.value()};
				co_return co_await fail(cause);
			}
		}
	}
	if (step.result == http::Parser::Result::Error) {
		upstream_ = nullptr;
		co_return co_await fail(parser_.error_status(), parser_.error_reason());
	}
	if (req_.upgrade && in_.size() == 0)
		in_.begin = in_.end = 0;
	co_return std::nullopt;
}

awaitable<Session::Outcome> Session::respond(const http::Response &r)
{
	const bool keep = req_.keep_alive && !closing_ && !worker_.draining() &&
			  gen_.get() == worker_.current_generation() && requests_ < cfg_.limits.keepalive_requests;
	// An unread request body would be taken for the next request.
	const bool body_pending = req_.framing != http::Framing::None && !(ex_ && ex_->request.body_read);
	const bool keep_alive = keep && !body_pending;
	out_.clear();
	http::append_status_line(out_, r.status, r.phrase());
	for (const http::Fields::Entry &e : r.headers.entries()) {
		http::Field f = http::classify(e.name);
		if (f == http::Field::ContentLength || f == http::Field::TransferEncoding || f == http::Field::Connection ||
		    f == http::Field::KeepAlive)
			continue;
		if (!http::valid_field_name(e.name) || !http::valid_field_value(e.value))
			continue;
		http::append_header(out_, e.name, e.value);
	}
	const bool bodiless = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
	if (!bodiless)
		http::append_header(out_, "Content-Length", static_cast<uint64_t>(r.body.size()));
	append_connection(keep_alive);
	http::end_head(out_);
	const bool with_body = !bodiless && !req_.head;
	bool sent = co_await write_client(out_, with_body ? std::string_view(r.body) : std::string_view());
	log_request(r.status);
	co_return sent && keep_alive ? Outcome::KeepAlive : Outcome::Close;
}

void Session::build_forward_head(const http::Head &h)
{
	const auto absolute = http::parse_absolute_form(h.target);
	build_request_head(h, absolute ? absolute->origin_form : h.target, absolute ? absolute->authority : h.host);
}

void Session::build_request_head(const http::Head &h, std::string_view target, std::string_view host)
{
	out_.clear();
	http::append_request_line(out_, h.method_name, target);
	if (!host.empty())
		http::append_header(out_, "Host", host);
	const PriorHops prior = copy_end_to_end_headers(h);
	if (ex_ && ex_->request.body_read && !ex_->request.body.empty())
		http::append_header(out_, "Content-Length", static_cast<uint64_t>(ex_->request.body.size()));
	append_proxy_headers(h, host, prior);
	if (req_.upgrade) {
		out_.append("Connection: upgrade\r\n");
		http::append_header(out_, "Upgrade", req_.upgrade_to);
	}
	http::end_head(out_);
}

Session::PriorHops Session::copy_end_to_end_headers(const http::Head &h)
{
	const config::HeaderPolicy &policy = cfg_.headers;
	PriorHops prior;
	scratch_.clear();
	const bool any_connection = h.find(http::Field::Connection) != nullptr;
	const bool body_read = ex_ && ex_->request.body_read;
	for (const http::Header &f : h.headers) {
		switch (f.field) {
		case http::Field::Host:
		case http::Field::Expect:
			continue;
		case http::Field::ContentLength:
		case http::Field::TransferEncoding:
			if (body_read)
				continue; // the body read whole goes with its own length
			break;
		case http::Field::XForwardedFor:
			if (policy.x_forwarded_for) {
				scratch_.append(scratch_.empty() ? "" : ", ").append(f.value);
				continue;
			}
			break;
		case http::Field::Forwarded:
			if (policy.forwarded) {
				prior.forwarded = f.value;
				continue;
			}
			break;
		case http::Field::Via:
			if (policy.via) {
				prior.via = f.value;
				continue;
			}
			break;
		case http::Field::ProxyAuthorization:
			if (mode_ == config::Mode::Forward)
				continue;
			break;
		case http::Field::Other:
			if (any_connection && h.connection_lists(f.name))
				continue;
			break;
		default:
			if (http::is_hop_by_hop(h, f))
				continue;
		}
		http::append_header(out_, f.name, f.value);
	}
	return prior;
}

void Session::append_proxy_headers(const http::Head &h, std::string_view host, const PriorHops &prior)
{
	const config::HeaderPolicy &policy = cfg_.headers;
	if (policy.x_forwarded_for) {
		std::string &xff = scratch_; // the client's own X-Forwarded-For, gathered by the copy
		xff.append(xff.empty() ? "" : ", ").append(client_ip_);
		http::append_header(out_, "X-Forwarded-For", xff);
	}
	if (policy.forwarded) {
		out_.append("Forwarded: ");
		if (!prior.forwarded.empty())
			out_.append(prior.forwarded).append(", ");
		bool v6 = client_ip_.find(':') != std::string::npos;
		out_.append(v6 ? "for=\"[" : "for=").append(client_ip_).append(v6 ? "]\"" : "");
		if (!host.empty() && host.find_first_of("\";, ") == std::string_view::npos)
			out_.append(";host=").append(host);
		// RFC 7239 5.4: the protocol the request came in on, TLS when sonic
		// terminated it.
		out_.append(tls_action_ == std::string_view("intercepted") ? ";proto=https\r\n" : ";proto=http\r\n");
	}
	if (policy.via) {
		out_.append("Via: ");
		if (!prior.via.empty())
			out_.append(prior.via).append(", ");
		out_.append(h.minor == 0 ? "1.0 sonic\r\n" : "1.1 sonic\r\n");
	}
}

// ---- the response ----------------------------------------------------------

awaitable<Session::HeadEnd> Session::read_response_head(UpConn &up, bool sent_any)
{
	http::Parser &p = up.parser;
	asio::error_code ec;
	p.set_no_body(req_.head);
	up.in.compact();
	size_t parsed = 0;
	set_deadline(cfg_.timeouts.upstream_response);
	for (;;) {
		const auto [r, used] = p.head(up.in.head() + parsed, up.in.size() - parsed);
		parsed += used;
		if (r == http::Parser::Result::Done)
			break;
		if (r == http::Parser::Result::Error) {
			const UpstreamError cause{502, Cause::BadResponse, Phase::ResponseHead, up.server->text, 0};
			co_await fail(502, "bad response from upstream", &cause);
			co_return HeadEnd::Done;
		}
		if (up.in.room() == 0) {
			const UpstreamError cause{502, Cause::BadResponse, Phase::ResponseHead, up.server->text, 0};
			co_await fail(502, "response head over the limit", &cause);
			co_return HeadEnd::Done;
		}
		IoResult got = co_await up_read(up);
		ec = got.error;
		if (got) {
			up.in.end += got.bytes;
			continue;
		}
		if (timed_out_) {
			worker_.counters().upstream_timeouts.add();
			const UpstreamError cause{504, Cause::ResponseTimeout, Phase::ResponseHead, up.server->text, 0};
			co_await fail(cause);
			co_return HeadEnd::Done;
		}
		if (parsed == 0 && up.in.size() == 0 && !sent_any)
			co_return HeadEnd::Retry; // a kept-alive connection the server had closed
		const UpstreamError cause{502, Cause::ClosedEarly, Phase::ResponseHead, up.server->text,
					  ec == asio::error::eof ? 0 : ec.value()};
		co_await fail(cause);
		co_return HeadEnd::Done;
	}
	head_bytes_ = parsed;
	co_return HeadEnd::Final;
}

awaitable<Session::Relayed> Session::relay_response(std::unique_ptr<UpConn> up)
{
	take_buffer(up->in);
	upstream_ = &up->sock;
	bool sent_any = false;
	for (;;) {
		HeadEnd end = co_await read_response_head(*up, sent_any);
		if (end == HeadEnd::Retry)
			co_return Relayed{Outcome::Close, true};
		if (end == HeadEnd::Done)
			co_return Relayed{Outcome::Close, false};
		const http::Head &h = up->parser.message();
		if (h.status >= 100 && h.status < 200 && h.status != 101) {
			// Interim responses: passed on to HTTP/1.1 clients.
			up->parser.body(up->in.head() + head_bytes_, 0);
			if (req_.minor == 1) {
				out_.clear();
				http::append_status_line(out_, h.status, h.reason);
				http::append_end_to_end_headers(out_, h);
				http::end_head(out_);
				bool sent = co_await write_client(out_);
				if (!sent)
					co_return Relayed{Outcome::Close, false};
				sent_any = true;
			}
			up->in.consume(head_bytes_);
			continue;
		}
		if (h.status == 101) {
			if (!req_.upgrade) {
				const UpstreamError cause{502, Cause::BadResponse, Phase::ResponseHead, up->server->text, 0};
				Outcome o = co_await fail(502, "upstream switched protocols unasked", &cause);
				co_return Relayed{o, false};
			}
			up->in.consume(head_bytes_);
			Outcome o = co_await tunnel_upgrade(std::move(up));
			co_return Relayed{o, false};
		}
		if (req_.upgrade)
			parser_.resume_after_upgrade();
		if (chain_ && ex_) {
			if (Stop s = co_await run_response_filters(*up))
				co_return Relayed{*s, false};
		}
		Outcome o = co_await stream_response_body(std::move(up));
		co_return Relayed{o, false};
	}
}

awaitable<Session::Stop> Session::run_response_filters(UpConn &up)
{
	bool any = false;
	for (const std::shared_ptr<Filter> &f : *chain_)
		any = any || f->wants_response(*ex_);
	if (!any)
		co_return std::nullopt;
	const http::Head &origin = up.parser.message();
	ex_->response = http::Response::from(origin);
	for (const std::shared_ptr<Filter> &f : *chain_) {
		if (!f->wants_response(*ex_))
			continue;
		FilterResult r = co_await f->on_response(*ex_);
		if (r.verdict == Verdict::Continue)
			continue;
		// The origin's body is not wanted: its connection goes with it.
		upstream_ = nullptr;
		if (r.verdict == Verdict::Close) {
			log_request(499, false);
			co_return Outcome::Close;
		}
		if (r.failure) {
			worker_.counters().script_errors.add();
			co_return co_await fail(*r.failure);
		}
		closing_ = true;
		co_return co_await respond(r.response);
	}
	// The body follows as the origin framed it: its framing fields stay.
	http::Fields &fields = ex_->response.headers;
	fields.remove("Content-Length");
	fields.remove("Transfer-Encoding");
	for (const http::Header &f : origin.headers)
		if (f.field == http::Field::ContentLength || f.field == http::Field::TransferEncoding)
			fields.append(f.name, f.value);
	for (const http::Fields::Entry &e : fields.entries())
		if (!http::valid_field_name(e.name) || !http::valid_field_value(e.value)) {
			const UpstreamError cause{500, Cause::ScriptError, Phase::Script, {}, 0};
			co_return co_await fail(cause);
		}
	co_return std::nullopt;
}

Session::BodyPlan Session::plan_response_body(const http::Head &h) const
{
	BodyPlan plan;
	plan.framing = h.framing;
	const bool client_11 = req_.minor == 1;
	plan.encode = h.framing == http::Framing::UntilClose && client_11;
	plan.decode = h.framing == http::Framing::Chunked && !client_11;
	// After a reload a connection ends with its current response, so
	// that the client's next one is served by the new configuration.
	plan.keep = req_.keep_alive && !closing_ && !worker_.draining() && gen_.get() == worker_.current_generation() &&
		    requests_ < cfg_.limits.keepalive_requests && !plan.decode &&
		    !(h.framing == http::Framing::UntilClose && !client_11);
	return plan;
}

void Session::build_response_head(const http::Head &h, const BodyPlan &plan)
{
	out_.clear();
	http::append_status_line(out_, h.status, h.reason);
	http::append_end_to_end_headers(out_, h, plan.decode ? http::Field::TransferEncoding : http::Field::Other);
	if (cfg_.headers.via)
		out_.append("Via: 1.1 sonic\r\n"); // after the upstream's own Via lines
	if (plan.encode)
		out_.append("Transfer-Encoding: chunked\r\n");
	append_connection(plan.keep);
	http::end_head(out_);
}

void Session::append_connection(bool keep)
{
	// HTTP/1.1 keeps a connection unless told; HTTP/1.0 closes it unless told.
	if (!keep)
		out_.append("Connection: close\r\n");
	else if (req_.minor != 1)
		out_.append("Connection: keep-alive\r\n");
}

awaitable<bool> Session::send_response_piece(UpConn &up, const BodyPlan &plan, http::ChunkedEncoder &chunker,
					      size_t used, bool done)
{
	if (plan.decode) {
		// Decoded pieces go one write each, after the head.
		if (!out_.empty()) {
			bool sent = co_await write_client(out_);
			if (!sent)
				co_return false;
			out_.clear();
		}
		for (std::string_view piece : decoded_) {
			bool sent = co_await write_client(piece);
			if (!sent)
				co_return false;
		}
		co_return true;
	}
	std::array<asio::const_buffer, 4> bufs;
	size_t nb = 0;
	if (!out_.empty())
		bufs[nb++] = asio::buffer(out_);
	if (plan.encode && used) {
		const std::string_view prefix = chunker.prefix(used);
		bufs[nb++] = asio::buffer(prefix.data(), prefix.size());
		bufs[nb++] = asio::buffer(up.in.head(), used);
		bufs[nb++] = asio::buffer(http::ChunkedEncoder::kChunkEnd.data(), http::ChunkedEncoder::kChunkEnd.size());
	} else if (used) {
		bufs[nb++] = asio::buffer(up.in.head(), used);
	}
	if (plan.encode && done)
		bufs[nb++] = asio::buffer(http::ChunkedEncoder::kLastChunk.data(), http::ChunkedEncoder::kLastChunk.size());
	if (nb == 0)
		co_return true;
	set_deadline(cfg_.timeouts.client_body);
	IoResult w = co_await stream_->write(std::span<const asio::const_buffer>(bufs.data(), nb));
	req_.bytes_sent += w.bytes;
	out_.clear();
	co_return static_cast<bool>(w);
}

void Session::note_cut_short(const UpConn &up, int status, const asio::error_code &ec)
{
	// Too late for a status: the client sees the connection end before the
	// body does. Said once, as a 5xx would be.
	if (timed_out_)
		worker_.counters().upstream_timeouts.add();
	const UpstreamError cut{502, timed_out_ ? Cause::ResponseTimeout : Cause::ClosedEarly, Phase::ResponseBody,
			       up.server->text, ec == asio::error::eof || timed_out_ ? 0 : ec.value()};
	log::warn(answer_text(status) + " cut short: " + cut.describe());
}

awaitable<Session::Outcome> Session::stream_response_body(std::unique_ptr<UpConn> up)
{
	http::Parser &p = up->parser;
	// The head as filters left it, or the origin's own.
	const bool edited = chain_ && ex_ && ex_->response.status != 0;
	http::Head edited_view;
	if (edited)
		edited_view = ex_->response.view(p.message());
	const http::Head &h = edited ? edited_view : p.message();
	const int status = h.status;
	const BodyPlan plan = plan_response_body(h);
	const bool up_reusable = p.message().keep_alive;
	build_response_head(h, plan); // out_ holds it until it is sent
	up->in.consume(head_bytes_);

	// The body, piece by piece as the upstream's buffer fills: raw,
	// re-encoded as chunked, or decoded.
	http::ChunkedEncoder chunker;
	p.set_decode(plan.decode ? &decoded_ : nullptr);
	bool done = false;
	bool client_gone = false;
	bool upstream_eof = false;
	for (;;) {
		decoded_.clear();
		const auto [r, used] = upstream_eof ? http::Parser::Step{p.finish(), 0} : p.body(up->in.head(), up->in.size());
		if (r == http::Parser::Result::Error) {
			p.set_decode(nullptr);
			if (!out_.empty()) { // nothing was sent yet
				const UpstreamError cause{502, Cause::BadResponse, Phase::ResponseBody, up->server->text, 0};
				co_return co_await fail(502, "bad response body from upstream", &cause);
			}
			log_request(status);
			co_return Outcome::Close;
		}
		done = r == http::Parser::Result::Done;
		bool sent = co_await send_response_piece(*up, plan, chunker, used, done);
		if (!sent) {
			client_gone = true;
			break;
		}
		up->in.consume(used);
		if (done)
			break;
		if (up->in.size() == 0)
			up->in.begin = up->in.end = 0;
		set_deadline(cfg_.timeouts.upstream_response);
		IoResult got = co_await up_read(*up);
		if (got.error == asio::error::eof && plan.framing == http::Framing::UntilClose) {
			upstream_eof = true;
			continue;
		}
		if (got.error) {
			note_cut_short(*up, status, got.error);
			break;
		}
		up->in.end += got.bytes;
	}
	p.set_decode(nullptr);
	upstream_ = nullptr;
	log_request(status);
	if (!done) {
		// The upstream connection is dropped with the half-sent response.
		if (client_gone)
			worker_.counters().client_aborts.add();
		co_return Outcome::Close;
	}
	if (up_reusable && up->in.size() == 0 && !upstream_eof)
		worker_.release(std::move(up));
	co_return plan.keep ? Outcome::KeepAlive : Outcome::Close;
}

// ---- tunnels ---------------------------------------------------------------

awaitable<void> Session::pump_tunnel(UpConn &up, std::span<const char> from_client, std::span<const char> from_upstream,
				     TunnelKind kind, const std::string &where)
{
	SocketStream plain(up.sock);
	std::optional<TlsEngineStream> secured;
	if (up.tls)
		secured.emplace(*up.tls);
	ClientStream &upstream = secured ? static_cast<ClientStream &>(*secured) : plain;
	Metrics &m = worker_.counters();
	m.tunnels[static_cast<int>(kind)].add();
	m.tunnels_active.add();
	BufferPool &pool = worker_.buffers();
	std::unique_ptr<char[]> a = pool.take(), b = pool.take();
	const size_t cap = pool.size();
	upstream_ = &up.sock;
	const int client_fd = stream_->raw_fd();
	TunnelContext ctx{&deadline, worker_.now_ptr(), cfg_.timeouts.tunnel_idle, std::span<char>(a.get(), cap),
			  std::span<char>(b.get(), cap),
			  cfg_.tunnels.splice && client_fd >= 0 && upstream.raw_fd() >= 0 ? worker_.splice_for(client_fd, upstream.raw_fd())
									 : nullptr};
	TunnelBytes bytes = co_await tunnel(*stream_, upstream, from_client, from_upstream, ctx);
	upstream_ = nullptr;
	pool.give(std::move(a), cap);
	pool.give(std::move(b), cap);
	m.tunnels_active.sub();
	m.tunnel_spliced_up.add(bytes.spliced_up);
	m.tunnel_spliced_down.add(bytes.spliced_down);
	m.tunnel_copied_up.add(bytes.client_to_upstream - bytes.spliced_up);
	m.tunnel_copied_down.add(bytes.upstream_to_client - bytes.spliced_down);
	req_.bytes_sent += bytes.upstream_to_client;
	req_.bytes_received += bytes.client_to_upstream;
	req_.upstream = where;
}

awaitable<Session::Outcome> Session::tunnel_upgrade(std::unique_ptr<UpConn> up)
{
	const http::Head &h = up->parser.message();
	out_.clear();
	http::append_status_line(out_, 101, h.reason);
	http::append_end_to_end_headers(out_, h);
	const http::Header *u = h.find(http::Field::Upgrade);
	out_.append("Connection: upgrade\r\n");
	if (u)
		http::append_header(out_, "Upgrade", u->value);
	http::end_head(out_);
	bool sent = co_await write_client(out_);
	if (!sent)
		co_return Outcome::Close;
	std::string where = up->server->text;
	std::span<const char> from_client(in_.head(), in_.size());
	std::span<const char> from_upstream(up->in.head(), up->in.size());
	co_await pump_tunnel(*up, from_client, from_upstream, TunnelKind::Upgrade, where);
	log_request(101);
	asio::error_code ec;
	up->sock.close(ec);
	co_return Outcome::Close;
}

awaitable<Session::Outcome> Session::connect_tunnel()
{
	const http::Head &h = parser_.message();
	auto authority = http::parse_authority(h.target, 443);
	if (!authority || h.target.find('/') != std::string_view::npos)
		co_return co_await fail(400, "CONNECT needs host:port");
	Target target;
	target.host = std::move(authority->host);
	target.port = authority->port;
	if (Stop s = co_await resolve_server(target))
		co_return *s;
	Acquired a = co_await worker_.upstreams().acquire(target, true, false, cfg_.timeouts.upstream_connect);
	if (!a)
		co_return co_await fail(a.error);
	bool sent = co_await write_client("HTTP/1.1 200 Connection Established\r\n\r\n");
	if (!sent)
		co_return Outcome::Close;
	std::string where = a.conn->server->text;
	if (cfg_.tls.mode != config::TlsMode::Off) {
		// The tunnel's first bytes say whether it carries TLS, and to whom.
		set_deadline(cfg_.timeouts.client_header);
		tls::ClientHello hello = co_await peek_hello();
		if (hello.status == tls::HelloStatus::Complete) {
			tls_ = std::make_unique<TlsFacts>();
			tls_->sni = hello.sni;
			const tcp::endpoint dst = a.conn->server->endpoint;
			if (!passes_through(hello, dst) && worker_.tls()) {
				log_request(200);
				std::string host = hello.sni.empty() ? target.host : hello.sni;
				co_return co_await intercept(hello, host, dst, std::move(a.conn));
			}
			tls_action_ = "passthrough";
			worker_.counters().tls_passthrough.add();
		} else if (hello.status != tls::HelloStatus::NotTls) {
			refuse_hello(hello);
			log_request(200);
			co_return Outcome::Close;
		}
	}
	co_await pump_tunnel(*a.conn, std::span<const char>(in_.head(), in_.size()), {}, TunnelKind::Connect, where);
	log_request(200);
	asio::error_code ec;
	a.conn->sock.close(ec);
	co_return Outcome::Close;
}

awaitable<void> Session::run_tcp(const tcp::endpoint *direct)
{
	req_.start = Clock::now();
	req_.method = "-";
	Target target;
	if (direct)
		target.server = &worker_.server_for(*direct);
	else
		target.group = &gen_->groups[tcp_upstream_];
	Acquired a = co_await worker_.upstreams().acquire(target, true, false, cfg_.timeouts.upstream_connect);
	if (!a) {
		log::info("tcp connection from " + std::string(client_text_, client_text_len_) + " closed: " + a.error.describe());
		log_request(0, false);
		co_return;
	}
	std::string where = a.conn->server->text;
	std::span<const char> from_client;
	if (in_.data)
		from_client = std::span<const char>(in_.head(), in_.size());
	co_await pump_tunnel(*a.conn, from_client, {}, direct ? TunnelKind::Transparent : TunnelKind::Tcp, where);
	log_request(0, false);
	asio::error_code ec;
	a.conn->sock.close(ec);
}

} // namespace sonic::proxy
