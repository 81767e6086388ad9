#include "proxy/tunnel.hpp"

#include "bpf/splice.hpp"
#include "out/error.hpp"

#include <algorithm>
#include <array>
#include <optional>

namespace sonic::proxy {

namespace {

using bpf::SpliceDir;
using bpf::SpliceState;
using namespace asio::experimental::awaitable_operators;

// ---- userspace copy ----------------------------------------------------------

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

awaitable<TunnelBytes> copy_both(tcp::socket &client, tcp::socket &upstream, std::span<const char> from_client,
				 std::span<const char> from_upstream, TunnelContext &ctx)
{
	bool failed = false;
	Direction up{client, upstream, from_client, ctx.client_buffer};
	Direction down{upstream, client, from_upstream, ctx.upstream_buffer};
	co_await (pump(up, ctx, failed) && pump(down, ctx, failed));
	co_return TunnelBytes{up.bytes, down.bytes};
}

// ---- through streams ---------------------------------------------------------

// One direction between two streams when either is TLS (its bytes are not
// the socket's own): PENDING first, then what FROM reads is written to TO;
// FROM's end is passed on as TO's shutdown (for TLS a close_notify, then a
// FIN). An error ends both directions.
awaitable<void> pump_stream(ClientStream &from, ClientStream &to, std::span<const char> pending, std::span<char> buffer,
			    TunnelContext &ctx, uint64_t &bytes, bool &failed)
{
	if (!pending.empty()) {
		const std::string_view early(pending.data(), pending.size());
		IoResult w = co_await to.write(early);
		if (w)
			bytes += pending.size();
		else
			failed = true;
	}
	while (!failed) {
		IoResult r = co_await from.read_some(buffer);
		if (r.error == asio::error::eof) {
			co_await to.shutdown();
			co_return;
		}
		if (!r || failed)
			break;
		*ctx.deadline = *ctx.now + ctx.idle;
		const std::string_view piece(buffer.data(), r.bytes);
		IoResult w = co_await to.write(piece);
		if (!w)
			break;
		bytes += r.bytes;
	}
	failed = true;
	from.cancel();
	to.cancel();
}

// ---- kernel splicing ---------------------------------------------------------

// The longest pause between two looks at a direction whose bytes the kernel
// is still moving (Draining, CopyPending): kSpliceRetry doubles up to it, so
// that a destination whose reader stalls does not cost a wakeup every
// half millisecond.
constexpr std::chrono::microseconds kRetryMax{20000};

struct Spliced {
	bpf::SpliceTunnel &tunnel;
	TunnelContext &ctx;
	std::array<tcp::socket *, 2> sock;       // client, upstream
	std::array<std::span<char>, 2> buffer;   // per source
	std::array<uint64_t, 2> copied{};        // bytes sonic copied after pair(), per direction
	bool failed = false;
};

// Ends the tunnel as a whole: the other direction's socket operations are
// cancelled, its pauses see FAILED.
void fail(Spliced &s)
{
	s.failed = true;
	asio::error_code ec;
	s.sock[0]->cancel(ec);
	s.sock[1]->cancel(ec);
}

// A SpliceTunnel call; a failing system call (a socket gone bad under it)
// ends the tunnel like a reset does.
template <typename F> SpliceState guarded(F call)
{
	try {
		return call();
	} catch (const Error &) {
		return SpliceState::Failed;
	}
}

// Waits DELAY, then doubles it up to kRetryMax. False when cancelled.
awaitable<bool> pause(asio::steady_timer &timer, std::chrono::microseconds &delay)
{
	timer.expires_after(delay);
	delay = std::min(delay * 2, std::chrono::microseconds(kRetryMax));
	asio::error_code ec;
	co_await timer.async_wait(with(ec));
	co_return !ec;
}

// A direction the kernel passes to its source socket: read, and write once
// every byte before is in the destination's send queue (copy_read); a read
// of 0 ends it only when copy_eof() says so.
awaitable<void> copy_direction(Spliced &s, SpliceDir dir, asio::steady_timer &timer)
{
	const int src = static_cast<int>(dir);
	tcp::socket &from = *s.sock[src];
	tcp::socket &to = *s.sock[1 - src];
	const std::span<char> buf = s.buffer[src];
	std::chrono::microseconds delay = bpf::kSpliceRetry;
	uint64_t read = 0;
	for (;;) {
		asio::error_code ec;
		size_t n = co_await from.async_read_some(asio::buffer(buf.data(), buf.size()), with(ec));
		if (s.failed)
			co_return;
		if (ec == asio::error::eof) {
			SpliceState st = guarded([&] { return s.tunnel.copy_eof(dir, read); });
			if (st == SpliceState::Ended)
				co_return;
			if (st != SpliceState::Copy || !co_await pause(timer, delay) || s.failed)
				break;
			continue;
		}
		if (ec)
			break;
		delay = bpf::kSpliceRetry;
		SpliceState st;
		while ((st = guarded([&] { return s.tunnel.copy_read(dir, n); })) == SpliceState::CopyPending)
			if (!co_await pause(timer, delay) || s.failed)
				break;
		if (st != SpliceState::Copy || s.failed)
			break;
		co_await asio::async_write(to, asio::buffer(buf.data(), n), with(ec));
		if (ec)
			break;
		read += n;
		s.copied[src] += n;
	}
	if (!s.failed)
		fail(s);
}

// One direction of a paired tunnel, driven by advance(): while the kernel
// forwards, sonic only waits for the source to end (or for bytes the
// kernel left on it), peeking so that readiness is never missed.
awaitable<void> splice_direction(Spliced &s, SpliceDir dir)
{
	const int src = static_cast<int>(dir);
	tcp::socket &from = *s.sock[src];
	asio::steady_timer timer(from.get_executor());
	std::chrono::microseconds delay = bpf::kSpliceRetry;
	bool woke = false; // the last wait ended on bytes or an end of stream
	char peek;
	while (!s.failed) {
		switch (guarded([&] { return s.tunnel.advance(dir); })) {
		case SpliceState::Spliced: {
			if (woke) {
				// The verdict has not run on what woke us yet.
				woke = false;
				if (!co_await pause(timer, delay))
					fail(s);
				break;
			}
			delay = bpf::kSpliceRetry;
			asio::error_code ec;
			co_await from.async_receive(asio::buffer(&peek, 1), tcp::socket::message_peek, with(ec));
			if (ec && ec != asio::error::eof) {
				if (!s.failed)
					fail(s);
				co_return;
			}
			woke = true;
			break;
		}
		case SpliceState::Draining:
		case SpliceState::CopyPending:
			if (!co_await pause(timer, delay))
				fail(s);
			break;
		case SpliceState::Copy:
			co_await copy_direction(s, dir, timer);
			co_return;
		case SpliceState::Ended:
			co_return;
		case SpliceState::Failed:
			fail(s);
			co_return;
		}
	}
}

uint64_t activity(const Spliced &s)
{
	return s.tunnel.redirected_bytes(SpliceDir::ClientToUpstream) +
	       s.tunnel.redirected_bytes(SpliceDir::UpstreamToClient) + s.copied[0] + s.copied[1];
}

// The idle timeout of a paired tunnel: the worker's sweep cannot see bytes
// the kernel forwards, so this looks at the counts every idle period and
// ends the tunnel when none moved.
awaitable<void> watch_idle(Spliced &s)
{
	asio::steady_timer timer(s.sock[0]->get_executor());
	uint64_t last = activity(s);
	for (;;) {
		timer.expires_after(s.ctx.idle);
		asio::error_code ec;
		co_await timer.async_wait(with(ec));
		if (ec)
			co_return;
		const uint64_t now = activity(s);
		if (now == last) {
			fail(s);
			co_return;
		}
		last = now;
	}
}

awaitable<void> write_all(tcp::socket &to, std::span<const char> data, asio::error_code &ec)
{
	if (!data.empty())
		co_await asio::async_write(to, asio::buffer(data.data(), data.size()), with(ec));
}

} // namespace

awaitable<TunnelBytes> tunnel(tcp::socket &client, tcp::socket &upstream, std::span<const char> from_client,
			      std::span<const char> from_upstream, TunnelContext ctx)
{
	*ctx.deadline = *ctx.now + ctx.idle;
	if (!ctx.splice)
		co_return co_await copy_both(client, upstream, from_client, from_upstream, ctx);

	// The bytes already read go first, completely: the kernel forwards only
	// what the sockets receive after them.
	asio::error_code up_ec, down_ec;
	co_await (write_all(upstream, from_client, up_ec) && write_all(client, from_upstream, down_ec));
	if (up_ec || down_ec)
		co_return TunnelBytes{up_ec ? 0 : from_client.size(), down_ec ? 0 : from_upstream.size()};

	std::optional<bpf::SpliceTunnel> paired;
	try {
		paired.emplace(ctx.splice->pair(client.native_handle(), upstream.native_handle()));
	} catch (const Error &) {
		// Not established any more (a client that already half-closed), or
		// the map is full: this tunnel is copied.
	}
	if (!paired) {
		TunnelBytes rest = co_await copy_both(client, upstream, {}, {}, ctx);
		co_return TunnelBytes{from_client.size() + rest.client_to_upstream,
				      from_upstream.size() + rest.upstream_to_client};
	}

	*ctx.deadline = std::chrono::steady_clock::time_point::max();
	Spliced s{*paired, ctx, {&client, &upstream}, {ctx.client_buffer, ctx.upstream_buffer}};
	co_await ((splice_direction(s, SpliceDir::ClientToUpstream) && splice_direction(s, SpliceDir::UpstreamToClient)) ||
		  watch_idle(s));
	TunnelBytes bytes;
	bytes.spliced_up = paired->redirected_bytes(SpliceDir::ClientToUpstream);
	bytes.spliced_down = paired->redirected_bytes(SpliceDir::UpstreamToClient);
	bytes.client_to_upstream = from_client.size() + s.copied[0] + bytes.spliced_up;
	bytes.upstream_to_client = from_upstream.size() + s.copied[1] + bytes.spliced_down;
	paired->unpair();
	co_return bytes;
}

awaitable<TunnelBytes> tunnel(ClientStream &client, ClientStream &upstream, std::span<const char> from_client,
			      std::span<const char> from_upstream, TunnelContext ctx)
{
	if (client.raw_fd() >= 0 && upstream.raw_fd() >= 0)
		co_return co_await tunnel(client.socket(), upstream.socket(), from_client, from_upstream, ctx);
	*ctx.deadline = *ctx.now + ctx.idle;
	TunnelBytes bytes;
	bool failed = false;
	co_await (pump_stream(client, upstream, from_client, ctx.client_buffer, ctx, bytes.client_to_upstream, failed) &&
		  pump_stream(upstream, client, from_upstream, ctx.upstream_buffer, ctx, bytes.upstream_to_client, failed));
	co_return bytes;
}

} // namespace sonic::proxy
