// Wakeup: a condition-variable-like wake-up between coroutines (or handlers) on one executor.
//
// wait() suspends until the next notify(); notify() wakes every waiter parked at that moment.
// Callers re-check their condition after waking, so a spurious or early wake-up is harmless.
// Why not a steady_timer that never expires (what this replaces): every wait inserted a timer
// into the reactor's timer queue and every notify cancelled it, both under the reactor's mutex,
// and arming the earliest timer of a queue reprograms the timerfd (a syscall) — per request on
// the waypoint's data path. A Wakeup parks the completion handler in a slot and posts it.
// Threading: all members on the one thread that runs the executor; no locks.
// Invariants: a woken handler always runs from the executor (posted), never inside notify(), so
// a notifier is never re-entered by the code it wakes. Destroying a Wakeup with waiters posts
// them (as a destroyed timer would complete its waits), it never drops a suspended coroutine.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <utility>
#include <vector>

namespace common {

class Wakeup {
 public:
  explicit Wakeup(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  ~Wakeup() { notify(); }

  template <typename Token = const boost::asio::use_awaitable_t<>&>
  auto async_wait(Token&& token = boost::asio::use_awaitable) {
    return boost::asio::async_initiate<Token, void()>(
        [this](auto handler) { waiters_.emplace_back(std::move(handler)); }, token);
  }
  boost::asio::awaitable<void> wait() { return async_wait(boost::asio::use_awaitable); }

  void notify() {
    if (waiters_.empty()) return;
    // Swap out first: a woken waiter that waits again lands in the fresh list. The vector keeps
    // its capacity, so steady state allocates nothing here.
    waking_.swap(waiters_);
    for (auto& h : waking_) boost::asio::post(ex_, std::move(h));
    waking_.clear();
  }

  bool has_waiters() const { return !waiters_.empty(); }

 private:
  boost::asio::any_io_executor ex_;
  std::vector<boost::asio::any_completion_handler<void()>> waiters_;
  std::vector<boost::asio::any_completion_handler<void()>> waking_;
};

}  // namespace common
