// Random: the source of every random decision of the router (weighted cluster, runtime
// fractions, fault and mirror percentages, retry back-off jitter). The router's functions take
// it (or a value drawn from it) as a parameter, so tests seed it and are deterministic.
//
// Threading: not thread-safe; each worker owns one (seeded differently) and uses it for the
// requests it serves. Invariant: a given seed always yields the same sequence (splitmix64).
#pragma once

#include <cstdint>

namespace waypoint::router {

class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace waypoint::router
