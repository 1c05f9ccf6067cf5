// TokenBucket: the local rate limit's bucket, shared by every worker of the waypoint process.
// Envoy's semantics: the bucket starts full (max_tokens); every fill_interval, tokens_per_fill
// tokens are added, capped at max_tokens; a request takes one token or is limited.
//
// Threading: consume() is called concurrently by all workers. The whole state (tokens and the
// fill interval they were last brought up to date for) lives in one 64-bit atomic and is
// updated by compare-and-swap, so there is no lock and no timer: refills are computed lazily
// from the clock when a request arrives. The clock is passed in (monotonic nanoseconds) so the
// arithmetic is testable without sleeping.
//
// Invariants: max_tokens >= 1, tokens_per_fill >= 1, fill_interval >= 1 ms (the converter
// enforces Envoy's 50 ms minimum); the token count never exceeds max_tokens.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace waypoint::ratelimit {

class TokenBucket {
 public:
  struct Result {
    bool allowed = false;
    uint32_t remaining = 0;      // tokens left after this request
    uint64_t reset_seconds = 0;  // until the next fill (rounded up), for x-ratelimit-reset
  };

  // `start_ns`: the clock reading the bucket is created at (full at that moment).
  TokenBucket(uint32_t max_tokens, uint32_t tokens_per_fill, std::chrono::nanoseconds fill_interval, uint64_t start_ns);

  // Takes one token if there is one at `now_ns` (same clock as start_ns).
  Result consume(uint64_t now_ns);

  uint32_t max_tokens() const { return max_; }

  // The process's monotonic clock in nanoseconds (what the data path passes).
  static uint64_t now_ns();

 private:
  uint64_t epoch_at(uint64_t now_ns) const;

  const uint32_t max_;
  const uint32_t per_fill_;
  const uint64_t interval_ns_;
  const uint64_t start_ns_;
  // High 32 bits: the fill interval number (since start) the tokens are counted for;
  // low 32 bits: tokens.
  std::atomic<uint64_t> state_;
};

}  // namespace waypoint::ratelimit
