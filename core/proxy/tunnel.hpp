// The byte pump of every tunnel: CONNECT, Upgrade (websocket), tcp routes
// and transparent non-HTTP connections. With the splice family (see
// core/bpf/splice.hpp) the kernel forwards the bytes and sonic only watches
// for the ends; a direction the kernel hands back is copied here.
#pragma once

#include "proxy/asio.hpp"
#include "proxy/stream.hpp"

#include <chrono>
#include <cstdint>
#include <span>

namespace sonic::bpf {
class Splice;
}

namespace sonic::proxy {

struct TunnelBytes {
	uint64_t client_to_upstream = 0;
	uint64_t upstream_to_client = 0;
	// Of those, the bytes the kernel forwarded.
	uint64_t spliced_up = 0;
	uint64_t spliced_down = 0;
};

struct TunnelContext {
	// Moved forward by idle on every transfer; the worker's sweep cancels
	// both sockets once *deadline passes.
	std::chrono::steady_clock::time_point *deadline = nullptr;
	const std::chrono::steady_clock::time_point *now = nullptr;
	std::chrono::milliseconds idle{0};
	// One buffer per direction.
	std::span<char> client_buffer;
	std::span<char> upstream_buffer;
	// The splice family, or null to copy every byte in userspace.
	const bpf::Splice *splice = nullptr;
};

// Moves bytes both ways between two connected sockets until both
// directions have ended, passing a half-close (EOF) on as a shutdown of the
// other side's sending direction. FROM_CLIENT and FROM_UPSTREAM are bytes
// already read from each side, sent first. An error on either side (reset,
// timeout) ends both directions. The sockets stay open: the caller closes.
// With ctx.splice the sockets are paired once those bytes are written, and
// the kernel forwards the rest; a tunnel it refuses to pair is copied.
asio::awaitable<TunnelBytes> tunnel(tcp::socket &client, tcp::socket &upstream, std::span<const char> from_client,
				    std::span<const char> from_upstream, TunnelContext ctx);

// The same between streams: where both are a socket's own bytes (raw_fd())
// the sockets tunnel as above (spliced when ctx.splice); where either is
// TLS (an intercepted client, an origin over TLS) the bytes are copied
// through the streams, and an end is passed on as the other's shutdown.
asio::awaitable<TunnelBytes> tunnel(ClientStream &client, ClientStream &upstream, std::span<const char> from_client,
				    std::span<const char> from_upstream, TunnelContext ctx);

} // namespace sonic::proxy
