#include "waypoint/ratelimit/token_bucket.h"

#include <algorithm>

namespace waypoint::ratelimit {

TokenBucket::TokenBucket(uint32_t max_tokens, uint32_t tokens_per_fill, std::chrono::nanoseconds fill_interval,
                         uint64_t start_ns)
    : max_(std::max<uint32_t>(max_tokens, 1)),
      per_fill_(std::max<uint32_t>(tokens_per_fill, 1)),
      interval_ns_(static_cast<uint64_t>(std::max<int64_t>(fill_interval.count(), 1))),
      start_ns_(start_ns),
      state_(static_cast<uint64_t>(max_)) {}

uint64_t TokenBucket::now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

uint64_t TokenBucket::epoch_at(uint64_t now_ns) const {
  // A clock reading before the start (another worker read the clock a moment before the bucket
  // was built) counts as the start.
  const uint64_t e = now_ns > start_ns_ ? (now_ns - start_ns_) / interval_ns_ : 0;
  // 32 bits of intervals: at Envoy's 50 ms minimum that is over six years; past it the bucket
  // simply stops refilling more than once more, which only matters for a process that old.
  return std::min<uint64_t>(e, 0xffffffffULL);
}

TokenBucket::Result TokenBucket::consume(uint64_t now_ns) {
  const uint64_t epoch = epoch_at(now_ns);
  Result r;
  uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t last = s >> 32;
    uint64_t tokens = s & 0xffffffffULL;
    // A state written for a later interval than ours (another worker with a fresher clock
    // reading) is taken as is: time never moves the bucket backwards.
    const uint64_t cur = std::max(epoch, last);
    if (cur > last) {
      const uint64_t fills = cur - last;
      // Saturating: fills * per_fill can exceed 64 bits only after absurd idle times.
      tokens = fills >= max_ ? max_ : std::min<uint64_t>(max_, tokens + fills * per_fill_);
    }
    r.allowed = tokens > 0;
    if (r.allowed) --tokens;
    r.remaining = static_cast<uint32_t>(tokens);
    const uint64_t next = (cur << 32) | tokens;
    if (next == s) break;  // denied and nothing to bring up to date
    if (state_.compare_exchange_weak(s, next, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
  }
  const uint64_t into = now_ns > start_ns_ ? (now_ns - start_ns_) % interval_ns_ : 0;
  const uint64_t left_ns = interval_ns_ - into;
  r.reset_seconds = (left_ns + 999'999'999ULL) / 1'000'000'000ULL;
  return r;
}

}  // namespace waypoint::ratelimit
