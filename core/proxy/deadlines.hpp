// Every session's deadline in one table that the worker's tick scans.
// Walking the sessions themselves to compare their deadlines costs a cache
// miss per session: 3000 connections held open by a slow-body attack made
// each 250 ms sweep a 0.3-0.5 ms stall of the event loop, which every normal
// request behind it waited out. Here the deadlines lie side by side, 16
// bytes each (a scan of 3000 reads 48 KiB in order), in chunks that never
// move, so a session (and a tunnel, through its context) can hold a
// reference to its own.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

namespace sonic::proxy {

class Session;

class DeadlineTable {
public:
	using Clock = std::chrono::steady_clock;
	static constexpr Clock::time_point kNever = Clock::time_point::max();

	// A slot for OWNER, set to never; it stays at its address until given back.
	Clock::time_point &take(Session *owner)
	{
		if (free_.empty())
			grow();
		Slot *s = free_.back();
		free_.pop_back();
		s->when = kNever;
		s->owner = owner;
		return s->when;
	}
	void give(Clock::time_point &when)
	{
		// `when` is a slot's first member: the slot starts where it does.
		Slot *s = reinterpret_cast<Slot *>(&when);
		s->when = kNever;
		s->owner = nullptr;
		free_.push_back(s);
	}
	// Calls F(session) for each session whose deadline is NOW or earlier.
	// F may change any deadline, its own included; slots are not taken or
	// given back meanwhile (sessions end on the event loop, not inside F).
	template <class F> void each_due(Clock::time_point now, F &&f)
	{
		for (const std::unique_ptr<Slot[]> &chunk : chunks_)
			for (size_t i = 0; i < kChunk; ++i)
				if (chunk[i].when <= now)
					f(chunk[i].owner);
	}

private:
	struct Slot {
		Clock::time_point when = kNever; // first: give() finds the slot by it
		Session *owner = nullptr;
	};
	static constexpr size_t kChunk = 256;

	void grow()
	{
		chunks_.push_back(std::make_unique<Slot[]>(kChunk));
		Slot *chunk = chunks_.back().get();
		for (size_t i = kChunk; i-- > 0;)
			free_.push_back(&chunk[i]);
	}

	std::vector<std::unique_ptr<Slot[]>> chunks_;
	std::vector<Slot *> free_;
};

} // namespace sonic::proxy
