// Endpoint choice for one cluster on one worker: Envoy's LEAST_REQUEST (power of two choices
// over the endpoints' active requests, weighted by load_balancing_weight), ROUND_ROBIN and
// RANDOM. Hash policies (RING_HASH / MAGLEV) fall back to RANDOM for now.
// Health: Unhealthy/Draining/Timeout endpoints are skipped unless fewer than the panic
// threshold are usable (then all are candidates, as Envoy's panic mode). Hosts in `avoid`
// (previous_hosts retry predicate) are skipped while another candidate exists.
// Threading: one balancer per worker (Envoy's LB is per worker too); no locks. Active request
// counts are this worker's view, keyed by "ip:port".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>

#include "waypoint/route_model.h"
#include "waypoint/router/random.h"

namespace waypoint::upstream {

std::string endpoint_key(const Endpoint& e);  // "ip:port" ([v6]:port)

class LoadBalancer {
 public:
  // nullptr = no usable endpoint (503 UH).
  const Endpoint* pick(const Cluster& cluster, std::span<const Endpoint> endpoints, router::Random& random,
                       std::span<const std::string> avoid = {});

  // Bracket every request sent to `key` (least-request bookkeeping).
  void started(const std::string& key) { ++active_[key]; }
  void finished(const std::string& key);
  uint64_t active(const std::string& key) const;

 private:
  std::unordered_map<std::string, uint64_t> active_;
  std::unordered_map<std::string, uint64_t> rr_next_;  // by cluster name
};

}  // namespace waypoint::upstream
