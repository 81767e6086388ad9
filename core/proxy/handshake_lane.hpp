// Handshakes take turns on a worker. A TLS handshake step costs CPU in one
// piece (a key exchange, a signature: ~0.4 ms for the server's first
// flight), and a burst of them (200 leaves minted for new names landing
// together, a reconnect storm) would otherwise run back to back, ~80 ms
// queued ahead of every open connection's ready I/O. Through the lane, at
// most `per_turn` handshake steps run between two looks at the sockets:
// each turn of the lane is posted behind the event loop's own poll, so the
// I/O of open connections runs between handshakes, and a burst costs an
// open connection a handshake step or two of waiting, not the whole burst.
// A lane nobody waits in costs nothing: the first steps of a turn go at once.
#pragma once

#include "proxy/asio.hpp"
#include "proxy/metrics.hpp"

#include <list>

namespace sonic::proxy {

class HandshakeLane {
public:
	// WAITS: counts the steps that waited for a turn.
	explicit HandshakeLane(Counter &waits, unsigned per_turn = 1) : waits_(waits), per_turn_(per_turn ? per_turn : 1) {}
	HandshakeLane(const HandshakeLane &) = delete;
	HandshakeLane &operator=(const HandshakeLane &) = delete;

	// Resumes (on the caller's executor) when the caller may take its next
	// handshake step. Waiting ends only by its turn; the handshake's own
	// deadline applies to the socket waits around it.
	awaitable<void> turn();
	// Handshakes waiting for their turn now.
	size_t waiting() const { return waiting_.size(); }

private:
	struct Waiter {
		asio::steady_timer wake;
		std::list<Waiter *>::iterator at;
		bool woken = false;
	};
	// Unlinks a waiter whose coroutine ends without its turn (the worker's
	// io_context destroys suspended frames when it goes).
	struct Unlink {
		HandshakeLane &lane;
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
