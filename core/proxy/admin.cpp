#include "proxy/admin.hpp"

#include "http/parser.hpp"
#include "http/serialize.hpp"

#include <cstring>
#include <llhttp.h>
#include <sys/socket.h>

namespace sonic::proxy {

Admin::Admin(int fd, std::vector<const Metrics *> workers, std::function<ServerFacts()> facts,
	     std::function<void(const asio::ip::address &)> on_peer)
	: acceptor_(ctx_), workers_(std::move(workers)), facts_(std::move(facts)), on_peer_(std::move(on_peer))
{
	sockaddr_storage ss{};
	socklen_t len = sizeof(ss);
	getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
	acceptor_.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd);
}

Admin::~Admin()
{
	ctx_.stop();
	if (thread_.joinable())
		thread_.join();
}

void Admin::start()
{
	asio::co_spawn(ctx_, accept_loop(), asio::detached);
	thread_ = std::thread([this] { ctx_.run(); });
}

awaitable<void> Admin::accept_loop()
{
	for (;;) {
		asio::error_code ec;
		tcp::socket sock = co_await acceptor_.async_accept(with(ec));
		if (ec == asio::error::operation_aborted || !acceptor_.is_open())
			co_return;
		if (ec) {
			// Out of descriptors (the workers hold them all): the admin API
			// comes back when some are freed, without spinning meanwhile.
			asio::steady_timer t(ctx_, std::chrono::milliseconds(100));
			co_await t.async_wait(with(ec));
			continue;
		}
		if (on_peer_) {
			auto peer = sock.remote_endpoint(ec);
			if (!ec)
				on_peer_(peer.address());
		}
		asio::co_spawn(ctx_, serve(std::move(sock)), asio::detached);
	}
}

awaitable<void> Admin::serve(tcp::socket sock)
{
	http::Parser parser(http::Kind::Request, 16384);
	std::vector<char> buf(20000);
	size_t have = 0;
	std::string out;
	for (;;) {
		// Read until the head is complete (the admin API takes no bodies).
		http::Parser::Result r = http::Parser::Result::More;
		size_t parsed = 0;
		for (;;) {
			const http::Parser::Step step = parser.head(buf.data() + parsed, have - parsed);
			r = step.result;
			parsed += step.consumed;
			if (r != http::Parser::Result::More)
				break;
			asio::error_code ec;
			if (have == buf.size())
				co_return;
			size_t n = co_await sock.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), with(ec));
			if (ec)
				co_return;
			have += n;
		}
		out.clear();
		if (r == http::Parser::Result::Error) {
			http::append_simple_response(out, parser.error_status(), "text/plain", "bad request\n", false);
			asio::error_code ec;
			co_await asio::async_write(sock, asio::buffer(out), with(ec));
			co_return;
		}
		const http::Head &h = parser.message();
		std::string_view path = h.target.substr(0, h.target.find('?'));
		bool keep = h.keep_alive && h.framing == http::Framing::None;
		bool get = h.method == HTTP_GET || h.method == HTTP_HEAD;
		if (!get) {
			http::append_simple_response(out, 405, "text/plain", "only GET\n", keep);
		} else if (path == "/metrics") {
			http::append_simple_response(out, 200, "text/plain; version=0.0.4",
						     prometheus_text(workers_, facts_()), keep);
		} else if (path == "/healthz") {
			bool draining = facts_().draining;
			http::append_simple_response(out, draining ? 503 : 200, "text/plain", draining ? "draining\n" : "ok\n",
						     keep);
		} else {
			http::append_simple_response(out, 404, "text/plain", "not found: try /metrics or /healthz\n", keep);
		}
		if (h.method == HTTP_HEAD)
			out.resize(out.find("\r\n\r\n") + 4);
		parser.body(buf.data() + parsed, 0);
		asio::error_code ec;
		co_await asio::async_write(sock, asio::buffer(out), with(ec));
		if (ec || !keep)
			co_return;
		std::memmove(buf.data(), buf.data() + parsed, have - parsed);
		have -= parsed;
	}
}

} // namespace sonic::proxy
