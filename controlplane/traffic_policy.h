// DestinationRule traffic policy (networking.istio.io TrafficPolicy, waypoint-facts §1.4) as the
// loader parsed it, and istiod's rule for which policy applies to one cluster: the top-level
// policy, replaced by its portLevelSettings entry for the cluster's port, then the subset's
// policy (itself replaced by the subset's portLevelSettings entry) merged over it component by
// component (connectionPool, loadBalancer, outlierDetection, tls), as
// MergeSubsetTrafficPolicy does. A port-level entry never inherits: components it omits are
// unset, i.e. Istio's defaults.
//
// Threading: plain values, built by the loader and read by the waypoint compiler.
// Invariants: every optional is "unset" exactly when the user did not write the field (istiod's
// "0 means unset" integers are kept as 0 and handled where istiod handles them); durations
// are milliseconds; only what the waypoint implements can be represented (the loader refuses
// the rest, naming the field).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace controlplane {

// LoadBalancerSettings.ConsistentHashLB: exactly one hash key.
struct DrConsistentHash {
  enum class Key : uint8_t { Header, Cookie, SourceIp, QueryParameter };
  enum class Table : uint8_t { Default, RingHash, Maglev };
  Key key = Key::Header;
  std::string name;         // header (lower case), cookie or query parameter name
  std::string cookie_path;  // httpCookie.path
  std::optional<uint64_t> cookie_ttl_ms;
  Table table = Table::Default;    // ringHash / maglev given, or neither
  uint64_t table_size = 0;         // ringHash.minimumRingSize or maglev.tableSize; 0 = unset
  uint64_t minimum_ring_size = 0;  // deprecated top-level minimumRingSize; 0 = unset (1024)
};

// LocalityLoadBalancerSetting.
struct DrLocalityLb {
  struct Distribute {
    std::string from;                    // "region/zone/subzone", '*' allowed
    std::map<std::string, uint32_t> to;  // locality -> weight
  };
  struct Failover {
    std::string from, to;  // regions
  };
  std::optional<bool> enabled;
  std::vector<Distribute> distribute;
  std::vector<Failover> failover;
  std::vector<std::string> failover_priority;  // "label" or "label=value"
};

struct DrLoadBalancer {
  std::string simple;  // "" (unset) | ROUND_ROBIN | LEAST_REQUEST | LEAST_CONN | RANDOM
  std::optional<DrConsistentHash> consistent_hash;
  std::optional<DrLocalityLb> locality;
  std::optional<uint64_t> warmup_ms;  // warmupDurationSecs (or warmup.duration)
};

struct DrTcpKeepalive {
  uint32_t probes = 0;  // 0 = unset
  std::optional<uint64_t> time_ms, interval_ms;
};

// ConnectionPoolSettings. Integers follow istiod: 0 (or negative) = unset.
struct DrConnectionPool {
  int32_t max_connections = 0;
  std::optional<uint64_t> connect_timeout_ms;
  std::optional<DrTcpKeepalive> tcp_keepalive;
  std::optional<uint64_t> tcp_idle_timeout_ms;
  int32_t http1_max_pending_requests = 0;
  int32_t http2_max_requests = 0;
  int32_t max_requests_per_connection = 0;
  int32_t max_retries = 0;
  std::optional<uint64_t> http_idle_timeout_ms;
  std::string h2_upgrade_policy;  // "" | DEFAULT | DO_NOT_UPGRADE | UPGRADE
  bool use_client_protocol = false;
  int32_t max_concurrent_streams = 0;
};

// OutlierDetection (consecutive-error ejection only, as istiod writes it).
struct DrOutlierDetection {
  std::optional<uint32_t> consecutive_5xx_errors;
  std::optional<uint32_t> consecutive_gateway_errors;
  std::optional<uint64_t> interval_ms, base_ejection_time_ms;
  int32_t max_ejection_percent = 0;  // 0 = unset (Envoy's 10)
  int32_t min_health_percent = 0;    // becomes healthy_panic_threshold (0 = panic mode off)
};

// One TrafficPolicy's components (no port-level settings).
struct DrPolicyComponents {
  std::optional<DrConnectionPool> connection_pool;
  std::optional<DrLoadBalancer> load_balancer;
  std::optional<DrOutlierDetection> outlier_detection;
  std::optional<std::string> tls_mode;  // DISABLE | ISTIO_MUTUAL (no-ops inside HBONE)
  bool empty() const { return !connection_pool && !load_balancer && !outlier_detection && !tls_mode; }
};

struct DrTrafficPolicy {
  DrPolicyComponents base;
  std::vector<std::pair<uint16_t, DrPolicyComponents>> port_level;  // port.number -> policy
};

// What applies to the cluster of `port` (and `subset` policy, when the destination names a
// subset that has one), merged as istiod's MergeSubsetTrafficPolicy.
DrPolicyComponents effective_traffic_policy(const std::optional<DrTrafficPolicy>& top,
                                            const std::optional<DrTrafficPolicy>& subset, uint16_t port);

}  // namespace controlplane
