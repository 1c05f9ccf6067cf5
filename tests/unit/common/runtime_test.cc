// common/runtime.h: worker threads, control loop, stop, drain, worker-thread sizing.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/runtime.h"
#include "tests/unit/common/runtime_watchdog.h"

using common::DrainController;
using common::Runtime;
using common::worker_threads_from_env;
namespace asio = boost::asio;
using namespace std::chrono_literals;

TEST_CASE("workers run posted work on their own threads", "[runtime]") {
  Runtime rt(3);
  REQUIRE(rt.workers() == 3);
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::thread::id> ids;
  int done = 0;
  for (size_t i = 0; i < rt.workers(); ++i) {
    asio::post(rt.worker(i), [&] {
      std::lock_guard<std::mutex> l(mu);
      ids.insert(std::this_thread::get_id());
      ++done;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> l(mu);
  REQUIRE(cv.wait_for(l, 30s, [&] { return done == 3; }));
  CHECK(ids.size() == 3);
  CHECK(ids.count(std::this_thread::get_id()) == 0);
}

TEST_CASE("next_worker rotates over all workers", "[runtime]") {
  Runtime rt(2);
  auto* a = &rt.next_worker();
  auto* b = &rt.next_worker();
  auto* c = &rt.next_worker();
  CHECK(a != b);
  CHECK(a == c);
}

TEST_CASE("run() blocks on control until stop() from a worker, then joins", "[runtime]") {
  Runtime rt(2);
  std::atomic<bool> control_ran{false};
  std::thread::id control_thread;
  asio::post(rt.control(), [&] {
    control_ran = true;
    control_thread = std::this_thread::get_id();
    // Stop from another thread: a worker.
    asio::post(rt.worker(1), [&] { rt.stop(); });
  });
  RuntimeWatchdog watchdog(rt);
  rt.run();
  CHECK_FALSE(watchdog.fired);
  CHECK(control_ran);
  CHECK(control_thread == std::this_thread::get_id());
  CHECK(rt.stopped());
  rt.stop();  // idempotent
}

TEST_CASE("stop() before run() makes run() return", "[runtime]") {
  Runtime rt(1);
  rt.stop();
  rt.run();
  CHECK(rt.stopped());
}

TEST_CASE("signal handler runs on the control thread", "[runtime]") {
  Runtime rt(1);
  int got = 0;
  std::thread::id where;
  rt.on_signal([&](int signo) {
    got = signo;
    where = std::this_thread::get_id();
    rt.stop();
  });
  asio::post(rt.control(), [] { ::raise(SIGTERM); });
  RuntimeWatchdog watchdog(rt);
  rt.run();
  CHECK_FALSE(watchdog.fired);
  CHECK(got == SIGTERM);
  CHECK(where == std::this_thread::get_id());
}

TEST_CASE("drain: callbacks, then force close after the deadline", "[runtime]") {
  Runtime rt(1);
  DrainController drain(rt.control());
  std::vector<std::string> events;
  drain.on_drain([&] { events.push_back("drain1"); });
  drain.on_drain([&] { events.push_back("drain2"); });
  drain.on_force_close([&] {
    events.push_back("force");
    rt.stop();
  });
  CHECK_FALSE(drain.draining());
  drain.start(20ms);
  CHECK(drain.draining());
  drain.start(1h);  // second start has no effect
  RuntimeWatchdog watchdog(rt);
  rt.run();
  CHECK_FALSE(watchdog.fired);
  REQUIRE(events == std::vector<std::string>{"drain1", "drain2", "force"});
}

TEST_CASE("drain: complete() forces close early, exactly once", "[runtime]") {
  Runtime rt(1);
  DrainController drain(rt.control());
  int forced = 0;
  drain.on_force_close([&] { ++forced; });
  drain.start(1h);
  drain.complete();
  drain.complete();
  // Give the posted work a chance to run, then stop.
  asio::steady_timer t(rt.control(), 50ms);
  t.async_wait([&](auto) { rt.stop(); });
  RuntimeWatchdog watchdog(rt);
  rt.run();
  CHECK_FALSE(watchdog.fired);
  CHECK(forced == 1);
}

TEST_CASE("worker_threads_from_env follows the ZTUNNEL_WORKER_THREADS rules", "[runtime]") {
  // Default: max(ceil(25% of cores), 2).
  CHECK(worker_threads_from_env(std::nullopt, 1).value() == 2);
  CHECK(worker_threads_from_env(std::nullopt, 8).value() == 2);
  CHECK(worker_threads_from_env(std::nullopt, 9).value() == 3);
  CHECK(worker_threads_from_env(std::nullopt, 64).value() == 16);
  CHECK(worker_threads_from_env(std::string_view(""), 64).value() == 16);
  // Explicit number, 0 = all cores.
  CHECK(worker_threads_from_env("4", 64).value() == 4);
  CHECK(worker_threads_from_env("0", 12).value() == 12);
  // Percent of cores, rounded up.
  CHECK(worker_threads_from_env("50%", 6).value() == 3);
  CHECK(worker_threads_from_env("50%", 5).value() == 3);
  CHECK(worker_threads_from_env("1%", 4).value() == 1);
  CHECK(worker_threads_from_env("100%", 7).value() == 7);
  // Errors name the variable.
  for (const char* bad : {"-1", "abc", "0%", "101%", "%", "1.5", "12x"}) {
    auto r = worker_threads_from_env(std::string_view(bad), 4);
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("ZTUNNEL_WORKER_THREADS"));
  }
  CHECK(common::available_cores() >= 1);
}
