// Outlier detection by consecutive errors (Envoy's consecutive_5xx and
// consecutive_gateway_failure detectors, with locally originated errors folded into HTTP
// codes as Envoy does when split_external_local_origin_errors is off: connect failure and
// reset -> 503, timeout -> 504).
//   - Every attempt's result is reported on the worker that made it (report()): a 5xx bumps the
//     host's consecutive 5xx count (502/503/504 also the gateway count, any other 5xx resets
//     it), anything else resets both. Reaching a threshold is detected once; it is enforced
//     with the enforcing_* probability and only if ejection_allowed() (max_ejection_percent).
//   - An ejected host is skipped by the load balancer (unless the cluster panics) until the
//     control thread's sweep (every `interval`) finds that ejection_time() has elapsed.
//   - ejection_time(n) = base_ejection_time x n, n = the host's ejection multiplier (grows by
//     one per ejection, shrinks by one per sweep the host spends healthy), capped at
//     max(max_ejection_time, base_ejection_time).
// Threading: HostOutlier / OutlierCounters are atomics shared by all workers (no locks);
// sweep() runs on the control thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "waypoint/route_model.h"
#include "waypoint/upstream/circuit_breaker.h"

namespace waypoint::upstream {

struct HostOutlier {
  std::atomic<uint32_t> consecutive_5xx{0};
  std::atomic<uint32_t> consecutive_gateway{0};
  std::atomic<bool> ejected{false};
  std::atomic<int64_t> ejected_at_ms{0};
  std::atomic<uint32_t> multiplier{0};  // Envoy's ejection time back-off
  std::atomic<uint64_t> times_ejected{0};
  std::atomic<bool> removed{false};  // gone from the endpoint set: reports are ignored
};

struct OutlierCounters {
  std::atomic<uint32_t> active{0};  // hosts ejected now
};

// What one attempt tells the detector.
enum class AttemptResult : uint8_t { Response, ConnectFailed, Timeout, Reset };

// The HTTP code an attempt counts as (non-split mode); 0 = nothing to report.
uint16_t outlier_code(AttemptResult r, uint16_t status);

// Envoy's rule: eject while 100 x (active + 1) / hosts <= max_ejection_percent.
bool ejection_allowed(uint32_t active, size_t hosts, uint32_t max_ejection_percent);

Duration ejection_time(const OutlierDetection& od, uint32_t multiplier);

enum class Detected : uint8_t { None, Consecutive5xx, ConsecutiveGateway };

// Reports one result; returns the detector that fired (None when nothing did). `roll` is a
// random number for the enforcing percentage; `ejected` is set when the host was ejected now.
Detected report(HostOutlier& host, OutlierCounters& counters, const OutlierDetection& od, uint16_t code, size_t hosts,
                int64_t now_ms, uint64_t roll, const ClusterStats* stats, bool& ejected);

// The interval sweep over a cluster's hosts: un-ejects hosts whose time is up, decays the
// multiplier of healthy ones. Returns how many were returned to service.
size_t sweep(std::span<HostOutlier* const> hosts, OutlierCounters& counters, const OutlierDetection& od, int64_t now_ms,
             const ClusterStats* stats);

}  // namespace waypoint::upstream
