// Envoy's per-cluster circuit breakers (CircuitBreakers.Thresholds, DEFAULT priority) and the
// cluster stats Istio users read (envoy_cluster_upstream_rq_pending_overflow{cluster_name=...},
// envoy_cluster_circuit_breakers_default_remaining_pending, ...).
//   connections  open upstream connections (HTTP/1.1 keep-alive connections or HBONE tunnel
//                streams, HTTP/2 sessions); at the limit a request waits as pending;
//   pending      requests waiting for a connection; at the limit -> 503 UO (overflow);
//   requests     active requests (every attempt; HTTP/2 streams count) -> 503 UO;
//   retries      concurrent retries; at the limit the retry is not attempted.
// Like Envoy's, the counts are per process (shared by all workers): relaxed atomics, a
// check-then-increment that may overshoot by one per racing worker, never a lock. Limits are
// read from the request's snapshot on every call, so a new DestinationRule applies to the
// live counts. A limit of 0 admits nothing (Envoy's meaning).
// Threading: any worker; ClusterStats pointers are set once at creation (control thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/admin/metrics.h"
#include "waypoint/route_model.h"

namespace waypoint::upstream {

// Series of one cluster (all may be null: unit tests without a registry).
struct ClusterStats {
  common::metrics::Counter* rq_pending_overflow = nullptr;
  common::metrics::Counter* cx_overflow = nullptr;
  common::metrics::Counter* rq_retry_overflow = nullptr;
  common::metrics::Gauge* remaining_cx = nullptr;
  common::metrics::Gauge* remaining_pending = nullptr;
  common::metrics::Gauge* remaining_rq = nullptr;
  common::metrics::Gauge* remaining_retries = nullptr;
  common::metrics::Gauge* cx_active = nullptr;
  common::metrics::Gauge* rq_active = nullptr;
  common::metrics::Gauge* rq_pending_active = nullptr;
  common::metrics::Gauge* ejections_active = nullptr;
  common::metrics::Counter* ejections_enforced_total = nullptr;
  common::metrics::Counter* ejections_enforced_5xx = nullptr;
  common::metrics::Counter* ejections_enforced_gateway = nullptr;
  common::metrics::Counter* ejections_detected_5xx = nullptr;
  common::metrics::Counter* ejections_detected_gateway = nullptr;
  common::metrics::Counter* ejections_overflow = nullptr;
};

// The families behind ClusterStats, registered once per process (Telemetry owns one).
class ClusterMetrics {
 public:
  explicit ClusterMetrics(common::metrics::Registry& registry);
  // Control thread (takes the families' mutexes): the series of one cluster.
  ClusterStats stats_for(const std::string& cluster_name);

 private:
  common::metrics::Registry& registry_;
};

class CircuitBreaker {
 public:
  enum class Kind : uint8_t { Connections, Pending, Requests, Retries };

  explicit CircuitBreaker(const ClusterStats* stats) : stats_(stats) {}

  // true = admitted (count taken; pair with release()); false = at the limit (the matching
  // overflow counter is incremented: cx_overflow, rq_pending_overflow for pending and requests
  // as Envoy's pool reports both, rq_retry_overflow).
  // `count_overflow` false: a re-check (a pending request polling for a connection) that
  // must not count the same overflow twice.
  bool try_acquire(Kind k, const CircuitBreakerThresholds& t, bool count_overflow = true);
  void release(Kind k, const CircuitBreakerThresholds& t);
  uint64_t count(Kind k) const { return slot(k).load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t>& slot(Kind k) { return counts_[static_cast<size_t>(k)]; }
  const std::atomic<uint64_t>& slot(Kind k) const { return counts_[static_cast<size_t>(k)]; }
  void publish(Kind k, uint64_t now, const CircuitBreakerThresholds& t);
  std::atomic<uint64_t> counts_[4] = {};
  const ClusterStats* stats_;
};

uint32_t limit_of(CircuitBreaker::Kind k, const CircuitBreakerThresholds& t);

// RAII hold on one breaker count (moves; releases once).
class BreakerHold {
 public:
  BreakerHold() = default;
  BreakerHold(std::shared_ptr<void> owner, CircuitBreaker* cb, CircuitBreaker::Kind k, CircuitBreakerThresholds t)
      : owner_(std::move(owner)), cb_(cb), kind_(k), t_(t) {}
  BreakerHold(BreakerHold&& o) noexcept { *this = std::move(o); }
  BreakerHold& operator=(BreakerHold&& o) noexcept {
    if (this != &o) {
      reset();
      owner_ = std::move(o.owner_);
      cb_ = o.cb_;
      kind_ = o.kind_;
      t_ = o.t_;
      o.cb_ = nullptr;
    }
    return *this;
  }
  ~BreakerHold() { reset(); }
  void reset() {
    if (cb_) cb_->release(kind_, t_);
    cb_ = nullptr;
    owner_.reset();
  }
  explicit operator bool() const { return cb_ != nullptr; }

 private:
  std::shared_ptr<void> owner_;  // keeps the breaker alive (its cluster state)
  CircuitBreaker* cb_ = nullptr;
  CircuitBreaker::Kind kind_ = CircuitBreaker::Kind::Requests;
  CircuitBreakerThresholds t_;
};

}  // namespace waypoint::upstream
