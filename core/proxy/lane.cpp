#include "proxy/lane.hpp"

namespace sonic::proxy {

Lane::Unlink::~Unlink()
{
	if (!w.woken)
		lane.waiting_.erase(w.at);
}

awaitable<void> Lane::turn()
{
	asio::any_io_executor ex = co_await asio::this_coro::executor;
	if (waiting_.empty() && granted_ < per_turn_) {
		++granted_;
		schedule(ex);
		co_return;
	}
	waits_.add();
	Waiter w{asio::steady_timer(ex, asio::steady_timer::time_point::max()), {}, false};
	w.at = waiting_.insert(waiting_.end(), &w);
	Unlink unlink{*this, w};
	schedule(ex);
	asio::error_code ec;
	// Cancelled by next_turn(): ec is operation_aborted, which is the turn.
	co_await w.wake.async_wait(with(ec));
}

void Lane::schedule(const asio::any_io_executor &ex)
{
	if (scheduled_)
		return;
	scheduled_ = true;
	ex_ = ex;
	asio::post(ex_, [this] { next_turn(); });
}

void Lane::next_turn()
{
	scheduled_ = false;
	granted_ = 0;
	while (granted_ < per_turn_ && !waiting_.empty()) {
		Waiter *w = waiting_.front();
		waiting_.pop_front();
		w->woken = true;
		w->wake.cancel(); // its coroutine resumes from the queue, after this
		++granted_;
	}
	// A step was granted in this turn: the next turn comes after the
	// event loop's next poll. Nobody took one: the lane is idle.
	if (granted_ > 0)
		schedule(ex_);
}

} // namespace sonic::proxy
