// The worker's deadline table: slots keep their addresses, the scan finds
// exactly the due ones, and a slot given back is reused.
#include "proxy/deadlines.hpp"

#include <catch2/catch.hpp>
#include <set>
#include <vector>

using sonic::proxy::DeadlineTable;
using sonic::proxy::Session;
using Clock = DeadlineTable::Clock;

namespace {

// Stand-ins for sessions: the table only stores and hands back the pointers.
Session *owner(uintptr_t n) { return reinterpret_cast<Session *>(n * 16); }

std::set<Session *> due(DeadlineTable &t, Clock::time_point now)
{
	std::set<Session *> found;
	t.each_due(now, [&](Session *s) { found.insert(s); });
	return found;
}

} // namespace

TEST_CASE("due deadlines are found, others and free slots are not", "[deadlines]")
{
	DeadlineTable t;
	const Clock::time_point now = Clock::now();
	Clock::time_point &a = t.take(owner(1));
	Clock::time_point &b = t.take(owner(2));
	Clock::time_point &c = t.take(owner(3));
	CHECK(a == DeadlineTable::kNever);
	CHECK(due(t, now).empty());
	a = now - std::chrono::seconds(1);
	b = now;
	c = now + std::chrono::seconds(1);
	CHECK(due(t, now) == std::set<Session *>{owner(1), owner(2)});
	t.give(a);
	CHECK(due(t, now) == std::set<Session *>{owner(2)});
	// The slot given back is taken again, reset to never.
	Clock::time_point &d = t.take(owner(4));
	CHECK(&d == &a);
	CHECK(d == DeadlineTable::kNever);
	CHECK(due(t, now + std::chrono::seconds(2)) == std::set<Session *>{owner(2), owner(3)});
}

TEST_CASE("slots keep their addresses while the table grows", "[deadlines]")
{
	DeadlineTable t;
	const Clock::time_point now = Clock::now();
	std::vector<Clock::time_point *> slots;
	for (uintptr_t i = 1; i <= 1000; ++i)
		slots.push_back(&t.take(owner(i)));
	// Written through the addresses taken before the table grew past them.
	for (size_t i = 0; i < slots.size(); i += 2)
		*slots[i] = now;
	std::set<Session *> found = due(t, now);
	REQUIRE(found.size() == 500);
	for (uintptr_t i = 1; i <= 1000; i += 2)
		CHECK(found.count(owner(i)) == 1);
	// An expiry that pushes its own deadline out (what Session::expire
	// does) is seen once.
	size_t calls = 0;
	t.each_due(now, [&](Session *s) {
		++calls;
		*slots[(reinterpret_cast<uintptr_t>(s) / 16) - 1] = DeadlineTable::kNever;
	});
	CHECK(calls == 500);
	CHECK(due(t, now).empty());
}
