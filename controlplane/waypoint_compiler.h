// Waypoint compiler: the L7 routing objects of a ResourceSet (VirtualService, DestinationRule,
// HTTPRoute, GRPCRoute; waypoint_resources.h) -> the Envoy v3 resources each waypoint is served
// (waypoint-facts §3.3-3.4, named as istiod names them):
//   RouteConfiguration `inbound-vip|<port>|http|<hostname>` per HTTP port of every Service bound
//     to the waypoint; one virtual host `inbound|http|<port>` with domains ["*"];
//   Cluster `inbound-vip|<port>|http|<hostname>` (EDS over ADS) plus
//     `inbound-vip|<port>|http/<subset>|<hostname>` per DestinationRule subset, and
//     `outbound|<port>|<subset>|<hostname>` for destinations the waypoint does not own;
//   ClusterLoadAssignment per cluster: socket_address podIP:targetPort of the selected pods
//     (subset labels applied), HEALTHY when ready.
//
// Binding (as istiod): Gateways of class istio-waypoint whose istio.io/waypoint-for is service
// (the default) or all; a Service uses one through istio.io/use-waypoint (label or annotation,
// on the Service, else its Namespace; "none" opts out) and istio.io/use-waypoint-namespace.
// The waypoint's proxies are the Pods labelled gateway.networking.k8s.io/gateway-name=<gateway>
// in the Gateway's namespace; each is served under its proxy key "<pod>.<namespace>", the third
// part of the node id `waypoint~<ip>~<pod>.<ns>~<ns>.svc.cluster.local` (proxy_key_of_node()).
//
// Routes: VirtualServices in the Service's or the waypoint's namespace whose hosts match the
// Service (short name in the VS namespace, FQDN, `*.suffix`, `*`), gateways empty or "mesh",
// in (namespace, name) order, translated rule by rule (one Envoy route per match entry,
// translation stops after the first catch-all); else HTTPRoute/GRPCRoute rules attached to the
// Service, precedence-sorted as istiod does; else one default route `/` with Istio's default
// retry policy and a 0s timeout. Match entries with sourceLabels are dropped (Warning), as on
// Istio waypoints. Problems are Diagnostics naming file, object and field; the rest compiles.
//
// Ingress gateways (docs/ingress.md): each networking.istio.io Gateway compiles, as istiod
// names them, to a Listener `0.0.0.0_<port>` per server port (one plaintext chain, or one TLS
// chain per HTTPS server: SNI = its hosts, certificate `kubernetes://<credentialName>`), a
// RouteConfiguration `http.<port>` (HTTP) or `https.<port>.<portName>.<gw>.<ns>` (per HTTPS
// server) with a virtual host `<host>:<port>` (domains host, host:port) per host of a
// VirtualService bound to it (`gateways: [ns/name]`) that the server admits, routes as above,
// clusters `outbound|<port>|<subset>|<fqdn>` (a Service with istio.io/ingress-use-waypoint
// "true" and a waypoint: one endpoint, its VIP:port, which the gateway reaches through the
// waypoint). Served to the Pods its selector matches (node id `router~...`); listed in
// by_gateway as "ingress:<ns>/<name>". HTTP and HTTPS on one port: Error, HTTPS ignored.
//
// Ingress gateways (docs/ingress.md): each networking.istio.io Gateway compiles to one
// RouteConfiguration `http.<port>` per HTTP server port, a virtual host `<host>:<port>` (domains
// host, host:port) per host of a VirtualService bound to it (`gateways: [ns/name]`) that a
// server admits, routes as above, clusters `outbound|<port>|<subset>|<fqdn>` (a Service with
// istio.io/ingress-use-waypoint "true" and a waypoint: one endpoint, its VIP:port, which the
// gateway reaches through the waypoint). Served to the Pods its selector matches (node id
// `router~...`), listed in by_gateway as "ingress:<ns>/<name>". HTTPS servers: Warning, ignored.
//
// Threading: pure functions. Protobuf stays in the .cc; resources are serialized Any bytes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/model/xds/xds_resources.h"
#include "controlplane/compiler.h"
#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"

namespace ztunnel {
struct LocalConfig;
}

namespace controlplane {

// Serialised resources are the shared model's xDS type (common/model/xds).
using ztunnel::XdsResource;
using ztunnel::XdsResourceMap;

inline constexpr std::string_view kRouteConfigurationTypeUrl =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
inline constexpr std::string_view kClusterTypeUrl = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr std::string_view kClusterLoadAssignmentTypeUrl =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
inline constexpr std::string_view kListenerTypeUrl = "type.googleapis.com/envoy.config.listener.v3.Listener";

// What one waypoint (one Gateway) is served.
struct WaypointResources {
  std::string gateway;  // "namespace/name"
  XdsResourceMap routes, clusters, endpoints;
  XdsResourceMap listeners;  // ingress gateways only
};

struct WaypointCompileResult {
  // Gateway "namespace/name" -> its resources.
  std::map<std::string, std::shared_ptr<const WaypointResources>> by_gateway;
  // Proxy key "<pod>.<namespace>" -> the resources of the pod's Gateway.
  std::map<std::string, std::shared_ptr<const WaypointResources>, std::less<>> by_proxy;
  Diagnostics diagnostics;
};

// `workloads`: the compiled ztunnel workloads, whose locality (from their Node's labels) places
// pods for DestinationRule locality load balancing; null = every pod without a locality.
// Proxies of one Gateway share resources unless a cluster's endpoints depend on the pod's
// locality (failover with outlierDetection, distribute); then pods in one locality share a copy.
WaypointCompileResult compile_waypoints(const ResourceSet& resources, const CompileOptions& options,
                                        const ztunnel::LocalConfig* workloads = nullptr);

// "<pod>.<namespace>" from a node id "waypoint~<ip>~<pod>.<ns>~<ns>.svc.<domain>" (or "router~..."
// for an ingress gateway pod); "" when the id is neither.
std::string proxy_key_of_node(std::string_view node_id);

}  // namespace controlplane
