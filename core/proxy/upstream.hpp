// UpstreamClient: how a worker reaches servers, for routing and for
// scripts' fetch(): resolve a name, pick a server of a group (round robin
// over those not marked down), take a pooled connection or connect a new
// one. What fails comes back as an UpstreamError that says which server,
// which phase and why, so that every 502/504 sonic makes can be logged with
// its cause.
#pragma once

#include "proxy/worker.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace sonic::proxy {

// Where a request goes: a configured group, or one server (forward,
// transparent, CONNECT, a script's fetch to a URL).
struct Target {
	Group *group = nullptr;
	ServerState *server = nullptr;
	std::string host;
	uint16_t port = 0;
	// The route (an index into Config::routes) that chose the group.
	static constexpr size_t kNoRoute = ~size_t(0);
	size_t route = kNoRoute;
};

// The phase of an exchange in which sonic gave up and answered itself.
enum class Phase : uint8_t { Resolve, Connect, Handshake, Send, ResponseHead, ResponseBody, Script };
const char *phase_name(Phase p);

// Why sonic made a 5xx itself: the labels of sonic_local_errors_total.
enum class Cause : uint8_t {
	Resolve,          // no address for the name
	ConnectRefused,   // connect failed (refused, unreachable, ...)
	ConnectTimeout,   // connect took longer than upstream_connect
	SendFailed,       // writing the request failed
	ResponseTimeout,  // no response within upstream_response
	ClosedEarly,      // the server closed before a complete response head
	BadResponse,      // the response (head or body) broke HTTP/1.1
	ScriptError,      // a worker script threw or returned no Response
	ScriptLimit,      // a worker script exceeded its CPU, heap or subrequests
	NoServer,         // a group with no server to try
	UpstreamTls,      // the TLS handshake with the origin failed (its certificate did not verify, ...)
};
constexpr size_t kCauses = 11;
const char *cause_name(Cause c);

struct UpstreamError {
	UpstreamError() = default;
	UpstreamError(int status_, Cause cause_, Phase phase_, std::string server_, int error_, std::string detail_ = {})
		: status(status_), cause(cause_), phase(phase_), server(std::move(server_)), error(error_),
		  detail(std::move(detail_))
	{
	}
	int status = 502;
	Cause cause = Cause::ConnectRefused;
	Phase phase = Phase::Connect;
	std::string server; // ADDR:PORT or the name, empty when none was tried
	int error = 0;      // errno, 0 for a timeout or a protocol error
	std::string detail; // what TLS said (the certificate's verification status), a script's error and stack
	// "connect to 127.0.0.1:9 refused (ECONNREFUSED)"-style text for logs.
	std::string describe() const;
};

struct Acquired {
	std::unique_ptr<UpConn> conn;
	UpstreamError error; // when !conn
	explicit operator bool() const { return conn != nullptr; }
};

class UpstreamClient {
public:
	explicit UpstreamClient(Worker &worker) : worker_(worker) {}

	// A connection to TARGET: pooled unless FRESH (a pooled one is peeked
	// first when VERIFY, i.e. when the request may not be sent twice), else
	// a new connect bounded by CONNECT_TIMEOUT. A group's servers are tried
	// in turn; a server that fails is marked down for its fail_timeout
	// unless it is its group's only one (nginx's semantics: a lone server
	// is never down), and never when it was reached by address.
	awaitable<Acquired> acquire(Target &target, bool fresh, bool verify, std::chrono::milliseconds connect_timeout);
	// HOST (a name or an address) at PORT, through the worker's cache.
	awaitable<ServerState *> resolve(const std::string &host, uint16_t port);
	// TLS over CONN (connected to an origin) as SERVER (a server_for_tls()
	// state) says: SNI, verification, resumption with its last session.
	// The connection comes back as SERVER's, or an UpstreamTls error.
	awaitable<Acquired> start_tls(std::unique_ptr<UpConn> conn, ServerState &server);

private:
	awaitable<Acquired> connect(ServerState &server, std::chrono::milliseconds timeout, bool mark_down);
	std::unique_ptr<UpConn> pooled(ServerState &server, bool verify);

	Worker &worker_;
};

} // namespace sonic::proxy
