// A Duktape heap with the limits a worker script runs under: a byte budget
// enforced by its allocator, and a CPU deadline checked by Duktape's
// bytecode interrupt (DUK_USE_EXEC_TIMEOUT_CHECK, see cmake/Duktape.cmake).
// One heap per worker thread and script; never shared between threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

struct duk_hthread;
typedef struct duk_hthread duk_context;

namespace sonic::js {

using Clock = std::chrono::steady_clock;

// Why script code stopped early.
enum class Stop : uint8_t { None, Throw, Timeout, Heap };
const char *stop_name(Stop s); // "throw", "timeout", "heap"

// Thrown (through Duktape's C frames) by the fatal handler: the heap is
// unusable and must be destroyed.
struct HeapFatal : std::runtime_error {
	using std::runtime_error::runtime_error;
};

class Heap {
public:
	// LIMIT: bytes the heap may hold (0: no limit).
	explicit Heap(size_t limit);
	~Heap();
	Heap(const Heap &) = delete;
	Heap &operator=(const Heap &) = delete;

	duk_context *ctx() const { return ctx_; }
	// For host functions: what the heap serves (a js::Host).
	void *user = nullptr;
	size_t used() const { return used_; }
	size_t peak() const { return peak_; }

	// Calls the function below NARGS arguments on the stack (duk_pcall's
	// convention), bounded by BUDGET of the worker thread's CPU time. Leaves
	// the result or the error on the stack; says how it ended and how
	// long it ran.
	struct Ran {
		Stop stop = Stop::None;
		std::chrono::nanoseconds took{0};
	};
	Ran call(int nargs, std::chrono::nanoseconds budget);
	// Compiles SOURCE named NAME and runs it as a global program (as
	// call()). A SyntaxError leaves Stop::Throw and the error on the stack.
	Ran run_program(const std::string &source, const std::string &name, std::chrono::nanoseconds budget);

	// The error on the stack top as text: its stack trace when it has one.
	std::string error_text(int index = -1) const;

	// For sonic_js_timed_out(): whether the running code is past its deadline.
	bool past_deadline();
	// Whether an allocation was refused since the last call().
	bool refused() const { return refused_; }

private:
	static void *alloc(void *udata, size_t size);
	static void *realloc(void *udata, void *ptr, size_t size);
	static void free(void *udata, void *ptr);
	static void fatal(void *udata, const char *msg);
	Stop classify(int rc);
	// A call's CPU accounting (engine.cpp says how it is charged).
	void arm(std::chrono::nanoseconds budget);
	std::chrono::nanoseconds disarm();
	std::chrono::nanoseconds used_now();

	duk_context *ctx_ = nullptr;
	size_t limit_;
	size_t used_ = 0;
	size_t peak_ = 0;
	bool refused_ = false;
	bool armed_ = false;
	bool fired_ = false;
	bool anchored_ = false; // the thread's CPU clock was read in this call
	std::chrono::nanoseconds budget_{};
	Clock::time_point wall_start_{};
	std::chrono::nanoseconds anchor_cpu_{};    // the thread's CPU clock at the anchor
	std::chrono::nanoseconds before_anchor_{}; // charged for the call before it
};

} // namespace sonic::js
