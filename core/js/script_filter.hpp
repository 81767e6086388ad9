// A worker script as a filter of the proxy's chain (core/proxy/filter.hpp).
// One ScriptFilter per worker and script, made with the worker's
// configuration generation, so a reload swaps scripts with the config. It
// owns the script's heap on that worker, reused across requests; requests
// interleave in it as they wait on fetch(), and each is bounded by the
// script's CPU, heap and subrequest limits.
#pragma once

#include "js/runtime.hpp"
#include "proxy/filter.hpp"

#include <memory>
#include <unordered_map>

namespace sonic::proxy {
class Worker;
}

namespace sonic::js {

class ScriptFilter final : public proxy::Filter, public Host, public std::enable_shared_from_this<ScriptFilter> {
public:
	ScriptFilter(std::shared_ptr<const Program> program, proxy::Worker &worker);
	~ScriptFilter() override;

	proxy::awaitable<proxy::FilterResult> on_request(proxy::Exchange &ex) override;
	bool wants_response(const proxy::Exchange &ex) const override;
	proxy::awaitable<proxy::FilterResult> on_response(proxy::Exchange &ex) override;

	// Host
	void log(int level, std::string_view text) override;
	void fetch(Subrequest request) override;
	std::string block(const std::string &address, unsigned ttl_seconds, const std::string &reason) override;
	void push_facts(duk_context *ctx, uint64_t request) override;

	struct Call;
	struct Outcome;

private:
	bool ensure_instance();
	Outcome start(Call &call, const proxy::Exchange &ex);
	Heap::Ran run(Call &call, int nargs);
	Outcome result(Call &call);
	Outcome outcome(Call &call, int nargs);
	proxy::awaitable<proxy::FilterResult> conclude(proxy::Exchange &ex, Call &call, bool in_response, Outcome *first);
	proxy::FilterResult verdict(proxy::Exchange &ex, Call &call, Outcome o, bool in_response);
	proxy::FilterResult forward_edited(proxy::Exchange &ex, Call &call, Outcome &o);
	proxy::FilterResult respond_with(proxy::Exchange &ex, Call &call, Outcome &o, bool in_response);
	proxy::awaitable<void> wait_for_progress();
	static proxy::awaitable<void> run_subrequest(std::shared_ptr<ScriptFilter> self, Subrequest request);
	void settle(const Subrequest &request, bool ok, const std::string &error, int status, std::string reason,
		    std::vector<std::pair<std::string, std::string>> headers, std::string body);
	void log(std::string_view text) { log(2, text); }
	proxy::FilterResult failed(Call &call, Stop stop, std::string detail);

	std::shared_ptr<const Program> program_;
	proxy::Worker &worker_;
	std::shared_ptr<Instance> instance_;
	std::string instance_error_;
	uint64_t next_id_ = 1;
	std::unordered_map<uint64_t, Call *> calls_; // requests in flight, for push_facts()
	std::vector<asio::steady_timer *> waiters_; // requests waiting on subrequests
	Call *running_ = nullptr; // the request whose code runs now
	unsigned in_flight_ = 0;  // subrequests
	Stop last_stop_ = Stop::None;
	bool exhausted_ = false; // the heap ran out: rebuild it
	std::string last_error_;
};

} // namespace sonic::js
