#include "waypoint/upstream/cluster_state.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "waypoint/upstream/load_balancer.h"

namespace waypoint::upstream {

int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

std::shared_ptr<const ClusterLoadAssignment> endpoints_ptr(const ConfigSnapshot& snap,
                                                           const std::shared_ptr<const Cluster>& c) {
  if (c->load_assignment) return std::shared_ptr<const ClusterLoadAssignment>(c, &*c->load_assignment);
  auto it = snap.endpoints.find(c->eds_service_name.empty() ? c->name : c->eds_service_name);
  return it == snap.endpoints.end() ? nullptr : it->second;
}

bool same_locality(const Locality& a, const Locality& b) {
  return a.region == b.region && a.zone == b.zone && a.sub_zone == b.sub_zone;
}

bool same_hosts(const ClusterRuntime& a, const std::vector<std::string>& keys, const ClusterLoadAssignment& cla) {
  if (!a.cla || a.keys != keys) return false;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& x = a.cla->endpoints[i];
    const auto& y = cla.endpoints[i];
    if (x.weight != y.weight || x.priority != y.priority || x.locality_weight != y.locality_weight ||
        !same_locality(x.locality, y.locality))
      return false;
  }
  return true;
}

bool same_tables_policy(const Cluster& a, const Cluster& b) {
  return a.policy.lb_policy == b.policy.lb_policy &&
         a.policy.ring_hash_minimum_ring_size == b.policy.ring_hash_minimum_ring_size &&
         a.policy.maglev_table_size == b.policy.maglev_table_size &&
         a.policy.locality_weighted_lb == b.policy.locality_weighted_lb;
}

// The level's hosts by locality, when the cluster weights localities and some locality of the
// level carries a weight (istiod writes weights only for `distribute`; failover-only clusters
// keep plain per-level balancing).
void group_localities(const std::vector<Endpoint>& eps, PriorityLevel& l) {
  std::vector<LocalityMembers> out;
  std::vector<const Locality*> keys;
  bool weighted = false;
  for (uint32_t i : l.members) {
    size_t k = 0;
    while (k < keys.size() && !same_locality(*keys[k], eps[i].locality)) ++k;
    if (k == keys.size()) {
      keys.push_back(&eps[i].locality);
      out.push_back(LocalityMembers{eps[i].locality_weight, {}});
    }
    out[k].members.push_back(i);
    if (eps[i].locality_weight > 0) weighted = true;
  }
  if (weighted) l.localities = std::move(out);
}

}  // namespace

std::shared_ptr<const ClusterRuntimes> build_runtimes(const ConfigSnapshot& snap, const ClusterRuntimes* previous,
                                                      ClusterMetrics* metrics) {
  return build_runtimes(snap, previous, metrics, steady_now_ms());
}

std::shared_ptr<const ClusterRuntimes> build_runtimes(const ConfigSnapshot& snap, const ClusterRuntimes* previous,
                                                      ClusterMetrics* metrics, int64_t now_ms) {
  auto out = std::make_shared<ClusterRuntimes>();
  for (const auto& [name, cluster] : snap.clusters) {
    auto rt = std::make_shared<ClusterRuntime>();
    rt->cluster = cluster;
    rt->cla = endpoints_ptr(snap, cluster);
    const ClusterRuntime* prev = previous ? previous->find(name) : nullptr;
    if (prev) {
      rt->state = prev->state;
    } else {
      rt->state = std::make_shared<ClusterState>(name, metrics ? metrics->stats_for(name) : ClusterStats{});
    }
    auto& state = *rt->state;
    std::map<std::string, std::shared_ptr<HostOutlier>, std::less<>> hosts;
    if (rt->cla) {
      const auto& eps = rt->cla->endpoints;
      rt->keys.reserve(eps.size());
      for (const auto& e : eps) rt->keys.push_back(endpoint_key(e));
      for (const auto& key : rt->keys) {
        auto it = state.hosts.find(key);
        auto h = it != state.hosts.end() ? it->second : std::make_shared<HostOutlier>();
        hosts[key] = h;
        rt->hosts.push_back(h);
      }
      // Join times: the first endpoints are the cluster's baseline; later arrivals are new.
      std::map<std::string, int64_t, std::less<>> joined;
      for (const auto& key : rt->keys) {
        auto it = state.joined_ms.find(key);
        const int64_t t = it != state.joined_ms.end() ? it->second : state.seeded ? now_ms : kNotNew;
        joined[key] = t;
        rt->joined_ms.push_back(t);
        if (t != kNotNew) rt->any_new = true;
      }
      if (!eps.empty()) state.seeded = true;
      state.joined_ms = std::move(joined);
      if (prev && same_hosts(*prev, rt->keys, *rt->cla) && same_tables_policy(*prev->cluster, *cluster)) {
        rt->priorities = prev->priorities;
      } else {
        std::map<uint32_t, PriorityLevel> levels;
        for (uint32_t i = 0; i < eps.size(); ++i) {
          auto& l = levels[eps[i].priority];
          l.level = eps[i].priority;
          l.members.push_back(i);
        }
        for (auto& [lvl, l] : levels) {
          if (cluster->policy.lb_policy == LbPolicy::RingHash || cluster->policy.lb_policy == LbPolicy::Maglev) {
            std::vector<HashHost> hh;
            for (uint32_t i : l.members) hh.push_back({rt->keys[i], eps[i].weight});
            if (cluster->policy.lb_policy == LbPolicy::RingHash) {
              l.ring = HashRing::build(hh, cluster->policy.ring_hash_minimum_ring_size);
            } else {
              l.maglev = MaglevTable::build(hh, cluster->policy.maglev_table_size);
            }
          }
          if (cluster->policy.locality_weighted_lb) group_localities(eps, l);
          rt->priorities.push_back(std::move(l));
        }
      }
    }
    // Hosts that left the cluster: their ejections no longer count.
    for (auto& [key, h] : state.hosts) {
      if (hosts.count(key)) continue;
      h->removed.store(true, std::memory_order_relaxed);
      if (h->ejected.exchange(false)) {
        uint32_t a = state.outlier.active.load(std::memory_order_relaxed);
        while (a > 0 && !state.outlier.active.compare_exchange_weak(a, a - 1, std::memory_order_relaxed)) {
        }
      }
    }
    if (!rt->cla) state.joined_ms.clear();
    state.hosts = std::move(hosts);
    if (state.stats.ejections_active) {
      state.stats.ejections_active->set(state.outlier.active.load(std::memory_order_relaxed));
    }
    out->by_name[name] = std::move(rt);
  }
  return out;
}

std::optional<Duration> sweep_outliers(const ClusterRuntimes& runtimes, int64_t now_ms) {
  std::optional<int64_t> next;
  std::vector<HostOutlier*> hosts;
  for (const auto& [name, rt] : runtimes.by_name) {
    const auto& od = rt->cluster->policy.outlier_detection;
    if (!od) continue;
    auto& state = *rt->state;
    const int64_t interval = std::max<int64_t>(1, od->interval.count());
    int64_t due_at = state.next_sweep_ms.load(std::memory_order_relaxed);
    if (due_at == 0) due_at = now_ms + interval;
    if (now_ms >= due_at) {
      hosts.clear();
      for (const auto& h : rt->hosts) hosts.push_back(h.get());
      sweep(hosts, state.outlier, *od, now_ms, &state.stats);
      due_at = now_ms + interval;
    }
    state.next_sweep_ms.store(due_at, std::memory_order_relaxed);
    const int64_t due = due_at - now_ms;
    next = next ? std::min(*next, due) : due;
  }
  if (!next) return std::nullopt;
  return Duration(std::max<int64_t>(1, *next));
}

nlohmann::json dump_runtimes(const ClusterRuntimes& runtimes) { return dump_runtimes(runtimes, steady_now_ms()); }

nlohmann::json dump_runtimes(const ClusterRuntimes& runtimes, int64_t now_ms) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, rt] : runtimes.by_name) {
    const auto& cb = rt->cluster->policy.circuit_breakers;
    const auto& br = rt->state->breaker;
    nlohmann::json c;
    c["name"] = name;
    c["circuitBreakers"] = {
        {"maxConnections", cb.max_connections},
        {"maxPendingRequests", cb.max_pending_requests},
        {"maxRequests", cb.max_requests},
        {"maxRetries", cb.max_retries},
        {"connections", br.count(CircuitBreaker::Kind::Connections)},
        {"pendingRequests", br.count(CircuitBreaker::Kind::Pending)},
        {"requests", br.count(CircuitBreaker::Kind::Requests)},
        {"retries", br.count(CircuitBreaker::Kind::Retries)},
    };
    c["outlierDetection"] = rt->cluster->policy.outlier_detection.has_value();
    const auto& slow = rt->cluster->policy.slow_start_window;
    if (slow) c["slowStartWindowMs"] = slow->count();
    c["localityWeightedLb"] = rt->cluster->policy.locality_weighted_lb;
    c["ejectionsActive"] = rt->state->outlier.active.load(std::memory_order_relaxed);
    nlohmann::json hosts = nlohmann::json::array();
    for (size_t i = 0; i < rt->keys.size(); ++i) {
      const auto& h = *rt->hosts[i];
      const bool ejected = h.ejected.load(std::memory_order_relaxed);
      hosts.push_back({{"address", rt->keys[i]},
                       {"priority", rt->cla->endpoints[i].priority},
                       {"healthFlags", ejected ? "/failed_outlier_check" : "healthy"},
                       {"ejected", ejected},
                       {"timesEjected", h.times_ejected.load(std::memory_order_relaxed)},
                       {"consecutive5xx", h.consecutive_5xx.load(std::memory_order_relaxed)},
                       {"consecutiveGatewayFailure", h.consecutive_gateway.load(std::memory_order_relaxed)}});
      const auto& e = rt->cla->endpoints[i];
      auto& j = hosts.back();
      j["locality"] = e.locality.region + "/" + e.locality.zone + "/" + e.locality.sub_zone;
      if (e.locality_weight > 0) j["localityWeight"] = e.locality_weight;
      if (slow) {
        const double f = slow_start_factor(rt->cluster->policy, rt->joined_ms[i], now_ms);
        j["warming"] = f < 1.0;
        j["slowStartWeightFactor"] = f;
      }
    }
    c["hosts"] = std::move(hosts);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace waypoint::upstream
