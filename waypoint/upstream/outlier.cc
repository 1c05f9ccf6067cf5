#include "waypoint/upstream/outlier.h"

#include <algorithm>

namespace waypoint::upstream {

uint16_t outlier_code(AttemptResult r, uint16_t status) {
  switch (r) {
    case AttemptResult::Response:
      return status;
    case AttemptResult::ConnectFailed:
    case AttemptResult::Reset:
      return 503;
    case AttemptResult::Timeout:
      return 504;
  }
  return 0;
}

bool ejection_allowed(uint32_t active, size_t hosts, uint32_t max_ejection_percent) {
  if (hosts == 0) return false;
  return 100.0 * (static_cast<double>(active) + 1.0) / static_cast<double>(hosts) <=
         static_cast<double>(max_ejection_percent);
}

Duration ejection_time(const OutlierDetection& od, uint32_t multiplier) {
  const int64_t base = od.base_ejection_time.count();
  const int64_t cap = std::max(od.max_ejection_time.count(), base);
  const int64_t t = base * static_cast<int64_t>(std::max<uint32_t>(1, multiplier));
  return Duration(std::min(t, cap));
}

namespace {

bool eject(HostOutlier& host, OutlierCounters& counters, const OutlierDetection& od, size_t hosts, int64_t now_ms,
           const ClusterStats* stats) {
  uint32_t active = counters.active.load(std::memory_order_relaxed);
  do {
    if (!ejection_allowed(active, hosts, od.max_ejection_percent)) {
      if (stats && stats->ejections_overflow) stats->ejections_overflow->inc();
      return false;
    }
  } while (!counters.active.compare_exchange_weak(active, active + 1, std::memory_order_relaxed));
  bool expected = false;
  if (!host.ejected.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    counters.active.fetch_sub(1, std::memory_order_relaxed);  // another worker got there first
    return false;
  }
  host.ejected_at_ms.store(now_ms, std::memory_order_relaxed);
  // The multiplier stops growing once base x multiplier reaches the cap.
  const uint32_t m = host.multiplier.load(std::memory_order_relaxed);
  const int64_t base = std::max<int64_t>(1, od.base_ejection_time.count());
  if (base * static_cast<int64_t>(m) < std::max(od.max_ejection_time.count(), base)) {
    host.multiplier.store(m + 1, std::memory_order_relaxed);
  }
  host.times_ejected.fetch_add(1, std::memory_order_relaxed);
  if (stats) {
    if (stats->ejections_active) stats->ejections_active->set(counters.active.load(std::memory_order_relaxed));
    if (stats->ejections_enforced_total) stats->ejections_enforced_total->inc();
  }
  return true;
}

}  // namespace

Detected report(HostOutlier& host, OutlierCounters& counters, const OutlierDetection& od, uint16_t code, size_t hosts,
                int64_t now_ms, uint64_t roll, const ClusterStats* stats, bool& ejected) {
  ejected = false;
  if (code == 0 || host.removed.load(std::memory_order_relaxed)) return Detected::None;
  if (code < 500 || code > 599) {
    host.consecutive_5xx.store(0, std::memory_order_relaxed);
    host.consecutive_gateway.store(0, std::memory_order_relaxed);
    return Detected::None;
  }
  // An ejected host still answering in-flight requests changes nothing.
  if (host.ejected.load(std::memory_order_relaxed)) return Detected::None;
  Detected fired = Detected::None;
  if (code == 502 || code == 503 || code == 504) {
    const uint32_t n = host.consecutive_gateway.fetch_add(1, std::memory_order_relaxed) + 1;
    if (od.consecutive_gateway_failure > 0 && n == od.consecutive_gateway_failure) {
      host.consecutive_gateway.store(0, std::memory_order_relaxed);
      if (stats && stats->ejections_detected_gateway) stats->ejections_detected_gateway->inc();
      if (roll % 100 < od.enforcing_consecutive_gateway_failure && eject(host, counters, od, hosts, now_ms, stats)) {
        if (stats && stats->ejections_enforced_gateway) stats->ejections_enforced_gateway->inc();
        ejected = true;
      }
      fired = Detected::ConsecutiveGateway;
    }
  } else {
    host.consecutive_gateway.store(0, std::memory_order_relaxed);
  }
  const uint32_t n = host.consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1;
  if (od.consecutive_5xx > 0 && n == od.consecutive_5xx) {
    host.consecutive_5xx.store(0, std::memory_order_relaxed);
    if (stats && stats->ejections_detected_5xx) stats->ejections_detected_5xx->inc();
    if (!ejected && roll / 100 % 100 < od.enforcing_consecutive_5xx &&
        eject(host, counters, od, hosts, now_ms, stats)) {
      if (stats && stats->ejections_enforced_5xx) stats->ejections_enforced_5xx->inc();
      ejected = true;
    }
    if (fired == Detected::None) fired = Detected::Consecutive5xx;
  }
  return fired;
}

size_t sweep(std::span<HostOutlier* const> hosts, OutlierCounters& counters, const OutlierDetection& od, int64_t now_ms,
             const ClusterStats* stats) {
  size_t back = 0;
  for (HostOutlier* h : hosts) {
    if (!h) continue;
    if (h->ejected.load(std::memory_order_acquire)) {
      const int64_t since = now_ms - h->ejected_at_ms.load(std::memory_order_relaxed);
      if (since >= ejection_time(od, h->multiplier.load(std::memory_order_relaxed)).count()) {
        h->consecutive_5xx.store(0, std::memory_order_relaxed);
        h->consecutive_gateway.store(0, std::memory_order_relaxed);
        h->ejected.store(false, std::memory_order_release);
        uint32_t a = counters.active.load(std::memory_order_relaxed);
        while (a > 0 && !counters.active.compare_exchange_weak(a, a - 1, std::memory_order_relaxed)) {
        }
        ++back;
      }
    } else if (h->consecutive_5xx.load(std::memory_order_relaxed) == 0 &&
               h->consecutive_gateway.load(std::memory_order_relaxed) == 0) {
      uint32_t m = h->multiplier.load(std::memory_order_relaxed);
      if (m > 0) h->multiplier.store(m - 1, std::memory_order_relaxed);
    }
  }
  if (stats && stats->ejections_active) stats->ejections_active->set(counters.active.load(std::memory_order_relaxed));
  return back;
}

}  // namespace waypoint::upstream
