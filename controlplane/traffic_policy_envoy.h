// DestinationRule traffic policy (traffic_policy.h) -> the Envoy fields istiod writes for it on a
// waypoint's clusters, routes and endpoints (waypoint-facts §1.4, §4.4; istiod's
// cluster_traffic_policy.go, route.go and loadbalancer.go):
//   Cluster: connect_timeout, lb_policy + ring_hash/maglev/round_robin/least_request configs
//     (slow start), circuit_breakers (unset thresholds = 2^32-1), outlier_detection,
//     common_lb_config (healthy_panic_threshold, locality_weighted_lb_config),
//     upstream_connection_options (keepalive) and the HttpProtocolOptions extension;
//   Route: one hash_policy per consistentHash destination;
//   ClusterLoadAssignment: locality priorities relative to the waypoint pod (failover, only with
//     outlierDetection) or locality weights (distribute).
//
// Threading: pure functions. Protobuf types are only forward-declared here so the header stays
// light; callers (waypoint_compiler.cc, tests) include the generated headers they use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/model/model.h"
#include "controlplane/traffic_policy.h"
#include "controlplane/waypoint_resources.h"

namespace envoy::config::cluster::v3 {
class Cluster;
}
namespace envoy::config::route::v3 {
class RouteAction_HashPolicy;
}

namespace controlplane {

// How the Service port names its protocol (Istio's port-name convention).
enum class PortHttp : uint8_t { Http1, Http2, Auto };

// Everything policy-dependent on a waypoint cluster; the caller sets name, type and EDS.
void apply_cluster_policy(const DrPolicyComponents& policy, PortHttp port, envoy::config::cluster::v3::Cluster& c);

// The route hash policy for a destination whose cluster has `policy`; false = none.
bool route_hash_policy(const DrPolicyComponents& policy, envoy::config::route::v3::RouteAction_HashPolicy& out);

// Endpoints of one cluster, grouped by locality before the proto is written.
struct LbEndpointInfo {
  std::string address;
  uint16_t port = 0;
  bool healthy = true;
  Labels labels;  // the pod's labels augmented with istiod's topology labels
};
struct LocalityGroup {
  ztunnel::Locality locality;
  std::vector<LbEndpointInfo> endpoints;
  uint32_t priority = 0;
  uint32_t weight = 0;  // 0 = unset
};

// The waypoint pod the endpoints are computed for.
struct ProxyView {
  ztunnel::Locality locality;
  Labels labels;  // augmented as the endpoints' labels
};

// True when the endpoints of a cluster with `policy` depend on the proxy (locality or labels).
bool endpoints_depend_on_proxy(const DrPolicyComponents& policy);

// istiod's ApplyLocalityLoadBalancer: rewrites priorities / weights (and may split groups by
// failoverPriority labels or empty groups outside a distribute rule) in place.
void apply_locality_lb(const DrPolicyComponents& policy, const ProxyView& proxy, std::vector<LocalityGroup>& groups);

// istiod's AugmentLabels: topology.kubernetes.io/region|zone, topology.istio.io/subzone|cluster|
// network and kubernetes.io/hostname added to a workload's labels.
Labels augment_labels(const Labels& labels, const ztunnel::Locality& locality, const std::string& cluster_id,
                      const std::string& node, const std::string& network);

}  // namespace controlplane
