#include "proxy/limits.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <random>
#include <sys/mman.h>

namespace sonic::proxy {

namespace {

constexpr uint64_t kCountMask = 0xFFFF;
constexpr uint64_t kOneToken = 1024; // bucket tokens are counted in 1/1024ths

uint64_t *map_table(size_t slots)
{
	void *p = mmap(nullptr, slots * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		throw std::bad_alloc();
	return static_cast<uint64_t *>(p);
}

std::atomic_ref<uint64_t> at(uint64_t *table, size_t slot) { return std::atomic_ref<uint64_t>(table[slot]); }

uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

// A bucket's state: its tokens and the time they were counted.
uint64_t bucket(uint64_t tokens, uint32_t ms) { return tokens << 32 | ms; }
uint64_t tokens_of(uint64_t state) { return state >> 32; }
uint32_t time_of(uint64_t state) { return static_cast<uint32_t>(state); }

// The tokens in STATE at NOW_MS, refilled at PER_MS up to CAP.
uint64_t refilled(uint64_t state, uint32_t now_ms, double per_ms, uint64_t cap)
{
	const uint32_t elapsed = now_ms - time_of(state); // wraps after 49 days, as the clock does
	const double t = static_cast<double>(tokens_of(state)) + static_cast<double>(elapsed) * per_ms;
	return t >= static_cast<double>(cap) ? cap : static_cast<uint64_t>(t);
}

} // namespace

net::Addr16 addr16(const asio::ip::address &address)
{
	asio::ip::address_v6 v6 = address.is_v4() ? asio::ip::make_address_v6(asio::ip::v4_mapped, address.to_v4())
						  : address.to_v6();
	const auto bytes = v6.to_bytes();
	net::Addr16 out;
	std::memcpy(out.data(), bytes.data(), out.size());
	return out;
}

ClientLimits::ClientLimits(unsigned conn_bits, unsigned rate_bits)
	: conn_mask_((size_t{1} << conn_bits) - 1), rate_mask_((size_t{1} << rate_bits) - 1),
	  conns_(map_table(conn_mask_ + 1)), rate_keys_(map_table(rate_mask_ + 1)),
	  rate_state_(map_table(rate_mask_ + 1)), epoch_(std::chrono::steady_clock::now())
{
	// Keyed, so that nobody picks addresses that crowd out another's window.
	std::random_device rd;
	seed_[0] = (uint64_t{rd()} << 32) | rd();
	seed_[1] = (uint64_t{rd()} << 32) | rd();
}

ClientLimits::~ClientLimits()
{
	munmap(conns_, (conn_mask_ + 1) * sizeof(uint64_t));
	munmap(rate_keys_, (rate_mask_ + 1) * sizeof(uint64_t));
	munmap(rate_state_, (rate_mask_ + 1) * sizeof(uint64_t));
}

uint64_t ClientLimits::hash(const net::Addr16 &ip) const
{
	uint64_t a, b;
	std::memcpy(&a, ip.data(), 8);
	std::memcpy(&b, ip.data() + 8, 8);
	return mix(a ^ seed_[0]) ^ mix(b + seed_[1]);
}

// ---- connections per address ----------------------------------------------

ClientLimits::Ticket &ClientLimits::Ticket::operator=(Ticket &&o) noexcept
{
	if (this != &o) {
		release();
		owner_ = o.owner_;
		hash_ = o.hash_;
		o.owner_ = nullptr;
	}
	return *this;
}

void ClientLimits::Ticket::release()
{
	if (owner_)
		owner_->release(hash_);
	owner_ = nullptr;
}

namespace {

// An address's tag in its connection slot: 48 bits of its hash, never 0,
// so that a slot with a tag is told from a free one.
uint64_t conn_tag(uint64_t hash) { return ((hash >> 16) | 1) & 0xFFFFFFFFFFFFULL; }

} // namespace

ClientLimits::Admit ClientLimits::admit(const net::Addr16 &ip, unsigned max)
{
	const uint64_t h = hash(ip);
	const uint64_t tag = conn_tag(h);
	const uint64_t limit = std::min<uint64_t>(max, kCountMask);
	Admit out;
	// The address's own entry first; then a slot holding no connection.
	for (size_t k = 0; k < kProbe; ++k) {
		auto w = at(conns_, (h + k) & conn_mask_);
		uint64_t v = w.load(std::memory_order_relaxed);
		while ((v >> 16) == tag && (v & kCountMask) > 0) {
			if ((v & kCountMask) >= limit) {
				out.admission = Admission::Refused;
				return out;
			}
			if (w.compare_exchange_weak(v, v + 1, std::memory_order_relaxed)) {
				out.admission = Admission::Admitted;
				out.ticket = Ticket(this, h);
				return out;
			}
		}
	}
	for (size_t k = 0; k < kProbe; ++k) {
		auto w = at(conns_, (h + k) & conn_mask_);
		uint64_t v = w.load(std::memory_order_relaxed);
		while ((v & kCountMask) == 0) {
			if (w.compare_exchange_weak(v, tag << 16 | 1, std::memory_order_relaxed)) {
				out.admission = Admission::Admitted;
				out.ticket = Ticket(this, h);
				return out;
			}
		}
	}
	return out; // untracked: the window is full of live entries
}

void ClientLimits::release(uint64_t h)
{
	const uint64_t tag = conn_tag(h);
	for (size_t k = 0; k < kProbe; ++k) {
		auto w = at(conns_, (h + k) & conn_mask_);
		uint64_t v = w.load(std::memory_order_relaxed);
		while ((v >> 16) == tag && (v & kCountMask) > 0)
			if (w.compare_exchange_weak(v, v - 1, std::memory_order_relaxed))
				return;
	}
}

unsigned ClientLimits::open_from(const net::Addr16 &ip) const
{
	const uint64_t h = hash(ip);
	const uint64_t tag = conn_tag(h);
	unsigned n = 0;
	for (size_t k = 0; k < kProbe; ++k) {
		uint64_t v = at(conns_, (h + k) & conn_mask_).load(std::memory_order_relaxed);
		if ((v >> 16) == tag)
			n += static_cast<unsigned>(v & kCountMask);
	}
	return n;
}

// ---- request rate per address ----------------------------------------------

ClientLimits::Rate ClientLimits::take(const net::Addr16 &ip, double rate, double burst,
				      std::chrono::steady_clock::time_point now)
{
	const uint64_t key = hash(ip) | 1; // never 0, which marks a free slot
	const auto now_ms = static_cast<uint32_t>(
		std::chrono::duration_cast<std::chrono::milliseconds>(now - epoch_).count());
	const double per_ms = rate * kOneToken / 1000.0;
	const uint64_t cap = static_cast<uint64_t>(burst * kOneToken);
	Rate out;
	// The address's bucket, or a slot to start one in: a free one, or one
	// whose bucket is full again (forgetting it changes nothing).
	size_t slot = SIZE_MAX;
	for (size_t k = 0; k < kProbe && slot == SIZE_MAX; ++k)
		if (at(rate_keys_, (key + k) & rate_mask_).load(std::memory_order_acquire) == key)
			slot = (key + k) & rate_mask_;
	for (size_t k = 0; k < kProbe && slot == SIZE_MAX; ++k) {
		const size_t s = (key + k) & rate_mask_;
		auto w = at(rate_keys_, s);
		uint64_t other = w.load(std::memory_order_acquire);
		const bool spent = other != 0 && refilled(at(rate_state_, s).load(std::memory_order_relaxed), now_ms,
							  per_ms, cap) < cap;
		if (spent || !w.compare_exchange_strong(other, key, std::memory_order_acq_rel))
			continue;
		// A new bucket, full but for this request's token.
		at(rate_state_, s).store(bucket(cap - std::min(cap, kOneToken), now_ms), std::memory_order_release);
		return out;
	}
	if (slot == SIZE_MAX) {
		out.untracked = true;
		return out;
	}
	auto w = at(rate_state_, slot);
	uint64_t state = w.load(std::memory_order_acquire);
	for (;;) {
		const uint64_t tokens = refilled(state, now_ms, per_ms, cap);
		if (tokens < kOneToken) {
			out.allowed = false;
			const double wait_ms = static_cast<double>(kOneToken - tokens) / per_ms;
			out.retry_after = std::chrono::seconds(std::max<long long>(1, std::llround(std::ceil(wait_ms / 1000))));
			return out;
		}
		if (w.compare_exchange_weak(state, bucket(tokens - kOneToken, now_ms), std::memory_order_acq_rel))
			return out;
	}
}

} // namespace sonic::proxy
