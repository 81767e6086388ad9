// Filters: what runs between a request's head and its origin, and between
// the origin's response head and the client. A route's FilterChain lives in
// the worker's configuration generation, so SIGHUP swaps it whole with the
// configuration. Worker scripts (core/js) are filters; so is the WAF to
// come. The router is the chain's terminal step, as in Envoy: it picks the
// route, whose chain then runs, and forwards what the chain let through.
// Models: Envoy's FilterManager, HAProxy's filters.
#pragma once

#include "http/owned.hpp"
#include "proxy/asio.hpp"
#include "proxy/upstream.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sonic::proxy {

// What a filter knows of the connection.
struct ClientFacts {
	std::string address; // ADDR:PORT of the client
	std::string ip;
	std::string original_dst; // ADDR:PORT (transparent mode), else empty
	std::string listener;     // ADDR:PORT the client connected to
	// TLS as the client spoke it (TlsStream); empty/false for plain TCP.
	std::string sni;
	std::string tls_version; // "TLS1.3"
	std::string cipher;      // "AES-128-GCM"
	std::string alpn;        // "http/1.1", or empty
	bool intercepted = false;
	bool resumed = false;
};

// One exchange as filters see it.
struct Exchange {
	http::Request request;
	// The origin's response head, for on_response (its body streams after).
	http::Response response;
	const ClientFacts *client = nullptr;
	// "http" or "https" as the client spoke it, for building URLs.
	std::string_view scheme = "http";
	// Where the request goes when a filter lets it through (the route's
	// group, or the one server of forward and transparent modes), for
	// scripts' fetch() of the request itself.
	Target *origin = nullptr;
	// Reads the request body whole into request.body (bounded by [limits]
	// body_bytes); false when the client went away, the body was too big or
	// broke HTTP. Set by the session.
	std::function<awaitable<bool>()> read_body;
	// What a filter keeps between on_request and on_response (a script's
	// request in its heap); released when the exchange ends.
	std::shared_ptr<void> filter_state;
	// For the access log: the script that ran and its outcome.
	std::string_view script;
	std::string_view script_outcome;
};

enum class Verdict : uint8_t { Continue, Respond, Close };

struct FilterResult {
	Verdict verdict = Verdict::Continue;
	http::Response response; // for Respond
	// For a 5xx the filter made: why, logged once by the session.
	std::optional<UpstreamError> failure;

	static FilterResult next() { return {}; }
	static FilterResult respond(http::Response r)
	{
		FilterResult f;
		f.verdict = Verdict::Respond;
		f.response = std::move(r);
		return f;
	}
};

class Filter {
public:
	virtual ~Filter() = default;
	// Before the request goes to its origin: may edit ex.request, answer,
	// or close.
	virtual awaitable<FilterResult> on_request(Exchange &ex) = 0;
	// Whether on_response is to be called for EX (it costs an owned Response).
	virtual bool wants_response(const Exchange &) const { return false; }
	// With ex.response the origin's head: may edit it, replace it, or close.
	virtual awaitable<FilterResult> on_response(Exchange &) { co_return FilterResult::next(); }
};

using FilterChain = std::vector<std::shared_ptr<Filter>>;

} // namespace sonic::proxy
