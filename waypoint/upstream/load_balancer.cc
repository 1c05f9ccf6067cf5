#include "waypoint/upstream/load_balancer.h"

#include "waypoint/upstream/cluster_state.h"

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <cmath>
#include <vector>

namespace waypoint::upstream {

std::string endpoint_key(const Endpoint& e) {
  if (e.address.find(':') != std::string::npos) return "[" + e.address + "]:" + std::to_string(e.port);
  return e.address + ":" + std::to_string(e.port);
}

void LoadBalancer::finished(const std::string& key) {
  auto it = active_.find(key);
  if (it != active_.end() && it->second > 0) --it->second;
}

uint64_t LoadBalancer::active(const std::string& key) const {
  auto it = active_.find(key);
  return it == active_.end() ? 0 : it->second;
}

double slow_start_factor(const ClusterPolicy& policy, int64_t joined_ms, int64_t now_ms) {
  if (!policy.slow_start_window || joined_ms == kNotNew) return 1.0;
  if (policy.lb_policy != LbPolicy::RoundRobin && policy.lb_policy != LbPolicy::LeastRequest) return 1.0;
  const int64_t window = policy.slow_start_window->count();
  const int64_t age = now_ms - joined_ms;
  if (window <= 0 || age >= window) return 1.0;
  constexpr double kMinWeight = 0.10;  // Envoy's min_weight_percent default
  constexpr double kAggression = 1.0;  // Envoy's aggression default
  const double time_factor = static_cast<double>(std::max<int64_t>(age, 1000)) / static_cast<double>(window);
  return std::min(1.0, std::max(kMinWeight, std::pow(time_factor, 1.0 / kAggression)));
}

namespace {
// Per-pick scratch lists live on the stack up to this many entries (a service's endpoints at
// one priority, usually a handful): a pick per request allocated six vectors before.
template <typename T>
using Scratch = boost::container::small_vector<T, 16>;

bool healthy(const Endpoint& e) {
  return e.health == HealthStatus::Unknown || e.health == HealthStatus::Healthy || e.health == HealthStatus::Degraded;
}

// Uniform in [0, 1) from 53 random bits.
double unit(router::Random& random) { return static_cast<double>(random.next() >> 11) * 0x1p-53; }

// Index into `w` by cumulative weight at u x total (u in [0, 1)).
size_t by_weight(std::span<const double> w, double total, double u) {
  double v = u * total;
  for (size_t i = 0; i < w.size(); ++i) {
    if (v < w[i]) return i;
    v -= w[i];
  }
  return w.size() - 1;
}
}  // namespace

const Endpoint* LoadBalancer::pick(const Cluster& cluster, std::span<const Endpoint> endpoints, router::Random& random,
                                   std::span<const std::string> avoid) {
  if (endpoints.empty()) return nullptr;
  Scratch<const Endpoint*> candidates;
  for (const auto& e : endpoints) {
    if (healthy(e) && e.weight > 0) candidates.push_back(&e);
  }
  // Panic mode: too few healthy hosts -> balance over all of them.
  const uint64_t threshold = cluster.policy.healthy_panic_threshold_percent;
  if (candidates.size() * 100 < threshold * endpoints.size() || candidates.empty()) {
    candidates.clear();
    for (const auto& e : endpoints) {
      if (e.weight > 0) candidates.push_back(&e);
    }
  }
  if (candidates.empty()) return nullptr;
  if (!avoid.empty() && candidates.size() > 1) {
    Scratch<const Endpoint*> fresh;
    for (auto* e : candidates) {
      if (std::find(avoid.begin(), avoid.end(), endpoint_key(*e)) == avoid.end()) fresh.push_back(e);
    }
    if (!fresh.empty()) candidates.swap(fresh);
  }
  return choose(cluster, {candidates.data(), candidates.size()}, nullptr, random);
}

const Endpoint* LoadBalancer::choose(const Cluster& cluster, std::span<const Endpoint* const> candidates,
                                     const std::string* const* keys, router::Random& random) {
  if (candidates.empty()) return nullptr;
  if (candidates.size() == 1) return candidates.front();
  switch (cluster.policy.lb_policy) {
    case LbPolicy::RoundRobin: {
      uint64_t& n = rr_next_[cluster.name];
      return candidates[n++ % candidates.size()];
    }
    case LbPolicy::LeastRequest: {
      // P2C (choice_count draws, keep the least loaded per unit of weight).
      const uint32_t draws = std::max<uint32_t>(2, cluster.policy.least_request_choice_count);
      const Endpoint* best = nullptr;
      double best_load = 0;
      for (uint32_t i = 0; i < draws; ++i) {
        const size_t k = random.next() % candidates.size();
        const Endpoint* e = candidates[k];
        const uint64_t in_flight = keys ? active(*keys[k]) : active(endpoint_key(*e));
        double load = static_cast<double>(in_flight + 1) / e->weight;
        if (!best || load < best_load) {
          best = e;
          best_load = load;
        }
      }
      return best;
    }
    default: {
      // RANDOM (and hashed clusters without a request hash): weighted random.
      uint64_t total = 0;
      for (auto* e : candidates) total += e->weight;
      uint64_t v = random.next() % total;
      for (auto* e : candidates) {
        if (v < e->weight) return e;
        v -= e->weight;
      }
      return candidates.back();
    }
  }
}

const Endpoint* LoadBalancer::pick(const ClusterRuntime& rt, router::Random& random, std::optional<uint64_t> hash,
                                   std::span<const std::string> avoid, std::optional<int64_t> now_ms) {
  if (!rt.cla || rt.cla->endpoints.empty() || rt.priorities.empty()) return nullptr;
  const auto& eps = rt.cla->endpoints;
  const Cluster& cluster = *rt.cluster;
  auto usable = [&](uint32_t i) {
    return healthy(eps[i]) && eps[i].weight > 0 && !rt.hosts[i]->ejected.load(std::memory_order_relaxed);
  };
  // Health of each level, in percent, with the overprovisioning factor.
  const double factor = rt.cla->overprovisioning_factor / 100.0;
  const size_t n = rt.priorities.size();
  Scratch<double> health(n, 0.0);
  Scratch<uint32_t> healthy_count(n, 0), total_count(n, 0);
  double sum = 0;
  for (size_t p = 0; p < n; ++p) {
    for (uint32_t i : rt.priorities[p].members) {
      if (eps[i].weight == 0) continue;
      ++total_count[p];
      if (usable(i)) ++healthy_count[p];
    }
    if (total_count[p] > 0) health[p] = std::min(100.0, factor * 100.0 * healthy_count[p] / total_count[p]);
    sum += health[p];
  }
  const double threshold = cluster.policy.healthy_panic_threshold_percent;
  const uint64_t draw = hash ? *hash : random.next();
  Scratch<uint32_t> cand;
  const PriorityLevel* level = nullptr;
  bool panic = false;
  // A threshold of 0 disables panic mode: with no usable host the answer is 503 UH.
  if (threshold > 0 && std::min(100.0, sum) < threshold) {
    // Total panic: every host of every level (the first level's table serves hashing).
    panic = true;
    level = &rt.priorities.front();
    for (const auto& l : rt.priorities) {
      for (uint32_t i : l.members) {
        if (eps[i].weight > 0) cand.push_back(i);
      }
    }
  } else if (sum <= 0) {
    return nullptr;
  } else {
    // Loads in level order, normalised when the levels together are under 100 %.
    Scratch<double> load(n, 0.0);
    double left = 100.0;
    for (size_t p = 0; p < n; ++p) {
      load[p] = sum < 100.0 ? health[p] * 100.0 / sum : std::min(health[p], left);
      left -= load[p];
    }
    double v = static_cast<double>(draw % 10000) / 100.0;
    size_t chosen = 0;
    for (size_t p = 0; p < n; ++p) {
      if (load[p] <= 0) continue;
      chosen = p;
      if (v < load[p]) break;
      v -= load[p];
    }
    level = &rt.priorities[chosen];
    panic = threshold > 0 && 100.0 * healthy_count[chosen] < threshold * total_count[chosen];
    for (uint32_t i : level->members) {
      if (eps[i].weight > 0 && (panic || usable(i))) cand.push_back(i);
    }
  }
  if (cand.empty()) return nullptr;
  const bool hashed = cluster.policy.lb_policy == LbPolicy::RingHash || cluster.policy.lb_policy == LbPolicy::Maglev;
  if (!panic && !hashed && cluster.policy.locality_weighted_lb && !level->localities.empty()) {
    // Each locality's share: its weight scaled by how much of it is usable (the level's
    // candidates are exactly its usable hosts here).
    Scratch<double> w(level->localities.size(), 0.0);
    double total = 0;
    for (size_t k = 0; k < w.size(); ++k) {
      const auto& lm = level->localities[k];
      uint32_t hosts = 0, up = 0;
      for (uint32_t i : lm.members) {
        if (eps[i].weight == 0) continue;
        ++hosts;
        if (usable(i)) ++up;
      }
      if (hosts == 0 || lm.weight == 0) continue;
      w[k] = lm.weight * std::min(1.0, factor * up / hosts);
      total += w[k];
    }
    // No weighted locality has a usable host: Envoy falls back to the whole level.
    if (total > 0) {
      const auto& chosen = level->localities[by_weight({w.data(), w.size()}, total, unit(random))];
      Scratch<uint32_t> in;
      for (uint32_t i : chosen.members) {
        if (std::find(cand.begin(), cand.end(), i) != cand.end()) in.push_back(i);
      }
      if (!in.empty()) cand.swap(in);
    }
  }
  auto avoided = [&](uint32_t i) {
    return !avoid.empty() && std::find(avoid.begin(), avoid.end(), rt.keys[i]) != avoid.end();
  };
  if (!avoid.empty() && cand.size() > 1) {
    Scratch<uint32_t> fresh;
    for (uint32_t i : cand) {
      if (!avoided(i)) fresh.push_back(i);
    }
    if (!fresh.empty()) cand.swap(fresh);
  }
  if (hashed && hash) {
    // Table indices are positions in level->members; a member is acceptable when it is a
    // candidate (usable, or anything in panic; not avoided while others remain).
    auto ok = [&](size_t m) {
      const uint32_t i = level->members[m];
      return std::find(cand.begin(), cand.end(), i) != cand.end();
    };
    std::optional<size_t> m = cluster.policy.lb_policy == LbPolicy::RingHash ? level->ring.lookup(*hash, ok)
                                                                             : level->maglev.lookup(*hash, ok);
    if (m) return &eps[level->members[*m]];
    // Total panic over several levels: the host may sit in another level's table.
    if (panic) return &eps[cand[*hash % cand.size()]];
    return nullptr;
  }
  if (rt.any_new && cluster.policy.slow_start_window && cand.size() > 1 &&
      (cluster.policy.lb_policy == LbPolicy::RoundRobin || cluster.policy.lb_policy == LbPolicy::LeastRequest)) {
    const int64_t now = now_ms ? *now_ms : steady_now_ms();
    Scratch<double> w(cand.size());
    bool scaled = false;
    double total = 0;
    for (size_t k = 0; k < cand.size(); ++k) {
      const uint32_t i = cand[k];
      const double f = slow_start_factor(cluster.policy, rt.joined_ms[i], now);
      if (f < 1.0) scaled = true;
      w[k] = eps[i].weight * f;
      if (cluster.policy.lb_policy == LbPolicy::LeastRequest) w[k] /= static_cast<double>(active(rt.keys[i]) + 1);
      total += w[k];
    }
    if (scaled && total > 0) {
      double u;
      if (cluster.policy.lb_policy == LbPolicy::RoundRobin) {
        // Golden-ratio (Weyl) sequence: successive picks cover [0, 1) evenly, so the split
        // follows the weights without randomness.
        const uint64_t n = rr_next_[cluster.name]++;
        u = std::fmod(static_cast<double>(n % (1ULL << 40)) * 0.6180339887498949, 1.0);
      } else {
        u = unit(random);
      }
      return &eps[cand[by_weight({w.data(), w.size()}, total, u)]];
    }
  }
  Scratch<const Endpoint*> ptrs;
  Scratch<const std::string*> keys;
  for (uint32_t i : cand) {
    ptrs.push_back(&eps[i]);
    keys.push_back(&rt.keys[i]);
  }
  return choose(cluster, {ptrs.data(), ptrs.size()}, keys.data(), random);
}

}  // namespace waypoint::upstream
