// Traffic-policy state of the upstream clusters, in two layers:
//   ClusterState    one per cluster NAME for the life of the process: the circuit breaker
//                   counts, the outlier detector's per-host state (by "ip:port") and the
//                   cluster's stats series. It survives config snapshots, so a new EDS push
//                   or DestinationRule keeps the live counts and ejections.
//   ClusterRuntime  one per cluster per config snapshot: the snapshot's Cluster and endpoints,
//                   the ClusterState, each endpoint's HostOutlier, the endpoints grouped by
//                   priority, and the RING_HASH / MAGLEV tables of each priority. Rebuilt by
//                   the control thread when a snapshot is published (tables are reused when
//                   the endpoint set did not change), never per request.
// Slow start (slow_start_config): ClusterState remembers when each host joined the cluster
// (steady clock, ms). The hosts of the cluster's first non-empty endpoint set are not "new"
// (kNotNew); a host that appears later is new from the snapshot that first holds it, and a
// host that leaves and comes back is new again. The balancer scales a new host's weight while
// it is younger than the window (load_balancer.h).
// Locality weights (locality_weighted_lb_config): each priority level also holds its hosts
// grouped by locality with the locality's load_balancing_weight, built with the level.
// ClusterRuntimes maps names to runtimes; Proxy publishes it atomically next to the config
// snapshot. A request uses a runtime only when it was built from the very endpoints the
// request's snapshot holds (same ClusterLoadAssignment object), so a request never mixes
// two snapshots.
// Threading: build_runtimes() on the thread publishing config (one at a time);
// sweep_outliers() on one sweeper thread (Proxy: worker 0), touching atomics and the
// immutable runtime only; everything else is read by workers without locks.
#pragma once

#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "waypoint/config_source.h"
#include "waypoint/route_model.h"
#include "waypoint/upstream/circuit_breaker.h"
#include "waypoint/upstream/hash_ring.h"
#include "waypoint/upstream/outlier.h"

namespace waypoint::upstream {

struct ClusterState {
  explicit ClusterState(std::string n, ClusterStats s) : name(std::move(n)), stats(std::move(s)), breaker(&stats) {}
  const std::string name;
  const ClusterStats stats;
  CircuitBreaker breaker;
  OutlierCounters outlier;
  // build_runtimes() only (one config publisher at a time): the outlier state of every host
  // the cluster has now, so the next snapshot finds it again.
  std::map<std::string, std::shared_ptr<HostOutlier>, std::less<>> hosts;
  std::atomic<int64_t> next_sweep_ms{0};  // the sweeper's
  // build_runtimes() only: when each current host joined (kNotNew: one of the first hosts),
  // and whether the cluster has had endpoints yet.
  std::map<std::string, int64_t, std::less<>> joined_ms;
  bool seeded = false;
};

inline constexpr int64_t kNotNew = INT64_MIN;

// One locality of a priority level (locality-weighted clusters only).
struct LocalityMembers {
  uint32_t weight = 0;            // LocalityLbEndpoints.load_balancing_weight; 0 = unset
  std::vector<uint32_t> members;  // indices into the endpoints
};

struct PriorityLevel {
  uint32_t level = 0;
  std::vector<uint32_t> members;  // indices into the endpoints
  HashRing ring;                  // RING_HASH clusters
  MaglevTable maglev;             // MAGLEV clusters
  // Locality-weighted clusters with at least one weighted locality in this level; else empty
  // (every host of the level is a candidate, as Envoy without locality weights).
  std::vector<LocalityMembers> localities;
};

struct ClusterRuntime {
  std::shared_ptr<const Cluster> cluster;
  std::shared_ptr<const ClusterLoadAssignment> cla;  // null: no endpoints yet
  std::shared_ptr<ClusterState> state;
  std::vector<std::shared_ptr<HostOutlier>> hosts;  // aligned with cla->endpoints
  std::vector<std::string> keys;                    // "ip:port", aligned with cla->endpoints
  std::vector<PriorityLevel> priorities;            // ascending level
  std::vector<int64_t> joined_ms;                   // aligned with cla->endpoints; kNotNew or the join time
  bool any_new = false;                             // some host has a join time (slow start may apply)
};

struct ClusterRuntimes {
  std::map<std::string, std::shared_ptr<const ClusterRuntime>, std::less<>> by_name;
  const ClusterRuntime* find(std::string_view name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second.get();
  }
};

// `previous`: the runtimes being replaced (states and unchanged tables are carried over);
// `metrics`: where new clusters' stats series come from (may be null in tests); `now_ms`: the
// steady clock (hosts that join now get it as their join time; tests inject it).
std::shared_ptr<const ClusterRuntimes> build_runtimes(const ConfigSnapshot& snap, const ClusterRuntimes* previous,
                                                      ClusterMetrics* metrics, int64_t now_ms);
std::shared_ptr<const ClusterRuntimes> build_runtimes(const ConfigSnapshot& snap, const ClusterRuntimes* previous,
                                                      ClusterMetrics* metrics);

// The sweeper: sweeps every cluster with outlier detection whose interval is due. Returns
// the delay until the next sweep is due (nullopt: no cluster has outlier detection).
std::optional<Duration> sweep_outliers(const ClusterRuntimes& runtimes, int64_t now_ms);

// Milliseconds on the steady clock (the outlier timestamps).
int64_t steady_now_ms();

// The /config_dump view: per cluster the breaker counts and limits, and every host with its
// outlier state (`health_flags` "/failed_outlier_check" when ejected, as Envoy's /clusters),
// its locality weight and, for slow-start clusters, whether it is warming and its weight factor.
nlohmann::json dump_runtimes(const ClusterRuntimes& runtimes, int64_t now_ms);
nlohmann::json dump_runtimes(const ClusterRuntimes& runtimes);

}  // namespace waypoint::upstream
