#include "waypoint/upstream/hash_ring.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace waypoint::upstream {

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}
uint64_t read64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian hosts only (x86-64, arm64), as the spec's reference
  return v;
}
uint32_t read32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t round64(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = rotl(acc, 31);
  return acc * kP1;
}
uint64_t merge(uint64_t acc, uint64_t v) {
  acc ^= round64(0, v);
  return acc * kP1 + kP4;
}

constexpr uint64_t kMaxRing = 8u << 20;

}  // namespace

uint64_t xxhash64(std::string_view data, uint64_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const unsigned char* end = p + data.size();
  uint64_t h;
  if (data.size() >= 32) {
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    while (end - p >= 32) {
      v1 = round64(v1, read64(p));
      v2 = round64(v2, read64(p + 8));
      v3 = round64(v3, read64(p + 16));
      v4 = round64(v4, read64(p + 24));
      p += 32;
    }
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = seed + kP5;
  }
  h += data.size();
  while (end - p >= 8) {
    h ^= round64(0, read64(p));
    h = rotl(h, 27) * kP1 + kP4;
    p += 8;
  }
  if (end - p >= 4) {
    h ^= static_cast<uint64_t>(read32(p)) * kP1;
    h = rotl(h, 23) * kP2 + kP3;
    p += 4;
  }
  while (p < end) {
    h ^= (*p) * kP5;
    h = rotl(h, 11) * kP1;
    ++p;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

HashRing HashRing::build(std::span<const HashHost> hosts, uint64_t min_size) {
  HashRing r;
  r.hosts_ = hosts.size();
  if (hosts.empty()) return r;
  uint64_t total = 0;
  for (const auto& h : hosts) total += std::max<uint32_t>(1, h.weight);
  // Points per unit of weight so that the ring has at least min_size points (Envoy scales the
  // same way, then caps the ring).
  const uint64_t want = std::clamp<uint64_t>(min_size, 1, kMaxRing);
  const uint64_t per_weight = std::max<uint64_t>(1, (want + total - 1) / total);
  r.points_.reserve(std::min(kMaxRing, per_weight * total));
  std::string key;
  for (size_t i = 0; i < hosts.size(); ++i) {
    const uint64_t n = per_weight * std::max<uint32_t>(1, hosts[i].weight);
    for (uint64_t j = 0; j < n && r.points_.size() < kMaxRing; ++j) {
      key.assign(hosts[i].key);
      key += '_';
      key += std::to_string(j);
      r.points_.push_back({xxhash64(key), static_cast<uint32_t>(i)});
    }
  }
  std::sort(r.points_.begin(), r.points_.end(),
            [](const Point& a, const Point& b) { return a.hash != b.hash ? a.hash < b.hash : a.host < b.host; });
  return r;
}

std::optional<size_t> HashRing::lookup(uint64_t hash, const std::function<bool(size_t)>& usable) const {
  if (points_.empty()) return std::nullopt;
  auto it =
      std::lower_bound(points_.begin(), points_.end(), hash, [](const Point& p, uint64_t h) { return p.hash < h; });
  size_t idx = it == points_.end() ? 0 : static_cast<size_t>(it - points_.begin());
  if (!usable) return points_[idx].host;
  // Walk on clockwise; every host appears within one full turn, so this ends.
  for (size_t n = 0; n < points_.size(); ++n) {
    const auto& p = points_[(idx + n) % points_.size()];
    if (usable(p.host)) return p.host;
  }
  return std::nullopt;
}

MaglevTable MaglevTable::build(std::span<const HashHost> hosts, uint64_t size) {
  MaglevTable t;
  t.hosts_ = hosts.size();
  if (hosts.empty() || size == 0) return t;
  const uint64_t m = size;
  constexpr uint32_t kEmpty = UINT32_MAX;
  t.table_.assign(m, kEmpty);
  struct Perm {
    uint64_t offset, skip, next = 0;
    double weight, credit = 0;
  };
  std::vector<Perm> perms;
  perms.reserve(hosts.size());
  uint32_t max_w = 1;
  for (const auto& h : hosts) max_w = std::max(max_w, std::max<uint32_t>(1, h.weight));
  for (const auto& h : hosts) {
    Perm p;
    p.offset = xxhash64(h.key, 0) % m;
    p.skip = m > 1 ? xxhash64(h.key, 1) % (m - 1) + 1 : 1;
    p.weight = static_cast<double>(std::max<uint32_t>(1, h.weight)) / max_w;
    perms.push_back(p);
  }
  uint64_t filled = 0;
  while (filled < m) {
    for (size_t i = 0; i < perms.size() && filled < m; ++i) {
      auto& p = perms[i];
      // Weighted turns: a host of half the largest weight fills every other round.
      p.credit += p.weight;
      if (p.credit < 1.0) continue;
      p.credit -= 1.0;
      uint64_t c;
      do {
        c = (p.offset + p.next * p.skip) % m;
        ++p.next;
      } while (t.table_[c] != kEmpty);
      t.table_[c] = static_cast<uint32_t>(i);
      ++filled;
    }
  }
  return t;
}

std::optional<size_t> MaglevTable::lookup(uint64_t hash, const std::function<bool(size_t)>& usable) const {
  if (table_.empty()) return std::nullopt;
  const size_t first = table_[hash % table_.size()];
  if (!usable || usable(first)) return first;
  // Rehash a few times (keys of a lost host scatter over the others), then scan.
  uint64_t h = hash;
  for (int i = 0; i < 32; ++i) {
    h = xxhash64(std::string_view(reinterpret_cast<const char*>(&h), sizeof h), static_cast<uint64_t>(i) + 2);
    const size_t host = table_[h % table_.size()];
    if (usable(host)) return host;
  }
  for (size_t host = 0; host < hosts_; ++host) {
    if (usable(host)) return host;
  }
  return std::nullopt;
}

std::vector<size_t> MaglevTable::shares(size_t hosts) const {
  std::vector<size_t> out(hosts, 0);
  for (uint32_t h : table_) {
    if (h < hosts) ++out[h];
  }
  return out;
}

}  // namespace waypoint::upstream
