// The client side of a session as the session sees it: bytes in, bytes
// out, an end. PlainStream is a TCP socket; TlsStream (core/proxy/
// tls_stream.hpp) is a GnuTLS session over one. The session talks only to
// this interface, so HTTP, scripts and tunnels work the same over both.
// Splice and sockmap need the socket's own bytes: raw_fd() gives the
// descriptor only where the stream adds nothing to them.
// Model: Envoy's transport sockets.
#pragma once

#include "proxy/asio.hpp"

#include <memory>
#include <span>

namespace sonic::proxy {

// The result of one read or write: the bytes moved, and the error that
// ended it (eof when the peer closed its sending direction).
struct IoResult {
	size_t bytes = 0;
	asio::error_code error;
	explicit operator bool() const { return !error; }
};

class ClientStream {
public:
	virtual ~ClientStream() = default;

	// Reads at least one byte into BUF (bytes == 0 only with an error).
	virtual awaitable<IoResult> read_some(std::span<char> buf) = 0;
	// Writes every byte of BUFS, in order.
	virtual awaitable<IoResult> write(std::span<const asio::const_buffer> bufs) = 0;
	// (A coroutine itself, so that the buffer outlives the lazy write.)
	awaitable<IoResult> write(std::string_view bytes)
	{
		asio::const_buffer b(bytes.data(), bytes.size());
		co_return co_await write(std::span<const asio::const_buffer>(&b, 1));
	}
	// Ends the sending direction: for TLS a close_notify, then a TCP FIN.
	virtual awaitable<void> shutdown() = 0;
	// Cancels what the stream waits on (timeouts, drain); the waiter sees
	// operation_aborted.
	virtual void cancel() = 0;
	// Closes at once.
	virtual void close() = 0;
	// The descriptor whose bytes are the application's own, or -1 (TLS):
	// tunnels splice and sockets are accelerated only where there is one.
	virtual int raw_fd() const = 0;
	// The TCP connection underneath (addresses, options, peeking).
	virtual tcp::socket &socket() = 0;
};

// Plain TCP over a socket held elsewhere (an upstream connection's, as one
// side of a tunnel): every call is the socket's own.
class SocketStream : public ClientStream {
public:
	explicit SocketStream(tcp::socket &sock) : sock_(sock) {}

	awaitable<IoResult> read_some(std::span<char> buf) override
	{
		IoResult r;
		r.bytes = co_await sock_.async_read_some(asio::buffer(buf.data(), buf.size()), with(r.error));
		co_return r;
	}
	awaitable<IoResult> write(std::span<const asio::const_buffer> bufs) override
	{
		IoResult r;
		r.bytes = co_await asio::async_write(sock_, bufs, with(r.error));
		co_return r;
	}
	using ClientStream::write;
	awaitable<void> shutdown() override
	{
		asio::error_code ec;
		sock_.shutdown(tcp::socket::shutdown_send, ec);
		co_return;
	}
	void cancel() override
	{
		asio::error_code ec;
		sock_.cancel(ec);
	}
	void close() override
	{
		asio::error_code ec;
		sock_.shutdown(tcp::socket::shutdown_both, ec);
		sock_.close(ec);
	}
	int raw_fd() const override { return sock_.native_handle(); }
	tcp::socket &socket() override { return sock_; }

private:
	tcp::socket &sock_;
};

// The socket a PlainStream owns, made before the stream that uses it.
struct OwnedSocket {
	tcp::socket owned_socket;
};

// Plain TCP, owning its socket (a client's connection).
class PlainStream final : private OwnedSocket, public SocketStream {
public:
	explicit PlainStream(tcp::socket sock) : OwnedSocket{std::move(sock)}, SocketStream(owned_socket) {}
};

} // namespace sonic::proxy
