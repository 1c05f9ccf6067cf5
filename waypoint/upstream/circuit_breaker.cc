#include "waypoint/upstream/circuit_breaker.h"

namespace waypoint::upstream {

namespace {
constexpr const char* kLabel = "cluster_name";
}

ClusterMetrics::ClusterMetrics(common::metrics::Registry& registry) : registry_(registry) {}

ClusterStats ClusterMetrics::stats_for(const std::string& name) {
  ClusterStats s;
  auto counter = [&](const char* metric, const char* help) {
    return registry_.counter(metric, help, {kLabel}).get({name});
  };
  auto gauge = [&](const char* metric, const char* help) {
    return registry_.gauge(metric, help, {kLabel}).get({name});
  };
  s.rq_pending_overflow = counter("envoy_cluster_upstream_rq_pending_overflow",
                                  "Requests that overflowed the connection pool or request circuit breaker (503 UO)");
  s.cx_overflow =
      counter("envoy_cluster_upstream_cx_overflow", "Times the max_connections circuit breaker held a connection back");
  s.rq_retry_overflow =
      counter("envoy_cluster_upstream_rq_retry_overflow", "Retries not attempted because of the max_retries breaker");
  s.remaining_cx = gauge("envoy_cluster_circuit_breakers_default_remaining_cx", "Connections left before the breaker");
  s.remaining_pending =
      gauge("envoy_cluster_circuit_breakers_default_remaining_pending", "Pending requests left before the breaker");
  s.remaining_rq = gauge("envoy_cluster_circuit_breakers_default_remaining_rq", "Requests left before the breaker");
  s.remaining_retries =
      gauge("envoy_cluster_circuit_breakers_default_remaining_retries", "Retries left before the breaker");
  s.cx_active = gauge("envoy_cluster_upstream_cx_active", "Open upstream connections");
  s.rq_active = gauge("envoy_cluster_upstream_rq_active", "Active upstream requests");
  s.rq_pending_active = gauge("envoy_cluster_upstream_rq_pending_active", "Requests waiting for a connection");
  s.ejections_active =
      gauge("envoy_cluster_outlier_detection_ejections_active", "Hosts currently ejected by outlier detection");
  s.ejections_enforced_total =
      counter("envoy_cluster_outlier_detection_ejections_enforced_total", "Ejections enforced (all detectors)");
  s.ejections_enforced_5xx = counter("envoy_cluster_outlier_detection_ejections_enforced_consecutive_5xx",
                                     "Ejections enforced for consecutive 5xx");
  s.ejections_enforced_gateway =
      counter("envoy_cluster_outlier_detection_ejections_enforced_consecutive_gateway_failure",
              "Ejections enforced for consecutive gateway failures");
  s.ejections_detected_5xx = counter("envoy_cluster_outlier_detection_ejections_detected_consecutive_5xx",
                                     "Consecutive 5xx outliers detected (enforced or not)");
  s.ejections_detected_gateway =
      counter("envoy_cluster_outlier_detection_ejections_detected_consecutive_gateway_failure",
              "Consecutive gateway failure outliers detected (enforced or not)");
  s.ejections_overflow = counter("envoy_cluster_outlier_detection_ejections_overflow",
                                 "Ejections not enforced because of max_ejection_percent");
  return s;
}

uint32_t limit_of(CircuitBreaker::Kind k, const CircuitBreakerThresholds& t) {
  switch (k) {
    case CircuitBreaker::Kind::Connections:
      return t.max_connections;
    case CircuitBreaker::Kind::Pending:
      return t.max_pending_requests;
    case CircuitBreaker::Kind::Requests:
      return t.max_requests;
    case CircuitBreaker::Kind::Retries:
      return t.max_retries;
  }
  return 0;
}

void CircuitBreaker::publish(Kind k, uint64_t now, const CircuitBreakerThresholds& t) {
  if (!stats_) return;
  const uint64_t lim = limit_of(k, t);
  const int64_t remaining = now >= lim ? 0 : static_cast<int64_t>(lim - now);
  switch (k) {
    case Kind::Connections:
      if (stats_->remaining_cx) stats_->remaining_cx->set(remaining);
      if (stats_->cx_active) stats_->cx_active->set(static_cast<int64_t>(now));
      break;
    case Kind::Pending:
      if (stats_->remaining_pending) stats_->remaining_pending->set(remaining);
      if (stats_->rq_pending_active) stats_->rq_pending_active->set(static_cast<int64_t>(now));
      break;
    case Kind::Requests:
      if (stats_->remaining_rq) stats_->remaining_rq->set(remaining);
      if (stats_->rq_active) stats_->rq_active->set(static_cast<int64_t>(now));
      break;
    case Kind::Retries:
      if (stats_->remaining_retries) stats_->remaining_retries->set(remaining);
      break;
  }
}

bool CircuitBreaker::try_acquire(Kind k, const CircuitBreakerThresholds& t, bool count_overflow) {
  auto& c = slot(k);
  const uint64_t lim = limit_of(k, t);
  const uint64_t now = c.fetch_add(1, std::memory_order_relaxed) + 1;
  if (now > lim) {
    c.fetch_sub(1, std::memory_order_relaxed);
    if (stats_ && count_overflow) {
      common::metrics::Counter* overflow = nullptr;
      switch (k) {
        case Kind::Connections:
          overflow = stats_->cx_overflow;
          break;
        case Kind::Pending:
        case Kind::Requests:
          overflow = stats_->rq_pending_overflow;
          break;
        case Kind::Retries:
          overflow = stats_->rq_retry_overflow;
          break;
      }
      if (overflow) overflow->inc();
    }
    return false;
  }
  publish(k, now, t);
  return true;
}

void CircuitBreaker::release(Kind k, const CircuitBreakerThresholds& t) {
  auto& c = slot(k);
  uint64_t cur = c.load(std::memory_order_relaxed);
  // Never below zero, even if a count was taken before a state reset.
  while (cur > 0 && !c.compare_exchange_weak(cur, cur - 1, std::memory_order_relaxed)) {
  }
  publish(k, cur > 0 ? cur - 1 : 0, t);
}

}  // namespace waypoint::upstream
