#include "proxy/session.hpp"

#include "bpf/steer.hpp"
#include "http/serialize.hpp"
#include "http/target.hpp"
#include "out/log.hpp"
#include "proxy/origdst.hpp"
#include "proxy/tunnel.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <llhttp.h>
#include <sys/socket.h>

namespace sonic::proxy {

namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n";

tcp::endpoint to_endpoint(const sockaddr_storage &ss)
{
	tcp::endpoint ep;
	std::memcpy(ep.data(), &ss, ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
	return ep;
}

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

std::string endpoint_text(const tcp::endpoint &ep)
{
	asio::ip::address a = ep.address();
	if (a.is_v6() && a.to_v6().is_v4_mapped())
		a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
	std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
	return s + ":" + std::to_string(ep.port());
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

struct Session::Target {
	Group *group = nullptr;
	ServerState *server = nullptr;
	std::string host;
	uint16_t port = 0;
};

Session::Session(Worker &worker, tcp::socket client, const config::Listener &listener, ClientLimits::Ticket ticket)
	: worker_(worker), gen_(worker.generation()), cfg_(*gen_->config), mode_(listener.mode),
	  tcp_upstream_(listener.upstream), client_(std::move(client)),
	  parser_(http::Kind::Request, cfg_.limits.header_bytes), ticket_(std::move(ticket))
{
	worker_.attach(this);
	asio::error_code ec;
	client_.set_option(tcp::no_delay(true), ec);
	tcp::endpoint peer = client_.remote_endpoint(ec);
	std::string text = endpoint_text(peer);
	client_text_len_ = std::min(text.size(), sizeof(client_text_));
	std::memcpy(client_text_, text.data(), client_text_len_);
	client_ip_ = text.substr(0, text.rfind(':'));
	client_addr_ = addr16(peer.address());
	if (mode_ == config::Mode::Transparent) {
		tcp::endpoint l(asio::ip::make_address(listener.address.host, ec), listener.address.port);
		std::memcpy(&listener_addr_, l.data(), l.size());
	}
}

Session::~Session()
{
	give_buffer(in_);
	worker_.detach(this);
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
	asio::error_code ec;
	client_.cancel(ec);
	if (upstream_)
		upstream_->cancel(ec);
}

void Session::drain()
{
	closing_ = true;
	if (idle) {
		asio::error_code ec;
		client_.cancel(ec);
	}
}

awaitable<void> Session::serve(std::unique_ptr<Session> self) { co_await self->run(); }

awaitable<void> Session::run()
{
	if (mode_ == config::Mode::Tcp) {
		co_await run_tcp(nullptr);
	} else if (mode_ == config::Mode::Transparent) {
		auto orig = original_destination(client_.native_handle(), listener_addr_);
		if (orig) {
			original_dst_ = to_endpoint(*orig);
			have_original_dst_ = true;
			// HTTP is proxied as HTTP; anything else (TLS, SSH, ...) is a tunnel.
			set_deadline(cfg_.timeouts.client_header);
			bool got = co_await read_client();
			if (got) {
				if (looks_like_http(in_.head(), in_.size()))
					co_await run_http();
				else
					co_await run_tcp(&original_dst_);
			}
		}
	} else {
		co_await run_http();
	}
	asio::error_code ec;
	client_.shutdown(tcp::socket::shutdown_both, ec);
	client_.close(ec);
}

awaitable<bool> Session::read_client()
{
	take_buffer(in_);
	if (in_.room() == 0)
		co_return false;
	asio::error_code ec;
	size_t n = co_await client_.async_read_some(asio::buffer(in_.tail(), in_.room()), with(ec));
	if (ec)
		co_return false;
	in_.end += n;
	req_.bytes_received += n;
	co_return true;
}

awaitable<bool> Session::write_client(std::string_view head, std::string_view body)
{
	asio::error_code ec;
	std::array<asio::const_buffer, 2> bufs{asio::buffer(head.data(), head.size()), asio::buffer(body.data(), body.size())};
	size_t n = co_await asio::async_write(client_, bufs, with(ec));
	req_.bytes_sent += n;
	co_return !ec;
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
	log.add(e);
}

awaitable<Session::Outcome> Session::fail(int status, const char *why)
{
	out_.clear();
	std::string body = std::to_string(status) + " " + std::string(http::status_reason(status)) + ": " + why + "\n";
	http::append_simple_response(out_, status, "text/plain", body, false, fail_headers_);
	fail_headers_ = {};
	co_await write_client(out_);
	log_request(status);
	co_return Outcome::Close;
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
	asio::error_code ec;
	size_t n = co_await client_.async_read_some(asio::buffer(first_, sizeof(first_)), with(ec));
	idle = false;
	if (ec)
		co_return false; // closed, idle timeout or drain: no answer due
	take_buffer(in_);
	std::memcpy(in_.tail(), first_, n);
	in_.end += n;
	first_bytes_ = n;
	co_return true;
}

// ---- one request -------------------------------------------------------

awaitable<Session::Outcome> Session::body_cut_short()
{
	worker_.counters().client_aborts.add();
	if (timed_out_)
		co_return co_await fail(408, "request body timeout");
	log_request(499);
	co_return Outcome::Close;
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

awaitable<Session::Outcome> Session::exchange()
{
	asio::error_code ec;
	req_.bytes_sent = 0;
	req_.bytes_received = first_bytes_;
	first_bytes_ = 0;
	req_.upstream.clear();
	req_.host.clear();
	req_.path.clear();
	req_.method = "-";
	idle = false;
	req_.start = Clock::now();
	set_deadline(cfg_.timeouts.client_header);

	// ---- head
	in_.compact();
	size_t parsed = 0;
	for (;;) {
		size_t used = 0;
		auto r = parser_.head(in_.head() + parsed, in_.size() - parsed, used);
		parsed += used;
		if (r == http::Parser::Result::Done)
			break;
		if (r == http::Parser::Result::Error)
			co_return co_await fail(parser_.error_status(), parser_.error_reason());
		bool got = co_await read_client();
		if (!got) {
			if (timed_out_)
				co_return co_await fail(408, "request header timeout");
			co_return Outcome::Close;
		}
	}
	++requests_;
	const http::Head &h = parser_.message();
	req_.method = h.method_name.data();
	req_.host.assign(h.host);
	req_.path.assign(h.target);
	req_.framing = h.framing;
	req_.minor = h.minor;
	req_.keep_alive = h.keep_alive;
	req_.head = h.is_head();
	req_.idempotent = h.is_idempotent();
	req_.upgrade = h.upgrade;
	if (h.upgrade) {
		const http::Header *u = h.find(http::Field::Upgrade);
		req_.upgrade_to.assign(u ? u->value : std::string_view());
		if (!u)
			req_.upgrade = false;
	}
	const bool expect_continue = h.expect_continue && h.framing != http::Framing::None;
	if (rate_limited())
		co_return co_await fail(503, "request rate over the limit for this address");

	if (h.is_connect()) {
		if (mode_ != config::Mode::Forward)
			co_return co_await fail(405, "CONNECT is served by forward listeners only");
		in_.consume(parsed);
		co_return co_await connect_tunnel();
	}
	if (cfg_.limits.body_bytes && h.framing == http::Framing::Length && h.content_length > cfg_.limits.body_bytes)
		co_return co_await fail(413, "request body over the limit");

	Target target;
	int status = 0;
	bool routed = co_await resolve_target(target, status);
	if (!routed)
		co_return co_await fail(status, status == 404 ? "no route for this host and path" : "bad request target");
	// The head is rebuilt for the upstream; the read buffer's head bytes go.
	in_.consume(parsed);

	// A Content-Length body that fits in the read buffer is read whole
	// before an upstream connection is taken, so that a client dribbling
	// it (slowhttptest -B) holds no upstream connection and no origin; a
	// bigger or chunked body streams.
	if (h.framing == http::Framing::Length && h.content_length <= in_.size() + in_.room()) {
		if (expect_continue && in_.size() == 0) {
			bool sent = co_await write_client(kContinue);
			if (!sent)
				co_return Outcome::Close;
		}
		while (in_.size() < h.content_length) {
			set_deadline(cfg_.timeouts.client_body);
			bool got = co_await read_client();
			if (!got)
				co_return co_await body_cut_short();
		}
	}

	for (int attempt = 0;; ++attempt) {
		std::unique_ptr<UpConn> up = co_await acquire(target, status, attempt > 0);
		if (!up)
			co_return co_await fail(status, status == 504 ? "upstream timed out" : "upstream unreachable");
		req_.upstream.assign(up->server->text);
		const bool can_retry = up->reused && replayable() && attempt == 0;

		// ---- request head and body
		if (expect_continue && in_.size() == 0) {
			bool sent = co_await write_client(kContinue);
			if (!sent)
				co_return Outcome::Close;
		}
		upstream_ = &up->sock;
		size_t used = 0;
		auto r = parser_.body(in_.head(), in_.size(), used);
		set_deadline(cfg_.timeouts.upstream_response);
		std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(in_.head(), used)};
		co_await asio::async_write(up->sock, bufs, with(ec));
		in_.consume(used);
		if (ec) {
			upstream_ = nullptr;
			if (can_retry)
				continue;
			co_return co_await fail(timed_out_ ? 504 : 502, "upstream write failed");
		}
		uint64_t body_seen = used;
		while (r == http::Parser::Result::More) {
			if (in_.size() == 0)
				in_.begin = in_.end = 0;
			set_deadline(cfg_.timeouts.client_body);
			bool got = co_await read_client();
			if (!got) {
				// The upstream request is cut short too: its connection is
				// dropped with it, never reused.
				upstream_ = nullptr;
				co_return co_await body_cut_short();
			}
			r = parser_.body(in_.head(), in_.size(), used);
			body_seen += used;
			if (cfg_.limits.body_bytes && body_seen > cfg_.limits.body_bytes + 64) {
				upstream_ = nullptr;
				co_return co_await fail(413, "request body over the limit");
			}
			if (used) {
				set_deadline(cfg_.timeouts.upstream_response);
				co_await asio::async_write(up->sock, asio::buffer(in_.head(), used), with(ec));
				in_.consume(used);
				if (ec) {
					upstream_ = nullptr;
					co_return co_await fail(timed_out_ ? 504 : 502, "upstream write failed");
				}
			}
		}
		if (r == http::Parser::Result::Error) {
			upstream_ = nullptr;
			co_return co_await fail(parser_.error_status(), parser_.error_reason());
		}
		if (req_.upgrade && in_.size() == 0)
			in_.begin = in_.end = 0;

		bool retry = false;
		Outcome o = co_await relay_response(std::move(up), retry);
		upstream_ = nullptr;
		if (retry && can_retry)
			continue;
		if (retry)
			co_return co_await fail(502, "upstream closed the connection");
		co_return o;
	}
}

awaitable<ServerState *> Session::resolve_name(const std::string &host, uint16_t port)
{
	asio::error_code ec;
	asio::ip::address addr = asio::ip::make_address(host, ec);
	if (!ec)
		co_return &worker_.server_for(tcp::endpoint(addr, port));
	std::string key = host + ":" + std::to_string(port);
	if (ServerState *s = worker_.resolved(key))
		co_return s;
	tcp::resolver resolver(client_.get_executor());
	auto results = co_await resolver.async_resolve(host, std::to_string(port), with(ec));
	if (ec || results.empty())
		co_return nullptr;
	co_return &worker_.remember_resolved(key, *results.begin());
}

awaitable<bool> Session::resolve_target(Target &target, int &status)
{
	const http::Head &h = parser_.message();
	const auto absolute = http::parse_absolute_form(h.target);
	std::string_view origin_form = absolute ? absolute->origin_form : h.target;
	std::string_view authority = absolute ? absolute->authority : h.host;
	status = 400;
	if (mode_ == config::Mode::Forward) {
		if (!absolute)
			co_return false; // a forward proxy is asked with absolute-form
		auto a = http::parse_authority(authority, 80);
		if (!a)
			co_return false;
		target.host = std::move(a->host);
		target.port = a->port;
		status = 502;
		target.server = co_await resolve_name(target.host, target.port);
		if (!target.server)
			co_return false;
	} else if (mode_ == config::Mode::Transparent) {
		target.server = &worker_.server_for(original_dst_);
	} else {
		lower_into(scratch_, http::host_part(authority));
		std::string_view path = origin_form.substr(0, origin_form.find('?'));
		const config::Route *route = cfg_.route(scratch_, path);
		if (!route) {
			status = 404;
			co_return false;
		}
		target.group = &gen_->groups[route->upstream];
	}
	// Parsed out of the head before its bytes are reused.
	build_request_head(origin_form, authority);
	co_return true;
}

void Session::build_request_head(std::string_view target, std::string_view host)
{
	const http::Head &h = parser_.message();
	const config::HeaderPolicy &policy = cfg_.headers;
	out_.clear();
	http::append_request_line(out_, h.method_name, target);
	if (!host.empty())
		http::append_header(out_, "Host", host);
	std::string &xff = scratch_;
	xff.clear();
	std::string_view forwarded, via;
	const bool any_connection = h.find(http::Field::Connection) != nullptr;
	for (const http::Header &f : h.headers) {
		switch (f.field) {
		case http::Field::Host:
		case http::Field::Expect:
			continue;
		case http::Field::XForwardedFor:
			if (policy.x_forwarded_for) {
				xff.append(xff.empty() ? "" : ", ").append(f.value);
				continue;
			}
			break;
		case http::Field::Forwarded:
			if (policy.forwarded) {
				forwarded = f.value;
				continue;
			}
			break;
		case http::Field::Via:
			if (policy.via) {
				via = f.value;
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
	if (policy.x_forwarded_for) {
		xff.append(xff.empty() ? "" : ", ").append(client_ip_);
		http::append_header(out_, "X-Forwarded-For", xff);
	}
	if (policy.forwarded) {
		out_.append("Forwarded: ");
		if (!forwarded.empty())
			out_.append(forwarded).append(", ");
		bool v6 = client_ip_.find(':') != std::string::npos;
		out_.append(v6 ? "for=\"[" : "for=").append(client_ip_).append(v6 ? "]\"" : "");
		if (!host.empty() && host.find_first_of("\";, ") == std::string_view::npos)
			out_.append(";host=").append(host);
		out_.append(";proto=http\r\n");
	}
	if (policy.via) {
		out_.append("Via: ");
		if (!via.empty())
			out_.append(via).append(", ");
		out_.append(h.minor == 0 ? "1.0 sonic\r\n" : "1.1 sonic\r\n");
	}
	if (req_.upgrade) {
		out_.append("Connection: upgrade\r\n");
		http::append_header(out_, "Upgrade", req_.upgrade_to);
	}
	http::end_head(out_);
}

// ---- upstream connections ----------------------------------------------

awaitable<std::unique_ptr<UpConn>> Session::connect(ServerState &server, int &status)
{
	std::unique_ptr<UpConn> c = worker_.new_conn(server);
	asio::error_code ec;
	timed_out_ = false;
	set_deadline(cfg_.timeouts.upstream_connect);
	upstream_ = &c->sock;
	c->sock.open(server.endpoint.protocol(), ec);
	if (!ec) {
		mark_upstream(c->sock);
		co_await c->sock.async_connect(server.endpoint, with(ec));
	}
	upstream_ = nullptr;
	if (ec) {
		worker_.counters().upstream_connect_errors.add();
		if (timed_out_)
			worker_.counters().upstream_timeouts.add();
		status = timed_out_ ? 504 : 502;
		timed_out_ = false;
		server.down_until = worker_.now() + server.fail_timeout;
		co_return nullptr;
	}
	c->sock.set_option(tcp::no_delay(true), ec);
	worker_.counters().upstream_connects.add();
	co_return c;
}

awaitable<std::unique_ptr<UpConn>> Session::acquire(Target &target, int &status, bool fresh)
{
	status = 502;
	if (target.server) {
		if (!fresh)
			if (auto c = worker_.pooled(*target.server, !replayable())) {
				worker_.counters().upstream_reuses.add();
				co_return c;
			}
		co_return co_await connect(*target.server, status);
	}
	Group &g = *target.group;
	const size_t n = g.servers.size();
	const size_t start = g.next++;
	// Round robin over the servers not marked down, each tried once; when
	// all are down, over all of them, so that a recovered group is found.
	bool any_live = false;
	for (ServerState *s : g.servers)
		any_live = any_live || s->down_until <= worker_.now();
	for (size_t k = 0; k < n; ++k) {
		ServerState *s = g.servers[(start + k) % n];
		if (any_live && s->down_until > worker_.now())
			continue;
		if (!fresh)
			if (auto c = worker_.pooled(*s, !replayable())) {
				worker_.counters().upstream_reuses.add();
				co_return c;
			}
		if (auto c = co_await connect(*s, status))
			co_return c;
	}
	co_return nullptr;
}

// ---- the response ----------------------------------------------------------

awaitable<Session::Outcome> Session::relay_response(std::unique_ptr<UpConn> up, bool &retry)
{
	asio::error_code ec;
	http::Parser &p = up->parser;
	take_buffer(up->in);
	upstream_ = &up->sock;
	bool sent_any = false;

	for (;;) {
		// ---- head (1xx interim responses loop here)
		p.set_no_body(req_.head);
		up->in.compact();
		size_t parsed = 0;
		set_deadline(cfg_.timeouts.upstream_response);
		for (;;) {
			size_t used = 0;
			auto r = p.head(up->in.head() + parsed, up->in.size() - parsed, used);
			parsed += used;
			if (r == http::Parser::Result::Done)
				break;
			if (r == http::Parser::Result::Error)
				co_return co_await fail(502, "bad response from upstream");
			if (up->in.room() == 0)
				co_return co_await fail(502, "response head over the limit");
			size_t n = co_await up->sock.async_read_some(asio::buffer(up->in.tail(), up->in.room()), with(ec));
			if (ec || n == 0) {
				if (timed_out_) {
					worker_.counters().upstream_timeouts.add();
					co_return co_await fail(504, "upstream response timeout");
				}
				if (parsed == 0 && up->in.size() == 0 && !sent_any) {
					retry = true; // a kept-alive connection the server had closed
					co_return Outcome::Close;
				}
				co_return co_await fail(502, "upstream closed before the response");
			}
			up->in.end += n;
		}
		const http::Head &h = p.message();
		if (h.status >= 100 && h.status < 200 && h.status != 101) {
			// Interim responses: passed on to HTTP/1.1 clients.
			size_t used = 0;
			p.body(up->in.head() + parsed, 0, used);
			if (req_.minor == 1) {
				out_.clear();
				http::append_status_line(out_, h.status, h.reason);
				http::append_end_to_end_headers(out_, h);
				http::end_head(out_);
				bool sent = co_await write_client(out_);
				if (!sent)
					co_return Outcome::Close;
				sent_any = true;
			}
			up->in.consume(parsed);
			continue;
		}
		if (h.status == 101) {
			if (!req_.upgrade)
				co_return co_await fail(502, "upstream switched protocols unasked");
			up->in.consume(parsed);
			co_return co_await tunnel_upgrade(std::move(up));
		}
		if (req_.upgrade)
			parser_.resume_after_upgrade();

		// ---- response head for the client
		const int status = h.status;
		const http::Framing framing = h.framing;
		const bool client_11 = req_.minor == 1;
		const bool encode = framing == http::Framing::UntilClose && client_11;
		const bool decode = framing == http::Framing::Chunked && !client_11;
		// After a reload a connection ends with its current response, so
		// that the client's next one is served by the new configuration.
		bool keep = req_.keep_alive && !closing_ && !worker_.draining() && gen_.get() == worker_.current_generation() &&
			    requests_ < cfg_.limits.keepalive_requests && !decode &&
			    !(framing == http::Framing::UntilClose && !client_11);
		const bool up_reusable = h.keep_alive;
		out_.clear();
		http::append_status_line(out_, status, h.reason);
		http::append_end_to_end_headers(out_, h, decode ? http::Field::TransferEncoding : http::Field::Other);
		if (cfg_.headers.via)
			out_.append("Via: 1.1 sonic\r\n"); // after the upstream's own Via lines
		if (encode)
			out_.append("Transfer-Encoding: chunked\r\n");
		if (!keep)
			out_.append("Connection: close\r\n");
		else if (!client_11)
			out_.append("Connection: keep-alive\r\n");
		http::end_head(out_);
		up->in.consume(parsed);

		// ---- body: raw, re-encoded as chunked, or decoded
		http::ChunkedEncoder chunker;
		p.set_decode(decode ? &decoded_ : nullptr);
		bool head_sent = false;
		bool done = false;
		bool client_gone = false;
		bool upstream_eof = false;
		for (;;) {
			decoded_.clear();
			size_t used = 0;
			auto r = upstream_eof ? p.finish() : p.body(up->in.head(), up->in.size(), used);
			if (r == http::Parser::Result::Error) {
				p.set_decode(nullptr);
				if (!head_sent)
					co_return co_await fail(502, "bad response body from upstream");
				log_request(status);
				co_return Outcome::Close;
			}
			done = r == http::Parser::Result::Done;
			std::array<asio::const_buffer, 4> bufs;
			size_t nb = 0;
			if (!head_sent && !decode) // the decode branch writes its own
				bufs[nb++] = asio::buffer(out_);
			std::string_view prefix;
			if (encode && used) {
				prefix = chunker.prefix(used);
				bufs[nb++] = asio::buffer(prefix.data(), prefix.size());
				bufs[nb++] = asio::buffer(up->in.head(), used);
				bufs[nb++] = asio::buffer(http::ChunkedEncoder::kChunkEnd.data(), 2);
			} else if (decode) {
				// Decoded pieces go one write each after the head.
				bool ok = true;
				if (!head_sent)
					ok = co_await write_client(out_);
				head_sent = true;
				for (std::string_view piece : decoded_) {
					if (ok)
						ok = co_await write_client(piece);
				}
				if (!ok) {
					client_gone = true;
					break;
				}
			} else if (used) {
				bufs[nb++] = asio::buffer(up->in.head(), used);
			}
			if (encode && done)
				bufs[nb++] = asio::buffer(http::ChunkedEncoder::kLastChunk.data(),
							  http::ChunkedEncoder::kLastChunk.size());
			if (nb) {
				set_deadline(cfg_.timeouts.client_body);
				size_t n = co_await asio::async_write(client_, std::span(bufs.data(), nb), with(ec));
				req_.bytes_sent += n;
				if (ec) {
					client_gone = true;
					break;
				}
			}
			head_sent = true;
			up->in.consume(used);
			if (done)
				break;
			if (up->in.size() == 0)
				up->in.begin = up->in.end = 0;
			set_deadline(cfg_.timeouts.upstream_response);
			size_t n = co_await up->sock.async_read_some(asio::buffer(up->in.tail(), up->in.room()), with(ec));
			if (ec == asio::error::eof && framing == http::Framing::UntilClose) {
				upstream_eof = true;
				continue;
			}
			if (ec) {
				// Too late for a status: the client sees the connection end
				// before the body does.
				if (timed_out_)
					worker_.counters().upstream_timeouts.add();
				break;
			}
			up->in.end += n;
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
		co_return keep ? Outcome::KeepAlive : Outcome::Close;
	}
}

// ---- tunnels ---------------------------------------------------------------

awaitable<void> Session::pump_tunnel(tcp::socket &upstream, std::span<const char> from_client,
				     std::span<const char> from_upstream, TunnelKind kind, const std::string &where)
{
	Metrics &m = worker_.counters();
	m.tunnels[static_cast<int>(kind)].add();
	m.tunnels_active.add();
	BufferPool &pool = worker_.buffers();
	std::unique_ptr<char[]> a = pool.take(), b = pool.take();
	const size_t cap = pool.size();
	upstream_ = &upstream;
	TunnelContext ctx{&deadline, worker_.now_ptr(), cfg_.timeouts.tunnel_idle, std::span<char>(a.get(), cap),
			  std::span<char>(b.get(), cap),
			  cfg_.tunnels.splice ? worker_.splice_for(client_.native_handle(), upstream.native_handle()) : nullptr};
	TunnelBytes bytes = co_await tunnel(client_, upstream, from_client, from_upstream, ctx);
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
	co_await pump_tunnel(up->sock, from_client, from_upstream, TunnelKind::Upgrade, where);
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
	target.server = co_await resolve_name(target.host, target.port);
	if (!target.server)
		co_return co_await fail(502, "cannot resolve the CONNECT host");
	int status = 502;
	std::unique_ptr<UpConn> up = co_await acquire(target, status, true);
	if (!up)
		co_return co_await fail(status, status == 504 ? "upstream timed out" : "upstream unreachable");
	bool sent = co_await write_client(kEstablished);
	if (!sent)
		co_return Outcome::Close;
	std::string where = up->server->text;
	co_await pump_tunnel(up->sock, std::span<const char>(in_.head(), in_.size()), {}, TunnelKind::Connect, where);
	log_request(200);
	asio::error_code ec;
	up->sock.close(ec);
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
	int status = 502;
	std::unique_ptr<UpConn> up = co_await acquire(target, status, true);
	if (!up) {
		log_request(0, false);
		co_return;
	}
	std::string where = up->server->text;
	std::span<const char> from_client;
	if (in_.data)
		from_client = std::span<const char>(in_.head(), in_.size());
	co_await pump_tunnel(up->sock, from_client, {}, direct ? TunnelKind::Transparent : TunnelKind::Tcp, where);
	log_request(0, false);
	asio::error_code ec;
	up->sock.close(ec);
}

} // namespace sonic::proxy
