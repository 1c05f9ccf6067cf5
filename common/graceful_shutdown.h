// GracefulShutdown: the drain choreography both proxies run on SIGTERM/SIGINT or the admin
// /quitquitquit: drain (stop accepting, GOAWAY), wait until nothing is live or the termination
// deadline passes, close what is left, then stop the runtime. One place, so ztunnel and the
// waypoint end the same way.
//
// Threading: construct, and call on_signal(), on the control thread before Runtime::run().
// begin() is safe from any thread (posted to the control context) and only the first call has
// an effect. Every ShutdownSteps callback runs on the control thread.
// Invariants: drain runs once, then force_close runs once (when live() reaches 0, checked every
// 100 ms, or at the deadline, whichever is first), then the runtime stops 50 ms later, which
// gives the workers time to run the closes force_close posted to them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "common/runtime.h"

namespace common {

struct ShutdownSteps {
  std::function<int64_t()> live;      // what the drain waits for (connections, requests)
  std::function<void()> drain;        // stop accepting, GOAWAY; log what is in flight
  std::function<void()> force_close;  // close everything still open
};

class GracefulShutdown {
 public:
  GracefulShutdown(Runtime& runtime, std::chrono::milliseconds deadline, ShutdownSteps steps);
  ~GracefulShutdown();
  GracefulShutdown(const GracefulShutdown&) = delete;
  GracefulShutdown& operator=(const GracefulShutdown&) = delete;

  // Begins the shutdown; any thread, idempotent.
  void begin();
  // SIGTERM / SIGINT begin it (logged with the signal number).
  void on_signal();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace common
