// Istio's standard HTTP telemetry as a waypoint reports it (reporter="waypoint"):
// istio_requests_total, istio_request_duration_milliseconds, istio_request_bytes and
// istio_response_bytes with Istio's label set, and one access-log line per request on the
// "access" logger (plain key=value or JSON, following LOG_FORMAT) with the fields operators
// read: authority, method, path, protocol, response_code, response_flags, bytes, duration,
// upstream_cluster, upstream_host, x-request-id, user agent, source/destination identity.
// Missing label values are "unknown", as Istio's.
// Connections relayed at L4 (a TCP port, or bytes on an HTTP port that are not HTTP) get Istio's
// TCP telemetry instead: istio_tcp_connections_opened_total / _closed_total and
// istio_tcp_received_bytes_total / istio_tcp_sent_bytes_total (request_protocol="tcp", no
// response code), and one "connection complete" access-log line. A connection the network RBAC
// closes is counted opened and closed with response_flags="RBAC", as an HTTP deny is flagged.
// Dry-run (shadow) RBAC results: counters envoy_http_rbac_shadow_allowed / _shadow_denied
// (Envoy's http.<prefix>.rbac.<shadow_rules_stat_prefix>.shadow_allowed / .shadow_denied, the
// shadow prefix as label shadow_rules_stat_prefix) and, for a TCP connection,
// envoy_rbac_shadow_allowed / _shadow_denied; on the access-log line the RBAC filter's dynamic
// metadata Istio documents: <prefix>shadow_engine_result and <prefix>shadow_effective_policy_id.
// Threading: families registered on the control thread at start; record() from any worker
// (series lookups are lock-free on the steady path, see common/admin/metrics.h). Each thread
// also keeps the series of its last few distinct label sets per config snapshot (see
// RequestRecord::scope): the steady state of a request builds no label string.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/identity/identity.h"
#include "common/admin/metrics.h"
#include "common/model/model.h"
#include "waypoint/authz/rbac_model.h"
#include "waypoint/upstream/circuit_breaker.h"

namespace waypoint {

struct RequestRecord {
  // Istio's reporter label: "waypoint", or "source" at an ingress gateway (as Envoy gateways).
  const char* reporter = "waypoint";
  // Parties
  const ztunnel::Workload* src = nullptr;
  std::optional<common::Identity> src_identity;
  std::string src_addr;
  const ztunnel::Workload* dst = nullptr;
  std::optional<common::Identity> dst_identity;
  const ztunnel::Service* service = nullptr;
  std::string service_host;  // when no Service object (pod-addressed traffic)
  // Request
  std::string authority, method, path, protocol, request_id, user_agent;
  uint16_t response_code = 0;
  std::string response_flags = "-";
  std::string grpc_status;  // "" = not gRPC
  uint64_t request_bytes = 0, response_bytes = 0;
  std::chrono::steady_clock::duration duration{};
  std::string upstream_cluster, upstream_host, route_name;
  uint32_t attempts = 0;
  std::vector<authz::ShadowResult> rbac_shadow;  // dry-run policies evaluated for this request
  // The owner of src, dst and service (the config snapshot they were looked up in). While it
  // is the same object, those pointers name the same workloads, so record() may reuse the
  // series it found for an equal record instead of rebuilding 25 label values; null = no reuse.
  std::shared_ptr<const void> scope;
};

class Telemetry {
 public:
  explicit Telemetry(common::metrics::Registry& registry);
  void record(const RequestRecord& r);
  // One L4 connection (protocol "tcp"): opened when relaying starts or a decision ends it;
  // closed with its bytes (request_bytes = received from the client, response_bytes = sent to
  // it) and its flags, which also writes the access-log line.
  void tcp_opened(const RequestRecord& r);
  void tcp_closed(const RequestRecord& r);
  // Counts the shadow (dry-run) results of one request (record() does it) or TCP connection.
  void count_shadow(const std::vector<authz::ShadowResult>& shadow, bool tcp);
  // The per-cluster Envoy stats (circuit breakers, outlier detection) in the same registry.
  upstream::ClusterMetrics& cluster_metrics() { return clusters_; }

 private:
  common::metrics::CounterFamily& requests_;
  common::metrics::HistogramFamily& duration_;
  common::metrics::HistogramFamily& request_bytes_;
  common::metrics::HistogramFamily& response_bytes_;
  common::metrics::CounterFamily& tcp_opened_;
  common::metrics::CounterFamily& tcp_closed_;
  common::metrics::CounterFamily& tcp_received_;
  common::metrics::CounterFamily& tcp_sent_;
  common::metrics::CounterFamily& shadow_allowed_;
  common::metrics::CounterFamily& shadow_denied_;
  common::metrics::CounterFamily& tcp_shadow_allowed_;
  common::metrics::CounterFamily& tcp_shadow_denied_;
  upstream::ClusterMetrics clusters_;
  const uint64_t id_;  // process-unique: a thread's series cache never mixes two instances
};

std::vector<std::string> istio_http_labels(const RequestRecord& r);
// The TCP metrics' labels: the HTTP set without response_code and grpc_response_status.
std::vector<std::string> istio_tcp_labels(const RequestRecord& r);
// The access-log line's message (plain key=value pairs, or a JSON object in JSON format).
std::string format_access_line(const RequestRecord& r, bool json, std::string_view message = "request complete");

}  // namespace waypoint
