// Endpoint choice for one cluster on one worker: Envoy's LEAST_REQUEST (power of two choices
// over the endpoints' active requests, weighted by load_balancing_weight), ROUND_ROBIN,
// RANDOM, and RING_HASH / MAGLEV keyed by the request's hash (no hash -> random, as Envoy).
// Health: Unhealthy/Draining/Timeout endpoints and hosts ejected by outlier detection are
// skipped unless fewer than the panic threshold are usable (then all are candidates, as
// Envoy's panic mode). Priorities (pick(ClusterRuntime...)): each level's health is
// min(100, overprovisioning x healthy / hosts) %; levels take load in order (0 first), so
// traffic spills to priority 1 as priority 0 loses healthy hosts; when the levels together
// are below 100 % the loads are normalised, and below the panic threshold all hosts are used.
// Hosts in `avoid` (previous_hosts retry predicate) are skipped while another candidate exists.
// Locality weights (locality_weighted_lb_config, pick(ClusterRuntime...) only): within the
// chosen level a locality is drawn by load_balancing_weight x its availability
// (min(1, overprovisioning x usable / hosts)), then a host within it; not in panic mode and
// not for RING_HASH / MAGLEV (as the hash tables span the whole level).
// Slow start (slow_start_config, ROUND_ROBIN / LEAST_REQUEST, pick(ClusterRuntime...) only): a
// host that joined after the cluster's first endpoints and is younger than the window has its
// weight scaled by slow_start_factor(); while any candidate is scaled, ROUND_ROBIN becomes a
// weighted rotation (a golden-ratio sequence over the cumulative weights: deterministic, spread
// evenly) and LEAST_REQUEST draws by weight / (active + 1), Envoy's weighted form with
// active_request_bias 1. With every factor at 1 the plain rotation / P2C applies.
// Threading: one balancer per worker (Envoy's LB is per worker too); no locks. Active request
// counts are this worker's view, keyed by "ip:port".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "waypoint/route_model.h"
#include "waypoint/router/random.h"

namespace waypoint::upstream {

struct ClusterRuntime;

std::string endpoint_key(const Endpoint& e);  // "ip:port" ([v6]:port)

// Envoy's slow-start weight factor for a host that joined at `joined_ms` (kNotNew: never in
// slow start): 1 outside the window, else max(min_weight_percent, (max(age, 1 s) / window)^(1 /
// aggression)) with Envoy's defaults 10 % and 1.0 (the model has no fields for either).
double slow_start_factor(const ClusterPolicy& policy, int64_t joined_ms, int64_t now_ms);

class LoadBalancer {
 public:
  // nullptr = no usable endpoint (503 UH).
  const Endpoint* pick(const Cluster& cluster, std::span<const Endpoint> endpoints, router::Random& random,
                       std::span<const std::string> avoid = {});
  // With the cluster's runtime (priorities, ejections, hash tables, localities, join times).
  // nullptr = 503 UH. `now_ms`: the steady clock for slow start (unset: read it when needed).
  const Endpoint* pick(const ClusterRuntime& rt, router::Random& random, std::optional<uint64_t> hash,
                       std::span<const std::string> avoid = {}, std::optional<int64_t> now_ms = std::nullopt);

  // Bracket every request sent to `key` (least-request bookkeeping).
  void started(const std::string& key) { ++active_[key]; }
  void finished(const std::string& key);
  uint64_t active(const std::string& key) const;

 private:
  // `keys`: each candidate's "ip:port" when the caller has them (the cluster runtime's), else
  // null and they are formatted on demand.
  const Endpoint* choose(const Cluster& cluster, std::span<const Endpoint* const> candidates,
                         const std::string* const* keys, router::Random& random);
  std::unordered_map<std::string, uint64_t> active_;
  std::unordered_map<std::string, uint64_t> rr_next_;  // by cluster name
};

}  // namespace waypoint::upstream
