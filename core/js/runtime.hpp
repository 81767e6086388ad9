// A script's runtime in one heap: the prelude (core/js/prelude.js), the
// host functions it calls (`native`: log, random, digest, hmac, aesgcm,
// equal, fetch, block) and the user's program, compiled once per heap and
// run for many requests.
#pragma once

#include "js/engine.hpp"
#include "js/program.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::js {

// A fetch() to somewhere other than the request's own origin.
struct Subrequest {
	uint64_t request = 0; // the host's request id
	uint64_t id = 0;      // the prelude's fetch id, for __sonic.settle
	std::string method;
	std::string url;
	std::vector<std::pair<std::string, std::string>> headers;
	std::string body;
};

// What the runtime's host functions reach in the worker.
class Host {
public:
	virtual ~Host() = default;
	virtual void log(int level, std::string_view text) = 0;
	virtual void fetch(Subrequest request) = 0;
	// sonic.block(addr, {ttl, reason}) (TTL 0: the policy's default): ""
	// when done, else why not.
	virtual std::string block(const std::string &address, unsigned ttl_seconds, const std::string &reason) = 0;
	// Pushes the client's facts of request ID as an object, or undefined
	// when the host is done with that request.
	virtual void push_facts(duk_context *ctx, uint64_t request) = 0;
};

struct CompileError {
	int line = 0;
	std::string message;
};
// Whether CODE compiles in Duktape as it is (nullopt) or why not.
std::optional<CompileError> compile_error(const std::string &code, const std::string &name);
// Runs PROGRAM in a fresh heap: it must run to its end within its limits
// and register a handler (export default {fetch} or addEventListener).
// Throws a usage error "PATH:LINE: why".
void check_program(const Program &program);

class Instance {
public:
	// Builds the heap: prelude, then PROGRAM. Throws a usage error when the
	// program fails (as check_program).
	Instance(std::shared_ptr<const Program> program, Host *host);

	Heap &heap() { return heap_; }
	duk_context *ctx() const { return heap_.ctx(); }
	const Program &program() const { return *program_; }
	bool has_response_handlers() const { return response_handlers_; }
	// Pushes __sonic[NAME] and __sonic as `this` (then push args, then call()).
	void push_host_call(const char *name);
	// Pushes the script's env (its [vars]), made once per heap.
	void push_env();
	// Request ID is done with; its state in the heap goes with the next
	// start (push_finished), not with a call of its own.
	void finished(uint64_t id) { finished_.push_back(id); }
	// Pushes the ids finished() since the last call as an array, or null.
	void push_finished();

private:
	std::shared_ptr<const Program> program_;
	Heap heap_;
	bool response_handlers_ = false;
	void *sonic_ = nullptr; // the __sonic object's heap pointer
	void *env_ = nullptr;   // the env object (kept reachable in the stash)
	std::vector<uint64_t> finished_;
};

} // namespace sonic::js
