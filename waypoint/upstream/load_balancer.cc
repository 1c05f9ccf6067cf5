#include "waypoint/upstream/load_balancer.h"

#include <algorithm>
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

namespace {
bool healthy(const Endpoint& e) {
  return e.health == HealthStatus::Unknown || e.health == HealthStatus::Healthy || e.health == HealthStatus::Degraded;
}
}  // namespace

const Endpoint* LoadBalancer::pick(const Cluster& cluster, std::span<const Endpoint> endpoints, router::Random& random,
                                   std::span<const std::string> avoid) {
  if (endpoints.empty()) return nullptr;
  std::vector<const Endpoint*> candidates;
  candidates.reserve(endpoints.size());
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
    std::vector<const Endpoint*> fresh;
    for (auto* e : candidates) {
      if (std::find(avoid.begin(), avoid.end(), endpoint_key(*e)) == avoid.end()) fresh.push_back(e);
    }
    if (!fresh.empty()) candidates.swap(fresh);
  }
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
        const Endpoint* e = candidates[random.next() % candidates.size()];
        double load = static_cast<double>(active(endpoint_key(*e)) + 1) / e->weight;
        if (!best || load < best_load) {
          best = e;
          best_load = load;
        }
      }
      return best;
    }
    default: {
      // RANDOM (and hash policies until ring/maglev land): weighted random.
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

}  // namespace waypoint::upstream
