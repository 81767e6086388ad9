// Standalone Asio as sonic uses it: C++20 coroutines, errors as codes
// rather than exceptions on the request path.
#pragma once

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>

namespace sonic::proxy {

using tcp = asio::ip::tcp;
using asio::awaitable;

// Completion token that stores the error in EC instead of throwing.
inline auto with(asio::error_code &ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// EP as ADDR:PORT (net::host_port), an IPv4-mapped address as IPv4.
std::string endpoint_text(const tcp::endpoint &ep);

} // namespace sonic::proxy
