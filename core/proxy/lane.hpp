// Work that comes in bursts takes turns on a worker. Some steps cost CPU in
// one piece (a TLS handshake step: a key exchange, a signature, ~0.4 ms for
// the server's first flight) or arrive together by the hundred (200 leaves
// minted for new names, a reconnect storm, slowloris heads opened in one
// burst that time out in the same millisecond); run back to back, they
// queue ahead of every open connection's ready I/O. Through a lane, at most
// `per_turn` steps run between two looks at the sockets: each turn of the
// lane is posted behind the event loop's own poll, so the I/O of open
// connections runs between them, and a burst costs an open connection a
// step or two of waiting, not the whole burst. A worker has one lane for
// handshake steps and one for the endings of timed-out heads. A lane nobody
// waits in costs nothing: the first steps of a turn go at once.
#pragma once

#include "proxy/asio.hpp"
#include "proxy/metrics.hpp"

#include <list>

namespace sonic::proxy {

class Lane {
public:
	// WAITS: counts the steps that waited for a turn; PER_TURN: how many
	// steps run between two polls.
	explicit Lane(Counter &waits, unsigned per_turn = 1) : waits_(waits), per_turn_(per_turn ? per_turn : 1) {}
	Lane(const Lane &) = delete;
	Lane &operator=(const Lane &) = delete;

	// Resumes (on the caller's executor) when the caller may take its next
	// step. Waiting ends only by its turn; the caller's own deadline applies
	// to the socket waits around it.
	awaitable<void> turn();

private:
	struct Waiter {
		asio::steady_timer wake;
		std::list<Waiter *>::iterator at;
		bool woken = false;
	};
	// Unlinks a waiter whose coroutine ends without its turn (the worker's
	// io_context destroys suspended frames when it goes).
	struct Unlink {
		Lane &lane;
		Waiter &w;
		~Unlink();
	};
	// Posted: a new turn, behind what the event loop has queued (its poll
	// included). Wakes the next waiters and, while anyone took a step,
	// posts the turn after.
	void next_turn();
	void schedule(const asio::any_io_executor &ex);

	Counter &waits_;
	unsigned per_turn_;
	unsigned granted_ = 0; // steps taken in this turn
	bool scheduled_ = false;
	asio::any_io_executor ex_;
	std::list<Waiter *> waiting_;
};

} // namespace sonic::proxy
