// The waypoint's configuration: what the data path reads (ConfigSnapshot) and where it comes
// from (ConfigSource). A snapshot holds the Envoy resources istiod (or any Envoy xDS server)
// sends a waypoint, converted to route_model types, plus the workload model used to look up
// endpoint pods (HBONE or plain TCP) and peers for telemetry:
//   routes     RouteConfiguration by name: `inbound-vip|<port>|http|<hostname>` per service port
//              (waypoint); `http.<port>` per gateway port (router, the ingress gateway role);
//   clusters   Cluster by name: `inbound-vip|<port>|http|<hostname>`, `...|http/<subset>|...`;
//   endpoints  ClusterLoadAssignment by cluster_name (EDS), endpoints podIP:targetPort;
//   workloads  istio.workload.Address (workloads and services);
//   listeners  Listener by name (router only: the gateway's ports, TLS and SNI).
//
// make_xds_config_source() subscribes (delta ADS, wildcard, as ztunnel does) to the four types
// through common/xds with node id `<waypoint|router>~<INSTANCE_IP>~<POD_NAME>.<POD_NAMESPACE>~
// <POD_NAMESPACE>.svc.cluster.local`. Every resource is validated when it arrives, used or not
// (waypoint/xds/convert.h): one that carries a field the waypoint does not implement is NACKed
// with the field named, the rest of the response applies, and the rejected name keeps its last
// good value. Nothing is published before the first response of every type has been applied
// (readiness: on_synced then fires once); afterwards every applied response publishes a new
// snapshot. A disconnect clears nothing.
//
// Threading: on_snapshot and on_synced are posted to the `control` io_context (in that order
// for the first sync); snapshots are immutable and may be handed to workers as they are
// (std::atomic<std::shared_ptr<const ConfigSnapshot>>). start()/stop()/status() from any
// thread; stop() is idempotent and joins the xDS thread.
// This header includes neither protobuf nor gRPC.
#pragma once

#include <boost/asio/io_context.hpp>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/grpc/channel.h"
#include "waypoint/ingress/listener_model.h"
#include "waypoint/route_model.h"

namespace common::metrics {
class Registry;
}
namespace ztunnel {
class Snapshot;  // the shared mesh model (common/state/snapshot.h)
}

namespace waypoint {

struct ConfigSnapshot {
  uint64_t version = 0;  // 1, 2, ... per publication
  std::map<std::string, std::shared_ptr<const RouteConfig>, std::less<>> routes;
  std::map<std::string, std::shared_ptr<const Cluster>, std::less<>> clusters;
  std::map<std::string, std::shared_ptr<const ClusterLoadAssignment>, std::less<>> endpoints;
  std::shared_ptr<const ztunnel::Snapshot> workloads;  // never null once published
  // Ingress role only (PROXY_TYPE=router): Listener by name (`0.0.0.0_<port>`).
  std::map<std::string, std::shared_ptr<const GatewayListener>, std::less<>> listeners;

  const RouteConfig* route(std::string_view name) const {
    auto it = routes.find(name);
    return it == routes.end() ? nullptr : it->second.get();
  }
  const Cluster* cluster(std::string_view name) const {
    auto it = clusters.find(name);
    return it == clusters.end() ? nullptr : it->second.get();
  }
  // The endpoints of `c`: its inline load_assignment, else the EDS resource named by
  // eds_service_name (or the cluster's name). Null when none has arrived (no healthy upstream).
  const ClusterLoadAssignment* endpoints_of(const Cluster& c) const {
    if (c.load_assignment) return &*c.load_assignment;
    auto it = endpoints.find(c.eds_service_name.empty() ? c.name : c.eds_service_name);
    return it == endpoints.end() ? nullptr : it->second.get();
  }
};
using ConfigSnapshotPtr = std::shared_ptr<const ConfigSnapshot>;

class ConfigSource {
 public:
  virtual ~ConfigSource() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  // The "xds" section of /config_dump: {address, nodeId, connected, synced, connects, responses,
  // resources: {routes, clusters, endpoints, workloads, services}, lastNack, lastDisconnect}.
  virtual nlohmann::json status() const = 0;
};

struct XdsConfigOptions {
  common::grpcx::GrpcEndpoint endpoint;  // XDS_ADDRESS, XDS_ROOT_CA, AUTH_TOKEN, ...
  std::string instance_ip;               // INSTANCE_IP ("" -> 1.1.1.1 as upstream)
  std::string pod_name, pod_namespace, node_name;
  std::string proxy_type = "waypoint";  // "router" for the ingress gateway role
  std::vector<std::pair<std::string, std::string>> istio_meta, istio_meta_json;
};

// The node id the waypoint presents (see above).
std::string waypoint_node_id(const XdsConfigOptions& options);

std::unique_ptr<ConfigSource> make_xds_config_source(const XdsConfigOptions& options,
                                                     common::metrics::Registry& registry,
                                                     boost::asio::io_context& control,
                                                     std::function<void(ConfigSnapshotPtr)> on_snapshot,
                                                     std::function<void()> on_synced);

}  // namespace waypoint
