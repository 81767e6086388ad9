#include "js/script_filter.hpp"

#include "bpf/fw_block.hpp"
#include "http/serialize.hpp"
#include "http/target.hpp"
#include "out/log.hpp"
#include "proxy/upstream.hpp"
#include "proxy/worker.hpp"

#include <duktape.h>

namespace sonic::js {

using proxy::awaitable;
using proxy::Cause;
using proxy::Exchange;
using proxy::FilterResult;
using proxy::Phase;
using proxy::UpstreamError;
using proxy::with;
using Pairs = std::vector<std::pair<std::string, std::string>>;

// One request in the heap: the prelude's state is __sonic's requests[id].
struct ScriptFilter::Call {
	uint64_t id = 0;
	std::weak_ptr<Instance> instance;
	std::weak_ptr<ScriptFilter> filter;
	std::chrono::nanoseconds cpu{0};
	bool awaiting_origin = false;  // fetch(request) went down the proxy's path
	Exchange *ex = nullptr;
	~Call()
	{
		if (auto i = instance.lock())
			i->finished(id);
		if (auto f = filter.lock())
			f->calls_.erase(id);
	}
};

// What __sonic.result() said.
struct ScriptFilter::Outcome {
	enum class Kind { Pending, Pass, Origin, Respond, Error } kind = Kind::Pending;
	std::string method, url;
	std::optional<Pairs> headers;
	int status = 0;
	std::string status_text;
	std::optional<std::string> body;
	bool origin_body = false;
	bool pass_through = false;
	std::string message;
};

namespace {

std::string get_string(duk_context *ctx, duk_idx_t obj, const char *key)
{
	duk_get_prop_string(ctx, obj, key);
	std::string s = duk_is_string(ctx, -1) ? duk_get_string(ctx, -1) : std::string();
	duk_pop(ctx);
	return s;
}

// A flat [name, value, ...] array at OBJ[KEY], or nullopt for null.
std::optional<Pairs> get_pairs(duk_context *ctx, duk_idx_t obj, const char *key)
{
	duk_get_prop_string(ctx, obj, key);
	std::optional<Pairs> out;
	if (duk_is_array(ctx, -1)) {
		out.emplace();
		const duk_size_t n = duk_get_length(ctx, -1);
		for (duk_size_t i = 0; i + 1 < n; i += 2) {
			duk_get_prop_index(ctx, -1, static_cast<duk_uarridx_t>(i));
			duk_get_prop_index(ctx, -2, static_cast<duk_uarridx_t>(i + 1));
			out->emplace_back(duk_safe_to_string(ctx, -2), duk_safe_to_string(ctx, -1));
			duk_pop_2(ctx);
		}
	}
	duk_pop(ctx);
	return out;
}

// A string or bytes at OBJ[KEY]; nullopt for null or undefined.
std::optional<std::string> get_body(duk_context *ctx, duk_idx_t obj, const char *key)
{
	duk_get_prop_string(ctx, obj, key);
	std::optional<std::string> out;
	if (duk_is_string(ctx, -1)) {
		duk_size_t n = 0;
		const char *s = duk_get_lstring(ctx, -1, &n);
		out.emplace(s, n);
	} else if (duk_is_buffer_data(ctx, -1)) {
		duk_size_t n = 0;
		void *p = duk_get_buffer_data(ctx, -1, &n);
		out.emplace(static_cast<const char *>(p), n);
	}
	duk_pop(ctx);
	return out;
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

// A field name lowered, as the prelude's Headers keep names.
void push_lower(duk_context *ctx, std::string_view name)
{
	char buf[128];
	if (name.size() > sizeof buf) {
		std::string lower(name);
		for (char &c : lower)
			c = ascii_lower(c);
		duk_push_lstring(ctx, lower.data(), lower.size());
		return;
	}
	for (size_t i = 0; i < name.size(); i++)
		buf[i] = ascii_lower(name[i]);
	duk_push_lstring(ctx, buf, name.size());
}

// Pushes [lower name, value, ...] for the prelude (headersFromFlat).
template <class List>
void push_flat(duk_context *ctx, const List &pairs)
{
	duk_push_array(ctx);
	duk_uarridx_t i = 0;
	for (const auto &[name, value] : pairs) {
		push_lower(ctx, name);
		duk_put_prop_index(ctx, -2, i++);
		duk_push_lstring(ctx, value.data(), value.size());
		duk_put_prop_index(ctx, -2, i++);
	}
}

void put_string(duk_context *ctx, const char *key, std::string_view value)
{
	duk_push_lstring(ctx, value.data(), value.size());
	duk_put_prop_string(ctx, -2, key);
}

// The request's URL as scripts see it: absolute-form as it came, or
// SCHEME://HOST plus the origin-form target.
std::string request_url(const Exchange &ex)
{
	const http::Request &r = ex.request;
	if (http::parse_absolute_form(r.target))
		return r.target;
	std::string host(r.headers.get("Host").value_or(""));
	if (host.empty() && ex.client)
		host = ex.client->listener;
	return std::string(ex.scheme) + "://" + host + (r.target.empty() || r.target[0] != '/' ? "/" : "") + r.target;
}

// scheme://authority/path?query -> authority and /path?query (no fragment).
struct UrlParts {
	std::string scheme, authority, target;
};
std::optional<UrlParts> split_url(std::string_view url)
{
	size_t colon = url.find("://");
	if (colon == std::string_view::npos)
		return std::nullopt;
	UrlParts p;
	p.scheme.assign(url.substr(0, colon));
	std::string_view rest = url.substr(colon + 3);
	size_t slash = rest.find_first_of("/?#");
	p.authority.assign(rest.substr(0, slash));
	std::string_view tail = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
	tail = tail.substr(0, tail.find('#'));
	p.target = tail.empty() || tail[0] != '/' ? "/" + std::string(tail) : std::string(tail);
	return p;
}

void replace_fields(http::Fields &fields, const Pairs &pairs)
{
	fields.clear();
	for (const auto &[n, v] : pairs)
		fields.append(n, v);
}

bool has_body(const http::Request &r)
{
	if (r.headers.has("Transfer-Encoding"))
		return true;
	auto cl = r.headers.get("Content-Length");
	return cl && *cl != "0";
}

} // namespace

ScriptFilter::ScriptFilter(std::shared_ptr<const Program> program, proxy::Worker &worker)
	: program_(std::move(program)), worker_(worker)
{
}

ScriptFilter::~ScriptFilter() = default;

bool ScriptFilter::ensure_instance()
{
	if (instance_)
		return true;
	try {
		instance_ = std::make_shared<Instance>(program_, this);
		return true;
	} catch (const std::exception &e) {
		instance_error_ = e.what();
		return false;
	}
}

void ScriptFilter::log(int level, std::string_view text)
{
	std::string line = "script " + program_->name + ": " + std::string(text);
	if (level >= 3)
		log::warn(line);
	else if (level == 2)
		log::warn(line);
	else
		log::info(line);
}

std::string ScriptFilter::block(const std::string &address, unsigned ttl_seconds, const std::string &reason)
{
	std::shared_ptr<bpf::Blocker> b = worker_.blocker();
	if (!b)
		return "the fw family is not available to this proxy";
	std::optional<std::chrono::seconds> ttl;
	if (ttl_seconds)
		ttl = std::chrono::seconds(ttl_seconds);
	bpf::BlockResult r = b->block(program_->name, address, ttl, reason);
	return r.outcome == bpf::BlockOutcome::Blocked ? std::string() : r.message;
}

// Runs the host call on the stack for CALL within what is left of its CPU
// budget, leaving its value on the stack. On failure nothing is left, the
// error is kept in last_stop_/last_error_, and a heap that ran out (or
// failed fatally) is dropped, to be rebuilt for the next request; its other
// requests in flight fail with it.
Heap::Ran ScriptFilter::run(Call &call, int nargs)
{
	const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(program_->limits.cpu) - call.cpu;
	Heap::Ran r;
	running_ = &call;
	try {
		r = instance_->heap().call(nargs, left.count() > 0 ? left : std::chrono::nanoseconds(1));
	} catch (const HeapFatal &e) {
		running_ = nullptr;
		instance_.reset();
		last_stop_ = Stop::Heap;
		last_error_ = e.what();
		return Heap::Ran{Stop::Heap, {}};
	}
	running_ = nullptr;
	call.cpu += r.took;
	program_->stats.cpu_ns += static_cast<uint64_t>(r.took.count());
	// The allocator refused this run something: even if the script went on
	// (it may have caught the RangeError), the heap is rebuilt once this
	// request is decided.
	if (instance_->heap().refused())
		exhausted_ = true;
	if (r.stop != Stop::None) {
		last_stop_ = r.stop;
		last_error_ = instance_->heap().error_text();
		duk_pop(instance_->ctx());
		if (r.stop == Stop::Heap)
			instance_.reset();
	}
	return r;
}

ScriptFilter::Outcome ScriptFilter::start(Call &call, const Exchange &ex)
{
	duk_context *ctx = instance_->ctx();
	const http::Request &r = ex.request;
	instance_->push_host_call("start");
	duk_push_number(ctx, static_cast<double>(call.id));
	duk_push_lstring(ctx, r.method.data(), r.method.size());
	const std::string url = request_url(ex);
	duk_push_lstring(ctx, url.data(), url.size());
	push_flat(ctx, r.headers.entries());
	if (r.body_read && !r.body.empty()) {
		void *p = duk_push_fixed_buffer(ctx, r.body.size());
		std::memcpy(p, r.body.data(), r.body.size());
		duk_push_buffer_object(ctx, -1, 0, r.body.size(), DUK_BUFOBJ_UINT8ARRAY);
		duk_remove(ctx, -2);
	} else {
		duk_push_null(ctx);
	}
	instance_->push_env();
	duk_push_uint(ctx, program_->limits.subrequests);
	instance_->push_finished();
	return outcome(call, 8);
}

void ScriptFilter::push_facts(duk_context *ctx, uint64_t request)
{
	auto it = calls_.find(request);
	if (it == calls_.end() || !it->second->ex) {
		duk_push_undefined(ctx);
		return;
	}
	const Exchange &ex = *it->second->ex;
	duk_push_object(ctx);
	if (!ex.client)
		return;
	put_string(ctx, "address", ex.client->address);
	put_string(ctx, "ip", ex.client->ip);
	put_string(ctx, "listener", ex.client->listener);
	put_string(ctx, "originalDestination", ex.client->original_dst);
	put_string(ctx, "sni", ex.client->sni);
	put_string(ctx, "tlsVersion", ex.client->tls_version);
	duk_push_boolean(ctx, ex.client->intercepted);
	duk_put_prop_string(ctx, -2, "intercepted");
}

ScriptFilter::Outcome ScriptFilter::result(Call &call)
{
	// One host call: drain the microtasks, then say what became of it.
	instance_->push_host_call("run");
	duk_push_number(instance_->ctx(), static_cast<double>(call.id));
	return outcome(call, 1);
}

// Runs the host call on the stack, which answers as __sonic.run() does,
// and reads that answer.
ScriptFilter::Outcome ScriptFilter::outcome(Call &call, int nargs)
{
	Outcome o;
	duk_context *c = instance_->ctx();
	if (run(call, nargs).stop != Stop::None) {
		o.kind = Outcome::Kind::Error;
		return o;
	}
	if (duk_is_null_or_undefined(c, -1)) {
		duk_pop(c);
		return o;
	}
	const duk_idx_t at = duk_normalize_index(c, -1);
	const std::string kind = get_string(c, at, "kind");
	if (kind == "pass" || kind == "origin") {
		o.kind = kind == "pass" ? Outcome::Kind::Pass : Outcome::Kind::Origin;
		o.method = get_string(c, at, "method");
		o.url = get_string(c, at, "url");
		o.headers = get_pairs(c, at, "headers");
		o.body = get_body(c, at, "body");
	} else if (kind == "respond") {
		o.kind = Outcome::Kind::Respond;
		duk_get_prop_string(c, at, "status");
		o.status = duk_to_int(c, -1);
		duk_pop(c);
		o.status_text = get_string(c, at, "statusText");
		o.headers = get_pairs(c, at, "headers");
		duk_get_prop_string(c, at, "origin");
		o.origin_body = duk_to_boolean(c, -1);
		duk_pop(c);
		o.body = get_body(c, at, "body");
	} else {
		o.kind = Outcome::Kind::Error;
		last_stop_ = Stop::Throw;
		last_error_ = get_string(c, at, "message");
		duk_get_prop_string(c, at, "passThrough");
		o.pass_through = duk_to_boolean(c, -1);
		duk_pop(c);
	}
	duk_pop(c);
	return o;
}

FilterResult ScriptFilter::failed(Call &call, Stop stop, std::string detail)
{
	if (call.ex)
		call.ex->script_outcome = stop == Stop::None ? "throw" : stop_name(stop);
	FilterResult f;
	f.verdict = proxy::Verdict::Respond;
	const bool limit = stop == Stop::Timeout || stop == Stop::Heap;
	switch (stop) {
	case Stop::Timeout:
		program_->stats.timeouts++;
		detail = "over its CPU limit of " + std::to_string(program_->limits.cpu.count()) + " ms";
		break;
	case Stop::Heap:
		program_->stats.heaps++;
		detail = "exhausted its heap (" + std::to_string(program_->limits.heap_bytes) + " bytes; rebuilt): " + detail;
		break;
	default:
		program_->stats.throws++;
		break;
	}
	f.failure = UpstreamError{500, limit ? Cause::ScriptLimit : Cause::ScriptError, Phase::Script, program_->name, 0,
				  std::move(detail)};
	return f;
}

awaitable<void> ScriptFilter::wait_for_progress()
{
	asio::error_code ec;
	// A timer of this frame's own (it goes with the frame, before the
	// worker's io_context), woken by settle().
	asio::steady_timer wake(worker_.context(), asio::steady_timer::time_point::max());
	waiters_.push_back(&wake);
	co_await wake.async_wait(with(ec));
	std::erase(waiters_, &wake);
}

awaitable<FilterResult> ScriptFilter::on_request(Exchange &ex)
{
	program_->stats.runs++;
	if (!ensure_instance()) {
		program_->stats.throws++;
		FilterResult f;
		f.verdict = proxy::Verdict::Respond;
		f.failure = UpstreamError{500, Cause::ScriptError, Phase::Script, program_->name, 0,
					  "cannot load: " + instance_error_};
		co_return f;
	}
	if (has_body(ex.request) && !ex.request.body_read) {
		bool read = co_await ex.read_body();
		if (!read) {
			FilterResult f;
			f.verdict = proxy::Verdict::Close;
			co_return f;
		}
	}
	auto call = std::make_shared<Call>();
	call->id = next_id_++;
	call->instance = instance_;
	call->filter = weak_from_this();
	call->ex = &ex;
	calls_[call->id] = call.get();
	ex.filter_state = call;
	ex.script = program_->name;
	Outcome first = start(*call, ex);
	FilterResult r = co_await conclude(ex, *call, false, &first);
	co_return r;
}

bool ScriptFilter::wants_response(const Exchange &ex) const
{
	auto *call = static_cast<const Call *>(ex.filter_state.get());
	return call && (call->awaiting_origin || (instance_ && instance_->has_response_handlers()));
}

// From the request's FIRST outcome, waits for its subrequests and drains
// its microtasks until it is decided, and turns the outcome into the
// chain's verdict.
awaitable<FilterResult> ScriptFilter::conclude(Exchange &ex, Call &call, bool in_response, Outcome *first)
{
	Outcome o = std::move(*first);
	while (o.kind == Outcome::Kind::Pending) {
		if (in_flight_ == 0)
			co_return failed(call, Stop::Throw,
					 "the handler's promise never settled (nothing it waits for is in flight)");
		co_await wait_for_progress();
		if (!instance_ || call.instance.lock() != instance_)
			co_return failed(call, Stop::Heap, "the heap was rebuilt while the request waited");
		o = result(call);
	}
	if (exhausted_) {
		exhausted_ = false;
		instance_.reset();
		if (o.kind == Outcome::Kind::Error)
			co_return failed(call, Stop::Heap, last_error_);
	}
	co_return verdict(ex, call, std::move(o), in_response);
}

// The chain's verdict for the decided outcome O.
FilterResult ScriptFilter::verdict(Exchange &ex, Call &call, Outcome o, bool in_response)
{
	switch (o.kind) {
	case Outcome::Kind::Error:
		if (o.pass_through && !in_response) {
			log(2, "error " + last_error_ + " (passThroughOnException: to the origin)");
			ex.script_outcome = "passthrough";
			return FilterResult::next();
		}
		return failed(call, last_stop_, last_error_);
	case Outcome::Kind::Pass:
	case Outcome::Kind::Origin:
		if (in_response)
			return failed(call, Stop::Throw, "fetch(request) a second time is not supported");
		return forward_edited(ex, call, o);
	case Outcome::Kind::Respond:
		return respond_with(ex, call, o, in_response);
	case Outcome::Kind::Pending:
		break;
	}
	return failed(call, Stop::Throw, "no outcome");
}

// The request goes on to its origin, with the script's edits of O applied.
FilterResult ScriptFilter::forward_edited(Exchange &ex, Call &call, Outcome &o)
{
	http::Request &r = ex.request;
	if (!o.method.empty())
		r.method = o.method;
	const std::string before = request_url(ex);
	if (o.url != before) {
		auto parts = split_url(o.url);
		if (parts) {
			r.target = parts->target;
			auto was = split_url(before);
			if (!was || was->authority != parts->authority)
				r.headers.set("Host", parts->authority);
		}
	}
	if (o.headers)
		replace_fields(r.headers, *o.headers);
	if (o.body) {
		r.body = std::move(*o.body);
		r.body_read = true;
		r.headers.remove("Transfer-Encoding");
		r.headers.set("Content-Length", std::to_string(r.body.size()));
	}
	call.awaiting_origin = o.kind == Outcome::Kind::Origin;
	ex.script_outcome = call.awaiting_origin ? "origin" : "pass";
	return FilterResult::next();
}

// The script's response O: made by the script, or the origin's with the
// head the script left it.
FilterResult ScriptFilter::respond_with(Exchange &ex, Call &call, Outcome &o, bool in_response)
{
	if (o.origin_body) {
		// The origin's response, as the script left its head.
		if (!in_response)
			return failed(call, Stop::Throw, "returned the origin's response before it arrived");
		ex.response.status = o.status;
		ex.response.reason = o.status_text;
		if (o.headers)
			replace_fields(ex.response.headers, *o.headers);
		ex.script_outcome = "origin";
		return FilterResult::next();
	}
	http::Response resp;
	resp.status = o.status;
	resp.reason = o.status_text;
	if (o.headers)
		replace_fields(resp.headers, *o.headers);
	resp.body = o.body.value_or(std::string());
	resp.body_read = true;
	ex.script_outcome = "respond";
	return FilterResult::respond(std::move(resp));
}

awaitable<FilterResult> ScriptFilter::on_response(Exchange &ex)
{
	auto *call = static_cast<Call *>(ex.filter_state.get());
	if (!call || !instance_ || call->instance.lock() != instance_)
		co_return FilterResult::next();
	duk_context *ctx = instance_->ctx();
	const http::Response &resp = ex.response;
	if (call->awaiting_origin) {
		call->awaiting_origin = false;
		instance_->push_host_call("originResponse");
		duk_push_number(ctx, static_cast<double>(call->id));
		duk_push_int(ctx, resp.status);
		std::string_view phrase = resp.phrase();
		duk_push_lstring(ctx, phrase.data(), phrase.size());
		push_flat(ctx, resp.headers.entries());
		Outcome first = outcome(*call, 4);
		FilterResult r = co_await conclude(ex, *call, true, &first);
		co_return r;
	}
	// addEventListener('response'): edits the origin's head in place.
	instance_->push_host_call("response");
	duk_push_number(ctx, static_cast<double>(call->id));
	duk_push_int(ctx, resp.status);
	std::string_view phrase = resp.phrase();
	duk_push_lstring(ctx, phrase.data(), phrase.size());
	push_flat(ctx, resp.headers.entries());
	if (run(*call, 4).stop != Stop::None)
		co_return failed(*call, last_stop_, last_error_);
	if (duk_is_object(ctx, -1)) {
		if (auto h = get_pairs(ctx, -1, "headers"))
			replace_fields(ex.response.headers, *h);
	}
	duk_pop(ctx);
	co_return FilterResult::next();
}

// ---- fetch() to other origins ----------------------------------------------

void ScriptFilter::fetch(Subrequest request)
{
	in_flight_++;
	asio::co_spawn(worker_.context(), run_subrequest(shared_from_this(), std::move(request)), asio::detached);
}

namespace {

// One HTTP/1.1 exchange with a server for a script's fetch(): the request
// whole, the response whole (bounded), on a pooled or new connection.
struct Fetched {
	int status = 0;
	std::string reason;
	Pairs headers;
	std::string body;
	std::string error; // non-empty: it failed
};

constexpr size_t kFetchBodyLimit = 32u << 20;

bool hop_by_hop(std::string_view name)
{
	for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
				   "trailer", "host", "content-length"})
		if (name.size() == h.size() && std::equal(name.begin(), name.end(), h.begin(), [](char a, char b) {
			    return (a | 0x20) == b;
		    }))
			return true;
	return false;
}

std::string request_bytes(const Subrequest &r, const UrlParts &u)
{
	std::string out = r.method + " " + u.target + " HTTP/1.1\r\nHost: " + u.authority + "\r\n";
	for (const auto &[n, v] : r.headers)
		if (!hop_by_hop(n) && http::valid_field_name(n) && http::valid_field_value(v))
			out += n + ": " + v + "\r\n";
	if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH")
		out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
	out += "\r\n";
	out += r.body;
	return out;
}

// Reads more of CONN into BUF within the deadline; false on EOF, error or timeout.
awaitable<bool> read_more(proxy::UpConn &conn, std::string &buf, asio::steady_timer &deadline, std::string &error)
{
	using namespace asio::experimental::awaitable_operators;
	char chunk[16384];
	asio::error_code ec, tec;
	auto which = co_await (conn.sock.async_read_some(asio::buffer(chunk), with(ec)) || deadline.async_wait(with(tec)));
	if (which.index() == 1) {
		error = "timed out";
		co_return false;
	}
	size_t n = std::get<0>(which);
	if (ec || n == 0) {
		error = ec == asio::error::eof || !ec ? "the server closed the connection" : ec.message();
		co_return false;
	}
	buf.append(chunk, n);
	co_return true;
}

// Reads the response head from CONN into F (status, reason, headers);
// returns the bytes read past it, or nullopt with F.error set.
awaitable<std::optional<std::string>> read_response_head(proxy::UpConn &conn, asio::steady_timer &deadline,
							   size_t limit, Fetched &f)
{
	http::Parser &p = conn.parser;
	// The head is parsed in place: BUF holds it until it is complete (it
	// is only appended to when the parser asked for more, and a head over
	// the limit fails before BUF grows past it).
	std::string buf;
	buf.reserve(limit + 16384);
	size_t parsed = 0;
	for (;;) {
		const auto [res, used] = p.head(buf.data() + parsed, buf.size() - parsed);
		parsed += used;
		if (res == http::Parser::Result::Done)
			break;
		if (res == http::Parser::Result::Error || buf.size() > limit) {
			f.error = "bad response head";
			co_return std::nullopt;
		}
		bool more = co_await read_more(conn, buf, deadline, f.error);
		if (!more)
			co_return std::nullopt;
	}
	const http::Head &h = p.message();
	f.status = h.status;
	f.reason.assign(h.reason);
	for (const http::Header &hd : h.headers)
		f.headers.emplace_back(std::string(hd.name), std::string(hd.value));
	co_return buf.substr(parsed);
}

// Reads the body into F.body, decoded, starting with REST (read with the
// head). Returns whether the connection ended the exchange clean, ready for
// another; false with F.error set when the body failed.
awaitable<bool> read_response_body(proxy::UpConn &conn, asio::steady_timer &deadline, std::string &rest, Fetched &f)
{
	http::Parser &p = conn.parser;
	std::vector<std::string_view> pieces;
	p.set_decode(&pieces);
	bool eof = false;
	for (;;) {
		pieces.clear();
		const auto [res, used] = eof ? http::Parser::Step{p.finish(), 0} : p.body(rest.data(), rest.size());
		for (std::string_view piece : pieces)
			f.body.append(piece);
		rest.erase(0, used);
		if (res == http::Parser::Result::Done)
			break;
		if (res == http::Parser::Result::Error || eof) {
			f.error = "bad response body";
			break;
		}
		if (f.body.size() > kFetchBodyLimit) {
			f.error = "response body over " + std::to_string(kFetchBodyLimit >> 20) + " MiB";
			break;
		}
		std::string more_error;
		bool more = co_await read_more(conn, rest, deadline, more_error);
		if (!more) {
			if (more_error == "timed out") {
				f.error = more_error;
				break;
			}
			eof = true; // a body delimited by the close
		}
	}
	p.set_decode(nullptr);
	co_return f.error.empty() && !eof && rest.empty();
}

// One subrequest R to TARGET: connect (or reuse), send, read the response
// whole; the connection goes back to the pool when it may be reused.
awaitable<Fetched> exchange(proxy::Worker &worker, proxy::Target &target, const Subrequest &r, const UrlParts &u)
{
	Fetched f;
	const config::Config &cfg = *worker.current_generation()->config;
	proxy::Acquired a = co_await worker.upstreams().acquire(target, false, true, cfg.timeouts.upstream_connect);
	if (!a) {
		f.error = a.error.describe();
		co_return f;
	}
	proxy::UpConn &conn = *a.conn;
	const std::string out = request_bytes(r, u);
	asio::error_code ec;
	co_await asio::async_write(conn.sock, asio::buffer(out), with(ec));
	if (ec) {
		f.error = "sending the request: " + ec.message();
		co_return f;
	}
	asio::steady_timer deadline(worker.context(), cfg.timeouts.upstream_response);
	conn.parser.reset();
	conn.parser.set_no_body(r.method == "HEAD");
	std::optional<std::string> rest = co_await read_response_head(conn, deadline, cfg.limits.header_bytes, f);
	if (!rest)
		co_return f;
	const bool keep_alive = conn.parser.message().keep_alive;
	bool clean = co_await read_response_body(conn, deadline, *rest, f);
	if (clean && keep_alive)
		worker.release(std::move(a.conn));
	co_return f;
}

} // namespace

awaitable<void> ScriptFilter::run_subrequest(std::shared_ptr<ScriptFilter> self, Subrequest r)
{
	Fetched f;
	auto u = split_url(r.url);
	if (!u || (u->scheme != "http")) {
		f.error = u ? "only http: URLs can be fetched (https to origins comes with TLS interception)" : "bad URL";
	} else {
		proxy::Target target;
		const proxy::Generation *gen = self->worker_.current_generation();
		// A name of an [[upstream]] group reaches that group.
		std::string name(http::host_part(u->authority));
		for (size_t i = 0; i < gen->config->upstreams.size(); i++)
			if (gen->config->upstreams[i].name == name)
				target.group = const_cast<proxy::Group *>(&gen->groups[i]);
		if (!target.group) {
			auto a = http::parse_authority(u->authority, 80);
			if (a) {
				target.host = a->host;
				target.port = a->port;
				target.server = co_await self->worker_.upstreams().resolve(target.host, target.port);
			}
			if (!target.server)
				f.error = "cannot resolve " + u->authority;
		}
		if (f.error.empty())
			f = co_await exchange(self->worker_, target, r, *u);
	}
	self->in_flight_--;
	self->settle(r, f.error.empty(), f.error, f.status, std::move(f.reason), std::move(f.headers), std::move(f.body));
}

void ScriptFilter::settle(const Subrequest &request, bool ok, const std::string &error, int status, std::string reason,
			  Pairs headers, std::string body)
{
	if (instance_) {
		duk_context *ctx = instance_->ctx();
		instance_->push_host_call("settle");
		duk_push_number(ctx, static_cast<double>(request.id));
		duk_push_boolean(ctx, ok);
		if (!ok) {
			duk_push_lstring(ctx, error.data(), error.size());
		} else {
			duk_push_object(ctx);
			duk_push_int(ctx, status);
			duk_put_prop_string(ctx, -2, "status");
			put_string(ctx, "statusText", reason);
			push_flat(ctx, headers);
			duk_put_prop_string(ctx, -2, "headers");
			void *p = duk_push_fixed_buffer(ctx, body.size());
			if (!body.empty())
				std::memcpy(p, body.data(), body.size());
			duk_push_buffer_object(ctx, -1, 0, body.size(), DUK_BUFOBJ_UINT8ARRAY);
			duk_remove(ctx, -2);
			duk_put_prop_string(ctx, -2, "body");
		}
		try {
			instance_->heap().call(3, std::chrono::milliseconds(5));
			duk_pop(ctx);
		} catch (const HeapFatal &) {
			instance_.reset();
		}
	}
	// Every request waiting on this heap looks again.
	for (asio::steady_timer *t : waiters_)
		t->cancel();
}

} // namespace sonic::js
