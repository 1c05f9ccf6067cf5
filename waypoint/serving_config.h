// ServingConfig: everything one request needs to be served, as one immutable snapshot the
// control thread publishes and workers load once per request (one atomic load):
//   - route configurations by name (`inbound-vip|<port>|http|<hostname>`, facts §3.3);
//   - clusters and their endpoints by cluster name (`inbound-vip|<port>|http[/<subset>]|<host>`);
//   - the mesh's workload/service model, to turn a CONNECT :authority (VIP:port) into a service
//     and an endpoint (podIP) into a workload (HBONE or plain TCP, its identity, labels).
// Whatever source fills it (xDS through wp-config's subscription, or tests building it in C++)
// hands over complete values; nothing here is mutated after publication.
// Threading: built on the control thread; read concurrently by all workers without locks.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "waypoint/route_model.h"
// TEMPORARY until the shared model library lands: the workload/service model is ztunnel's.
#include "ztunnel/state.h"

namespace waypoint {

struct ServingConfig {
  uint64_t version = 0;
  std::unordered_map<std::string, std::shared_ptr<const RouteConfig>> routes;
  std::unordered_map<std::string, std::shared_ptr<const Cluster>> clusters;
  // EDS answers by cluster (or eds_service_name); a cluster with an inline load_assignment
  // needs no entry here.
  std::unordered_map<std::string, std::shared_ptr<const ClusterLoadAssignment>> endpoints;
  ztunnel::SnapshotConstSharedPtr mesh = ztunnel::Snapshot::empty();

  const RouteConfig* find_route(std::string_view name) const;
  const Cluster* find_cluster(std::string_view name) const;
  // The cluster's endpoints: its EDS entry (by eds_service_name or name), else inline.
  const ClusterLoadAssignment* find_endpoints(const Cluster& cluster) const;
};

using ServingConfigPtr = std::shared_ptr<const ServingConfig>;

// Istio's names for a service port's resources at a waypoint (facts §3.3-3.4).
std::string http_route_name(uint16_t port, std::string_view hostname);  // inbound-vip|P|http|H
std::string tcp_cluster_name(uint16_t port, std::string_view hostname);  // inbound-vip|P|tcp|H

}  // namespace waypoint
