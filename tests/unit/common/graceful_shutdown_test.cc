// common/graceful_shutdown.h: drain once, force close once (early when nothing is live, else at
// the deadline), then the runtime stops.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/graceful_shutdown.h"
#include "tests/unit/common/runtime_watchdog.h"

using common::GracefulShutdown;
using common::Runtime;
namespace asio = boost::asio;
using namespace std::chrono_literals;

TEST_CASE("nothing live after the drain: force close at once, then the runtime stops", "[shutdown]") {
  Runtime rt(1);
  RuntimeWatchdog dog(rt);
  std::vector<std::string> steps;
  int64_t live = 3;
  // A deadline the watchdog's bound exceeds: reaching force_close early is the only way out.
  GracefulShutdown shutdown(rt, std::chrono::hours(1),
                            {.live = [&] { return live; },
                             .drain =
                                 [&] {
                                   steps.push_back("drain");
                                   live = 0;  // the drain ended every connection
                                 },
                             .force_close = [&] { steps.push_back("force_close"); }});
  asio::post(rt.control(), [&] {
    shutdown.begin();
    shutdown.begin();  // a second SIGTERM or /quitquitquit: no second drain
  });
  rt.run();
  CHECK_FALSE(dog.fired);
  CHECK(steps == std::vector<std::string>{"drain", "force_close"});
}

TEST_CASE("connections still live after the drain: force close at the deadline", "[shutdown]") {
  Runtime rt(1);
  RuntimeWatchdog dog(rt);
  std::vector<std::string> steps;
  int64_t live_at_force_close = -1;
  GracefulShutdown shutdown(rt, 50ms,
                            {.live = [] { return int64_t{1}; },
                             .drain = [&] { steps.push_back("drain"); },
                             .force_close =
                                 [&] {
                                   steps.push_back("force_close");
                                   live_at_force_close = 1;
                                 }});
  shutdown.begin();  // from a thread other than the control thread's runner
  rt.run();
  CHECK_FALSE(dog.fired);
  CHECK(steps == std::vector<std::string>{"drain", "force_close"});
  CHECK(live_at_force_close == 1);
}
