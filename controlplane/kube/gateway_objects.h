// What istiod's gateway deployment controller makes of a Gateway it manages, as pure functions
// of the Gateway (and, for the status, of the Service the API server returned), so that the
// WaypointDeployer only reads, applies and deletes, and the shapes are unit-tested without a
// server.
//
// Two classes are managed:
//   - `istio-waypoint`: a waypoint. ServiceAccount, Deployment and ClusterIP Service named after
//     the Gateway; HBONE (the Gateway's HBONE listener port, 15008 by default) + 15021; label
//     gateway.istio.io/managed=istio.io-mesh-controller; status address = the cluster IP.
//   - `istio`: an ingress gateway. Objects named `<gateway>-istio`; the waypoint binary with
//     PROXY_TYPE=router; one Service port per distinct listener port (named after the listener,
//     appProtocol its protocol) after `status-port` 15021; Service type from the Gateway's
//     annotation `networking.istio.io/service-type` (LoadBalancer by default); each HTTPS
//     listener's certificateRefs Secret mounted under GATEWAY_CREDENTIAL_DIR; label
//     gateway.istio.io/managed=istio.io-gateway-controller. Status addresses = the load
//     balancer's ingress IPs/hostnames (the cluster IP for a ClusterIP Service); while a
//     LoadBalancer has none, Programmed=False with reason AddressNotAssigned, as istiod.
//
// Every object is owned by its Gateway (ownerReferences) and labelled
// gateway.networking.k8s.io/gateway-name=<gateway>, which is how orphans are found.
//
// Threading: pure functions, no state.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace controlplane::kube {

struct WaypointDeployerOptions;

inline constexpr const char* kManagedLabel = "gateway.istio.io/managed";
inline constexpr const char* kManagedWaypoint = "istio.io-mesh-controller";
inline constexpr const char* kManagedIngress = "istio.io-gateway-controller";
inline constexpr const char* kGatewayNameLabel = "gateway.networking.k8s.io/gateway-name";
inline constexpr const char* kCredentialDir = "/etc/istio/gateway-credentials";

struct GatewayPort {
  std::string name;      // Service port name
  std::string protocol;  // lower-case appProtocol ("http", "https", "tcp")
  uint16_t port = 0;
};

struct ManagedGateway {
  enum class Kind { waypoint, ingress };
  Kind kind = Kind::waypoint;
  std::string ns, name, uid;
  int64_t generation = 1;
  std::string object_name;           // ServiceAccount / Deployment / Service name
  std::string service_type;          // ClusterIP, LoadBalancer or NodePort
  std::vector<GatewayPort> ports;    // waypoint: HBONE; ingress: one per distinct listener port
  std::vector<std::string> secrets;  // ingress: certificateRefs Secrets to mount
  nlohmann::json status;             // the Gateway's current status (object, maybe empty)

  const char* managed_value() const { return kind == Kind::ingress ? kManagedIngress : kManagedWaypoint; }
};

// The Gateway this controller manages, or nullopt: another class, being deleted, or no name.
std::optional<ManagedGateway> read_managed_gateway(const nlohmann::json& gateway);

struct GatewayObjects {
  nlohmann::json service_account, deployment, service;
};
GatewayObjects render_gateway_objects(const ManagedGateway& gw, const WaypointDeployerOptions& opt);

// The status to merge-patch onto the Gateway given the Service as the server returned it, or
// nullopt when there is nothing to say yet (no cluster IP allocated) or the Gateway's status
// already says it (each write comes back as a Gateway event: writing only changes keeps the
// controller from looping). `now` is the RFC 3339 lastTransitionTime of new conditions.
// `listeners`: the status.listeners to write too (route_status.h), null = leave them alone.
std::optional<nlohmann::json> gateway_status_patch(const ManagedGateway& gw, const nlohmann::json& service,
                                                   const std::string& now, const nlohmann::json& listeners = nullptr);

}  // namespace controlplane::kube
