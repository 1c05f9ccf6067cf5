// Running a real external client (python3-h2, curl, h2load, grpcio) against the in-process
// waypoint fixture: the client runs on its own thread while the fixture's loop serves the
// waypoint, the backends and the destination ztunnel on the test thread.
// Threading: run_client() is called on the test thread; the command runs on a thread it starts
// and joins. Invariant: the loop serves until the client exited (then, with `until`, at most
// another 10 s of 20 ms slices until it holds), so a hung client is bounded by its own timeout.
#pragma once

#include <array>
#include <atomic>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include "tests/unit/waypoint/fixture.h"

namespace wptest {

// `cmd` through /bin/sh: its stdout, and its wait status in `status` (-1 if it could not start).
inline std::string run_command(const std::string& cmd, int& status) {
  std::string output;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    status = -1;
    return output;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) output.append(buf.data(), n);
  status = ::pclose(p);
  return output;
}

// Runs `cmd` on a thread while the fixture's loop serves; returns its output and status.
// `until`: after the client exited, the loop keeps serving (bounded) until it holds — for work
// the client does not wait for (a request it cancelled is still answered by the backend).
inline std::string run_client(Fixture& f, const std::string& cmd, int& status, std::function<bool()> until = {}) {
  std::atomic<bool> finished{false};
  std::string output;
  std::thread client([&] {
    output = run_command(cmd, status);
    finished = true;
  });
  f.run([&]() -> asio::awaitable<void> {
    asio::steady_timer t(f.io);
    while (!finished) {
      t.expires_after(std::chrono::milliseconds(20));
      co_await t.async_wait(kTuple);
    }
    for (int i = 0; until && !until() && i < 500; ++i) {
      t.expires_after(std::chrono::milliseconds(20));
      co_await t.async_wait(kTuple);
    }
  });
  client.join();
  return output;
}

}  // namespace wptest
