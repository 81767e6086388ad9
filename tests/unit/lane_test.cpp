// The handshake lane: the steps of a burst of handshakes take turns with
// the ready I/O of other connections on the same event loop.
#include "proxy/lane.hpp"

#include <catch2/catch.hpp>
#include <string>

using namespace sonic::proxy;

namespace {

using unix_socket = asio::local::stream_protocol::socket;

// One handshake step of a burst: recorded as 'H' when its turn comes.
awaitable<void> step(Lane &lane, std::string &order)
{
	co_await lane.turn();
	order += 'H';
}

// An open connection whose bytes are all there: read one at a time, each
// recorded as 'I'.
awaitable<void> reader(unix_socket &sock, size_t n, std::string &order)
{
	char c;
	for (size_t i = 0; i < n; ++i) {
		asio::error_code ec;
		co_await sock.async_read_some(asio::buffer(&c, 1), with(ec));
		if (ec)
			co_return;
		order += 'I';
	}
}

size_t longest_run(const std::string &s, char c)
{
	size_t best = 0, run = 0;
	for (char x : s) {
		run = x == c ? run + 1 : 0;
		best = std::max(best, run);
	}
	return best;
}

// A burst of BURST steps through a lane of PER_TURN, next to a reader with
// READS bytes ready: the order in which they ran.
std::string burst(unsigned per_turn, size_t burst, size_t reads, Counter &waits)
{
	asio::io_context ctx(1);
	Lane lane(waits, per_turn);
	unix_socket a(ctx), b(ctx);
	asio::local::connect_pair(a, b);
	const std::string bytes(reads, 'x');
	asio::write(b, asio::buffer(bytes));
	std::string order;
	for (size_t i = 0; i < burst; ++i)
		asio::co_spawn(ctx, step(lane, order), asio::detached);
	asio::co_spawn(ctx, reader(a, reads, order), asio::detached);
	ctx.run();
	return order;
}

} // namespace

TEST_CASE("handshake lane: one step per turn of the event loop, ready reads run between", "[tls]")
{
	Counter waits;
	const std::string order = burst(1, 20, 20, waits);
	INFO(order);
	REQUIRE(order.size() == 40);
	// Without the lane the burst runs whole first: 20 H, then the reads.
	// Through it, no read waits behind more than one or two steps.
	REQUIRE(longest_run(order, 'H') <= 2);
	REQUIRE(order.find('I') < 3);
	// The first step went at once; the other 19 waited their turn.
	REQUIRE(waits.get() == 19);
}

TEST_CASE("handshake lane: PER_TURN steps a turn; an idle lane lets a step go at once", "[tls]")
{
	Counter waits;
	const std::string order = burst(4, 20, 20, waits);
	INFO(order);
	REQUIRE(order.size() == 40);
	REQUIRE(longest_run(order, 'H') <= 8);
	REQUIRE(longest_run(order, 'H') >= 4);
	Counter none;
	REQUIRE(burst(1, 1, 3, none).find('H') == 0);
	REQUIRE(none.get() == 0);
}
