// Overload manager for HBONE buffers: a process-wide budget for the bytes queued in HBONE
// streams (receive queues the local app has not taken yet + send queues the peer's window has
// not let out). Upstream's windows (4 MiB per stream, 16 MiB per connection) stay as they are
// for throughput; what is bounded is their sum over every connection, so a crowd of peers
// that never open their receive window (or whose apps never read) cannot grow memory with
// their number.
//
// Policy (Envoy's overload manager, reduced to one resource):
//  * soft limit = 3/4 of the budget: a connection holding at least its fair share
//    (soft / connections holding anything) stops reading its socket — and its streams stop
//    taking bytes from their apps — until the total is back under the soft limit or its own
//    holding drops under the fair share. Connections holding little keep going.
//  * hard limit = the budget: a connection holding at least its fair share (budget / holders)
//    resets its largest stream (RST_STREAM ENHANCE_YOUR_CALM), at most one per check tick,
//    until it is under. Data of a reset stream is lost by design; its peer sees the reset.
//  * a paused connection whose holding has not moved for kStalledPauseLimit (nothing drained:
//    a peer that never opens its window, or one that left — its FIN queued behind data we do
//    not read is invisible) is closed.
// Every action is one log line and one count in istio_hbone_overload_actions_total.
// The checks run before each socket read, so the total can pass the budget by one read (256 KiB)
// per worker thread before the next check acts, plus one more read by each connection still under
// its fair share (the limits spare those); the budget is a trigger, not a cap.
//
// Budget: env HBONE_BUFFER_BUDGET (bytes, or with a Ki/Mi/Gi suffix), read by the binary at
// startup via set_budget(); default 256 MiB; 0 turns the manager off.
//
// Threading: the total and the holder count are relaxed atomics updated by each connection's
// own worker when its queues change (no lock on the data path); a connection's own holding is
// a plain member of that connection. Decisions are approximate by design: they read a total
// other workers may be changing.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "common/result.h"

namespace hbone {

inline constexpr uint64_t kDefaultBufferBudget = 256ull << 20;
inline constexpr std::chrono::seconds kStalledPauseLimit{30};

class Overload {
 public:
  // 0 = unlimited. Call at startup, before connections exist (tests may call it any time).
  void set_budget(uint64_t bytes) { budget_.store(bytes, std::memory_order_relaxed); }
  uint64_t budget() const { return budget_.load(std::memory_order_relaxed); }
  int64_t buffered() const { return total_.load(std::memory_order_relaxed); }
  int64_t holders() const { return holders_.load(std::memory_order_relaxed); }

  // A connection's holding changed from `before` to `before + delta`.
  void account(uint64_t before, int64_t delta) {
    if (delta == 0) return;
    total_.fetch_add(delta, std::memory_order_relaxed);
    const uint64_t after = before + static_cast<uint64_t>(delta);
    if (before == 0 && after != 0) holders_.fetch_add(1, std::memory_order_relaxed);
    if (before != 0 && after == 0) holders_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Should a connection holding `held` bytes stop reading?
  bool should_pause(uint64_t held) const {
    const uint64_t b = budget();
    if (b == 0 || held == 0) return false;
    const uint64_t soft = b / 4 * 3;
    return static_cast<uint64_t>(std::max<int64_t>(0, buffered())) >= soft && held >= fair_share(soft);
  }
  // A paused connection resumes below 5/8 of the budget or under half its fair share: the gap
  // to the soft limit keeps a connection at the edge from flapping (one log line per action).
  bool should_resume(uint64_t held) const {
    const uint64_t b = budget();
    if (b == 0 || held == 0) return true;
    const uint64_t soft = b / 4 * 3;
    return static_cast<uint64_t>(std::max<int64_t>(0, buffered())) < b / 8 * 5 || held < fair_share(soft) / 2;
  }
  // Should a connection holding `held` bytes reset its largest stream?
  bool should_shed(uint64_t held) const {
    const uint64_t b = budget();
    if (b == 0 || held == 0) return false;
    return static_cast<uint64_t>(std::max<int64_t>(0, buffered())) >= b && held >= fair_share(b);
  }

 private:
  uint64_t fair_share(uint64_t limit) const {
    const int64_t n = std::max<int64_t>(1, holders());
    return limit / static_cast<uint64_t>(n);
  }

  std::atomic<uint64_t> budget_{kDefaultBufferBudget};
  std::atomic<int64_t> total_{0};
  std::atomic<int64_t> holders_{0};
};

// The process' overload manager.
Overload& overload();

// Parses HBONE_BUFFER_BUDGET: "<n>", "<n>Ki", "<n>Mi", "<n>Gi" (also KiB/MiB/GiB). Errors name
// the variable.
common::Result<uint64_t> parse_buffer_budget(std::string_view text);

}  // namespace hbone
