#include "proxy/tunnel.hpp"

namespace sonic::proxy {

namespace {

struct Direction {
	tcp::socket &from;
	tcp::socket &to;
	std::span<const char> pending;
	std::span<char> buffer;
	uint64_t bytes = 0;
};

// Pumps one direction; on an error, cancels the other direction's pending
// operation so the tunnel ends as a whole.
awaitable<void> pump(Direction &d, TunnelContext &ctx, bool &failed)
{
	asio::error_code ec;
	if (!d.pending.empty()) {
		co_await asio::async_write(d.to, asio::buffer(d.pending.data(), d.pending.size()), with(ec));
		if (ec) {
			failed = true;
			d.from.cancel(ec);
			d.to.cancel(ec);
			co_return;
		}
		d.bytes += d.pending.size();
	}
	for (;;) {
		size_t n = co_await d.from.async_read_some(asio::buffer(d.buffer.data(), d.buffer.size()), with(ec));
		if (ec == asio::error::eof) {
			d.to.shutdown(tcp::socket::shutdown_send, ec);
			co_return;
		}
		if (ec || failed)
			break;
		*ctx.deadline = *ctx.now + ctx.idle;
		co_await asio::async_write(d.to, asio::buffer(d.buffer.data(), n), with(ec));
		if (ec)
			break;
		d.bytes += n;
	}
	failed = true;
	d.from.cancel(ec);
	d.to.cancel(ec);
}

} // namespace

awaitable<TunnelBytes> tunnel(tcp::socket &client, tcp::socket &upstream, std::span<const char> from_client,
			      std::span<const char> from_upstream, TunnelContext ctx)
{
	using namespace asio::experimental::awaitable_operators;
	*ctx.deadline = *ctx.now + ctx.idle;
	bool failed = false;
	Direction up{client, upstream, from_client, ctx.client_buffer};
	Direction down{upstream, client, from_upstream, ctx.upstream_buffer};
	co_await (pump(up, ctx, failed) && pump(down, ctx, failed));
	co_return TunnelBytes{up.bytes, down.bytes};
}

} // namespace sonic::proxy
