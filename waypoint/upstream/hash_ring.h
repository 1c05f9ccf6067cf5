// Consistent-hash tables for RING_HASH and MAGLEV clusters, built once per endpoint set (per
// config snapshot, see cluster_state.h) and then read by every worker without locks.
//   - xxhash64(): the 64-bit xxHash of a byte string (seed 0), the hash Envoy uses for ring
//     points and for request hash keys. Exact ring parity with Envoy is not a goal; stickiness
//     (same key -> same host while the host set is unchanged) and spread are.
//   - HashRing: a ketama-like ring of at least `min_size` points, each host getting points in
//     proportion to its weight; a key maps to the first point at or after its hash (wrapping).
//   - MaglevTable: the Maglev paper's lookup table (prime size M, per-host offset/skip
//     permutations filled round-robin, weighted by repeating turns), key -> table[hash % M].
// Both return indices into the host list they were built from; lookup() with a `usable`
// predicate walks on (ring: next points; maglev: rehashed probes) to the first usable host, so
// an ejected host loses its keys to others without moving the keys of the healthy ones.
// Threading: immutable after build; lookup is const and lock-free.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace waypoint::upstream {

uint64_t xxhash64(std::string_view data, uint64_t seed = 0);

struct HashHost {
  std::string_view key;  // "ip:port"; the table does not keep the view
  uint32_t weight = 1;
};

class HashRing {
 public:
  // min_size: Envoy's minimum_ring_size (default 1024), capped at 8M points.
  static HashRing build(std::span<const HashHost> hosts, uint64_t min_size);
  std::optional<size_t> lookup(uint64_t hash, const std::function<bool(size_t)>& usable = {}) const;
  size_t size() const { return points_.size(); }

 private:
  struct Point {
    uint64_t hash;
    uint32_t host;
  };
  std::vector<Point> points_;  // sorted by hash
  size_t hosts_ = 0;
};

class MaglevTable {
 public:
  // size: Envoy's table_size (default 65537); must be prime (the converter checks it); a
  // non-prime size still yields a usable table, only with a less even spread.
  static MaglevTable build(std::span<const HashHost> hosts, uint64_t size);
  std::optional<size_t> lookup(uint64_t hash, const std::function<bool(size_t)>& usable = {}) const;
  size_t size() const { return table_.size(); }
  // How many table entries each host owns (tests: spread follows weight).
  std::vector<size_t> shares(size_t hosts) const;

 private:
  std::vector<uint32_t> table_;
  size_t hosts_ = 0;
};

}  // namespace waypoint::upstream
