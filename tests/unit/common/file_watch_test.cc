// common/file_watch.h: a change of mtime calls back once per change, an unreadable file is not a
// change, stop() (also from inside the callback) ends the calls.
#include <catch2/catch.hpp>

#include <filesystem>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/file_watch.h"
#include "temp_dir.h"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Moves the file's mtime by a whole second, so the change never depends on clock granularity.
void touch_forward(const std::string& path) {
  fs::last_write_time(path, fs::last_write_time(path) + 1s);
}

// Runs `ctx` until `done` or a generous liveness bound (a hang fails the test, it asserts no timing).
template <typename Pred>
bool run_until(asio::io_context& ctx, Pred done) {
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (!done() && std::chrono::steady_clock::now() < give_up) {
    ctx.run_for(5ms);
    if (ctx.stopped()) ctx.restart();
  }
  return done();
}

}  // namespace

TEST_CASE("file watch: each mtime change calls back; a missing file does not", "[common][file_watch]") {
  testutil::TempDir dir("file-watch");
  dir.write("config.yaml", "a");
  const std::string path = dir.file("config.yaml");
  asio::io_context ctx;
  int calls = 0;
  common::FileWatch watch(ctx, path, 1ms, [&] { ++calls; });
  CHECK(common::file_mtime_ns(path) > 0);
  CHECK(common::file_mtime_ns(dir.file("absent")) == -1);
  watch.start();

  touch_forward(path);
  REQUIRE(run_until(ctx, [&] { return calls == 1; }));
  touch_forward(path);
  REQUIRE(run_until(ctx, [&] { return calls == 2; }));

  // Gone (a swap in progress): no call; back with a new mtime: a call.
  const std::string aside = dir.file("aside");
  fs::rename(path, aside);
  ctx.run_for(20ms);
  CHECK(calls == 2);
  fs::rename(aside, path);
  touch_forward(path);
  REQUIRE(run_until(ctx, [&] { return calls == 3; }));
  watch.stop();
}

TEST_CASE("file watch: stop() from the callback ends the watch", "[common][file_watch]") {
  testutil::TempDir dir("file-watch");
  dir.write("crl.pem", "x");
  const std::string path = dir.file("crl.pem");
  asio::io_context ctx;
  int calls = 0;
  std::optional<common::FileWatch> watch;
  watch.emplace(ctx, path, 1ms, [&] {
    ++calls;
    watch->stop();
  });
  watch->start();
  touch_forward(path);
  REQUIRE(run_until(ctx, [&] { return calls == 1; }));
  touch_forward(path);
  // Stopped: the io_context runs out of work instead of polling on.
  ctx.restart();
  ctx.run();
  CHECK(calls == 1);
}
