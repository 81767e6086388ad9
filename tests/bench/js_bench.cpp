// The script's own cost per request, without the proxy: replays the host
// calls ScriptFilter makes for one request (start, then the origin's head
// through originResponse or the 'response' event) N times on one heap, as
// a worker does, and prints the thread's CPU microseconds per
// request. The request is the one tests/bench/scripted.py sends.
//   sonic_js_bench SCRIPT [REQUESTS] [STATE_DIR]
#include "js/program.hpp"
#include "js/runtime.hpp"

#include <duktape.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

using namespace sonic;

namespace {

double thread_cpu_us()
{
	timespec ts{};
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

void push_flat(duk_context *ctx, std::initializer_list<const char *> items)
{
	duk_push_array(ctx);
	duk_uarridx_t i = 0;
	for (const char *s : items) {
		duk_push_string(ctx, s);
		duk_put_prop_index(ctx, -2, i++);
	}
}

// Calls the host call on the stack; exits on failure; leaves its value.
void call(js::Instance &in, int nargs)
{
	auto r = in.heap().call(nargs, std::chrono::seconds(1));
	if (r.stop != js::Stop::None) {
		std::fprintf(stderr, "script failed: %s\n", in.heap().error_text().c_str());
		std::exit(1);
	}
}

std::string kind_of(duk_context *ctx)
{
	if (!duk_is_object(ctx, -1))
		return "pending";
	duk_get_prop_string(ctx, -1, "kind");
	std::string k = duk_is_string(ctx, -1) ? duk_get_string(ctx, -1) : "?";
	duk_pop(ctx);
	return k;
}

// One request, as ScriptFilter drives it; returns how it ended.
std::string request(js::Instance &in, double id)
{
	duk_context *ctx = in.ctx();
	in.push_host_call("start");
	duk_push_number(ctx, id);
	duk_push_string(ctx, "GET");
	duk_push_string(ctx, "http://bench/?id=42&q=hello%20world");
	push_flat(ctx, {"host", "bench", "user-agent", "wrk"});
	duk_push_null(ctx);
	in.push_env();
	duk_push_uint(ctx, 50);
	in.push_finished();
	call(in, 8);
	std::string kind = kind_of(ctx);
	duk_pop(ctx);
	const bool origin = kind == "origin";
	if (origin || (kind == "pass" && in.has_response_handlers())) {
		in.push_host_call(origin ? "originResponse" : "response");
		duk_push_number(ctx, id);
		duk_push_int(ctx, 200);
		duk_push_string(ctx, "OK");
		push_flat(ctx, {"server", "nginx", "date", "Mon, 07 Dec 2026 16:00:00 GMT", "content-type", "text/html",
				"content-length", "612", "connection", "keep-alive"});
		call(in, 4);
		if (origin)
			kind = kind_of(ctx);
		duk_pop(ctx);
	}
	in.finished(static_cast<uint64_t>(id));
	return kind;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 2) {
		std::fprintf(stderr, "usage: sonic_js_bench SCRIPT [REQUESTS] [STATE_DIR]\n");
		return 2;
	}
	const int n = argc > 2 ? std::atoi(argv[2]) : 20000;
	js::LoadOptions o;
	o.cache_dir = argc > 3 ? std::string(argv[3]) + "/scripts" : std::string();
	auto program = js::load(argv[1], o);
	js::Instance in(program, nullptr);
	std::string kind;
	for (int i = 0; i < 200; i++)
		kind = request(in, 1 + i);
	const double t0 = thread_cpu_us();
	for (int i = 0; i < n; i++)
		request(in, 1000 + i);
	const double us = (thread_cpu_us() - t0) / n;
	std::printf("%s: %d requests, %.2f us CPU per request (ends: %s, heap %zu bytes)\n", program->name.c_str(), n, us,
		    kind.c_str(), in.heap().used());
	return 0;
}
