// common/wakeup.h: waiters wake on notify (all of them, never inline), a notify with nobody
// waiting is not remembered, and a destroyed Wakeup still completes its waiters.
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>

#include "common/wakeup.h"

namespace asio = boost::asio;

namespace {

asio::awaitable<void> wait_and_count(common::Wakeup& w, int& woken) {
  co_await w.wait();
  ++woken;
}

}  // namespace

TEST_CASE("notify wakes every parked waiter, from the executor", "[wakeup]") {
  asio::io_context io;
  common::Wakeup w(io.get_executor());
  int woken = 0;
  for (int i = 0; i < 3; ++i) asio::co_spawn(io, wait_and_count(w, woken), asio::detached);
  io.poll();
  REQUIRE(w.has_waiters());
  CHECK(woken == 0);
  w.notify();
  CHECK(woken == 0);  // posted, not run inside notify()
  CHECK_FALSE(w.has_waiters());
  io.poll();
  CHECK(woken == 3);
}

TEST_CASE("a notify with nobody waiting is not remembered", "[wakeup]") {
  asio::io_context io;
  common::Wakeup w(io.get_executor());
  int woken = 0;
  w.notify();
  asio::co_spawn(io, wait_and_count(w, woken), asio::detached);
  io.poll();
  CHECK(woken == 0);
  CHECK(w.has_waiters());
  w.notify();
  io.poll();
  CHECK(woken == 1);
}

TEST_CASE("a waiter that waits again after waking needs the next notify", "[wakeup]") {
  asio::io_context io;
  common::Wakeup w(io.get_executor());
  int rounds = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          co_await w.wait();
          if (++rounds == 2) co_return;
        }
      },
      asio::detached);
  io.poll();
  w.notify();
  io.poll();
  CHECK(rounds == 1);
  CHECK(w.has_waiters());
  w.notify();
  io.poll();
  CHECK(rounds == 2);
  CHECK_FALSE(w.has_waiters());
}

TEST_CASE("destroying a Wakeup completes its waiters instead of dropping them", "[wakeup]") {
  asio::io_context io;
  auto w = std::make_unique<common::Wakeup>(io.get_executor());
  int woken = 0;
  asio::co_spawn(io, wait_and_count(*w, woken), asio::detached);
  io.poll();
  w.reset();
  io.poll();
  CHECK(woken == 1);
}
