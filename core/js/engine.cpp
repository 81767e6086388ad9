#include "js/engine.hpp"

#include <duktape.h>

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

// Calls shorter than this (wall time) are charged their wall time.
constexpr std::chrono::microseconds kExactAbove{200};

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

bool Heap::past_deadline()
{
	if (!armed_)
		return false;
	if (fired_)
		return true;
	if (thread_cpu() < deadline_)
		return false;
	fired_ = true;
	return true;
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
	const std::chrono::nanoseconds start = thread_cpu();
	deadline_ = start + budget;
	armed_ = true;
	fired_ = false;
	refused_ = false;
	const Clock::time_point wall = Clock::now();
	const int rc = duk_pcall(ctx_, nargs);
	armed_ = false;
	// CPU time used is at most the wall time passed (one thread): a short
	// call is charged its wall time from the cheap clock (vDSO); only a
	// long one, which the scheduler may have interrupted, asks the kernel
	// for the thread's CPU time.
	const std::chrono::nanoseconds passed = Clock::now() - wall;
	Ran r{classify(rc), passed < kExactAbove ? passed : thread_cpu() - start};
	return r;
}

Heap::Ran Heap::run_program(const std::string &source, const std::string &name, std::chrono::nanoseconds budget)
{
	const std::chrono::nanoseconds start = thread_cpu();
	deadline_ = start + budget;
	armed_ = true;
	fired_ = false;
	refused_ = false;
	duk_push_lstring(ctx_, source.data(), source.size());
	duk_push_lstring(ctx_, name.data(), name.size());
	int rc = duk_pcompile(ctx_, 0);
	if (rc == DUK_EXEC_SUCCESS)
		rc = duk_pcall(ctx_, 0);
	armed_ = false;
	return Ran{classify(rc), thread_cpu() - start};
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
