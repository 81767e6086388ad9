#include "js/engine.hpp"

#include <duktape.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>

// Duktape's execution-timeout hook (cmake/Duktape.cmake): UDATA is the Heap.
extern "C" int sonic_js_timed_out(void *udata)
{
	return udata && static_cast<sonic::js::Heap *>(udata)->past_deadline() ? 1 : 0;
}

namespace sonic::js {

namespace {

// CPU time of the calling thread: what a script's limit counts, so that a
// loaded machine does not cut scripts short for time they did not use.
std::chrono::nanoseconds thread_cpu()
{
	timespec ts{};
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// The thread's CPU clock is a system call (about 3 us on this project's
// VMs, more than a short script costs), so a call does not read it up
// front: its start is charged its wall time, at most this much, about what
// Duktape runs between two interrupts (256k bytecodes); from the first
// interrupt past that on, the thread's CPU clock counts. A call preempted
// by a loaded machine is thus never charged more than this for time it did
// not run, and a runaway one is cut at most one interrupt later than an
// exact clock would cut it.
constexpr std::chrono::milliseconds kWallCharged{2};

// Every block carries its size in front, so the heap's bytes can be counted.
struct alignas(std::max_align_t) Prefix {
	size_t size;
};

} // namespace

const char *stop_name(Stop s)
{
	switch (s) {
	case Stop::None:
		return "none";
	case Stop::Throw:
		return "throw";
	case Stop::Timeout:
		return "timeout";
	case Stop::Heap:
		return "heap";
	}
	return "?";
}

Heap::Heap(size_t limit) : limit_(limit)
{
	ctx_ = duk_create_heap(&Heap::alloc, &Heap::realloc, &Heap::free, this, &Heap::fatal);
	if (!ctx_)
		throw std::bad_alloc();
}

Heap::~Heap()
{
	if (ctx_)
		duk_destroy_heap(ctx_);
}

void *Heap::alloc(void *udata, size_t size)
{
	auto *h = static_cast<Heap *>(udata);
	if (h->limit_ && h->used_ + size > h->limit_) {
		h->refused_ = true;
		return nullptr;
	}
	auto *p = static_cast<Prefix *>(std::malloc(sizeof(Prefix) + size));
	if (!p)
		return nullptr;
	p->size = size;
	h->used_ += size;
	if (h->used_ > h->peak_)
		h->peak_ = h->used_;
	return p + 1;
}

void *Heap::realloc(void *udata, void *ptr, size_t size)
{
	if (!ptr)
		return alloc(udata, size);
	auto *h = static_cast<Heap *>(udata);
	Prefix *p = static_cast<Prefix *>(ptr) - 1;
	const size_t old = p->size;
	if (size == 0) {
		free(udata, ptr);
		return nullptr;
	}
	if (size > old && h->limit_ && h->used_ - old + size > h->limit_) {
		h->refused_ = true;
		return nullptr;
	}
	auto *q = static_cast<Prefix *>(std::realloc(p, sizeof(Prefix) + size));
	if (!q)
		return nullptr;
	q->size = size;
	h->used_ = h->used_ - old + size;
	if (h->used_ > h->peak_)
		h->peak_ = h->used_;
	return q + 1;
}

void Heap::free(void *udata, void *ptr)
{
	if (!ptr)
		return;
	auto *h = static_cast<Heap *>(udata);
	Prefix *p = static_cast<Prefix *>(ptr) - 1;
	h->used_ -= p->size;
	std::free(p);
}

void Heap::fatal(void *, const char *msg)
{
	throw HeapFatal(std::string("JavaScript heap failed: ") + (msg ? msg : "fatal error"));
}

// Duktape interrupts every entry from C before its first bytecode (and
// then every 256k bytecodes): the clock is anchored only at an interrupt
// that finds the call older than kWallCharged.
std::chrono::nanoseconds Heap::used_now()
{
	if (anchored_)
		return before_anchor_ + (thread_cpu() - anchor_cpu_);
	const std::chrono::nanoseconds wall = Clock::now() - wall_start_;
	if (wall < kWallCharged)
		return wall;
	anchored_ = true;
	anchor_cpu_ = thread_cpu();
	before_anchor_ = kWallCharged;
	return before_anchor_;
}

bool Heap::past_deadline()
{
	if (!armed_)
		return false;
	if (fired_)
		return true;
	if (used_now() < budget_)
		return false;
	fired_ = true;
	return true;
}

void Heap::arm(std::chrono::nanoseconds budget)
{
	budget_ = budget;
	wall_start_ = Clock::now();
	anchored_ = false;
	armed_ = true;
	fired_ = false;
	refused_ = false;
}

std::chrono::nanoseconds Heap::disarm()
{
	armed_ = false;
	if (anchored_)
		return before_anchor_ + (thread_cpu() - anchor_cpu_);
	return std::min<std::chrono::nanoseconds>(Clock::now() - wall_start_, kWallCharged);
}

Stop Heap::classify(int rc)
{
	if (rc == DUK_EXEC_SUCCESS)
		return Stop::None;
	if (fired_)
		return Stop::Timeout;
	if (refused_)
		return Stop::Heap;
	return Stop::Throw;
}

Heap::Ran Heap::call(int nargs, std::chrono::nanoseconds budget)
{
	arm(budget);
	const int rc = duk_pcall(ctx_, nargs);
	const std::chrono::nanoseconds took = disarm();
	return Ran{classify(rc), took};
}

Heap::Ran Heap::run_program(const std::string &source, const std::string &name, std::chrono::nanoseconds budget)
{
	arm(budget);
	duk_push_lstring(ctx_, source.data(), source.size());
	duk_push_lstring(ctx_, name.data(), name.size());
	int rc = duk_pcompile(ctx_, 0);
	if (rc == DUK_EXEC_SUCCESS)
		rc = duk_pcall(ctx_, 0);
	const std::chrono::nanoseconds took = disarm();
	return Ran{classify(rc), took};
}

std::string Heap::error_text(int index) const
{
	duk_context *c = ctx_;
	index = duk_normalize_index(c, index);
	if (duk_is_error(c, index)) {
		duk_get_prop_string(c, index, "stack");
		std::string s = duk_is_string(c, -1) ? duk_get_string(c, -1) : "";
		duk_pop(c);
		if (!s.empty())
			return s;
	}
	return duk_safe_to_string(c, index);
}

} // namespace sonic::js
