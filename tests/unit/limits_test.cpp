// Per-address limits shared by the workers: connections per IP and the
// request rate per IP (token bucket), in bounded tables.
#include "proxy/limits.hpp"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using sonic::proxy::ClientLimits;
using Clock = std::chrono::steady_clock;

namespace {

sonic::net::Addr16 ip(uint8_t last, uint8_t third = 0)
{
	sonic::net::Addr16 a{};
	a[10] = a[11] = 0xff;
	a[12] = 10;
	a[14] = third;
	a[15] = last;
	return a;
}

} // namespace

TEST_CASE("connections per address: admitted up to the limit, counted until they go", "[limits]")
{
	ClientLimits limits;
	std::vector<ClientLimits::Ticket> open;
	for (int i = 0; i < 3; ++i) {
		auto a = limits.admit(ip(1), 3);
		REQUIRE(a.admission == ClientLimits::Admission::Admitted);
		open.push_back(std::move(a.ticket));
	}
	CHECK(limits.admit(ip(1), 3).admission == ClientLimits::Admission::Refused);
	CHECK(limits.admit(ip(2), 3).admission == ClientLimits::Admission::Admitted); // another address
	CHECK(limits.open_from(ip(1)) == 3);
	open.pop_back(); // one goes
	CHECK(limits.open_from(ip(1)) == 2);
	auto again = limits.admit(ip(1), 3);
	CHECK(again.admission == ClientLimits::Admission::Admitted);
	open.clear();
	again.ticket.release();
	CHECK(limits.open_from(ip(1)) == 0);
}

TEST_CASE("a full window lets an address through untracked, never refused", "[limits]")
{
	ClientLimits limits(3, 3); // 8 slots: one window
	std::vector<ClientLimits::Ticket> open;
	int untracked = 0;
	for (int i = 0; i < 20; ++i) {
		auto a = limits.admit(ip(static_cast<uint8_t>(i)), 1);
		CHECK(a.admission != ClientLimits::Admission::Refused);
		untracked += a.admission == ClientLimits::Admission::Untracked;
		open.push_back(std::move(a.ticket));
	}
	CHECK(untracked == 12);
	open.clear(); // every slot free again: taken over by the next addresses
	CHECK(limits.admit(ip(100), 1).admission == ClientLimits::Admission::Admitted);
}

TEST_CASE("the counts hold under workers admitting at once", "[limits]")
{
	ClientLimits limits;
	std::atomic<int> admitted{0};
	std::vector<std::thread> workers;
	std::vector<std::vector<ClientLimits::Ticket>> held(4);
	for (int w = 0; w < 4; ++w)
		workers.emplace_back([&, w] {
			for (int i = 0; i < 1000; ++i) {
				auto a = limits.admit(ip(7), 50);
				if (a.admission == ClientLimits::Admission::Admitted) {
					++admitted;
					held[w].push_back(std::move(a.ticket));
				}
			}
		});
	for (auto &t : workers)
		t.join();
	CHECK(admitted == 50);
	CHECK(limits.open_from(ip(7)) == 50);
}

TEST_CASE("request rate per address: a burst, then the refill rate", "[limits]")
{
	ClientLimits limits;
	const auto t0 = Clock::now();
	for (int i = 0; i < 5; ++i)
		CHECK(limits.take(ip(1), 2, 5, t0).allowed);
	auto over = limits.take(ip(1), 2, 5, t0);
	CHECK_FALSE(over.allowed);
	CHECK(over.retry_after == std::chrono::seconds(1)); // half a second, rounded up
	CHECK(limits.take(ip(2), 2, 5, t0).allowed);          // another address has its own
	CHECK(limits.take(ip(1), 2, 5, t0 + std::chrono::milliseconds(500)).allowed);
	CHECK_FALSE(limits.take(ip(1), 2, 5, t0 + std::chrono::milliseconds(600)).allowed);
	// At 0.1 per second the next token is 10 s away.
	for (int i = 0; i < 1; ++i)
		CHECK(limits.take(ip(3), 0.1, 1, t0).allowed);
	CHECK(limits.take(ip(3), 0.1, 1, t0).retry_after == std::chrono::seconds(10));
	// A bucket left long enough is full again, and no fuller than its size.
	const auto later = t0 + std::chrono::seconds(60);
	for (int i = 0; i < 5; ++i)
		CHECK(limits.take(ip(1), 2, 5, later).allowed);
	CHECK_FALSE(limits.take(ip(1), 2, 5, later).allowed);
}

TEST_CASE("a refilled bucket gives its slot to a new address; spent ones keep theirs", "[limits]")
{
	ClientLimits limits(3, 3); // 8 slots
	const auto t0 = Clock::now();
	for (uint8_t i = 0; i < 8; ++i)
		CHECK(limits.take(ip(i), 1, 1, t0).allowed); // 8 spent buckets fill the table
	auto r = limits.take(ip(50), 1, 1, t0);
	CHECK(r.allowed);
	CHECK(r.untracked);
	CHECK_FALSE(limits.take(ip(0), 1, 1, t0).allowed); // still tracked and spent
	const auto later = t0 + std::chrono::seconds(2);    // all refilled: slots free to take over
	r = limits.take(ip(50), 1, 1, later);
	CHECK(r.allowed);
	CHECK_FALSE(r.untracked);
	CHECK_FALSE(limits.take(ip(50), 1, 1, later).allowed);
}
