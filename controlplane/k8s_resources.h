// The Kubernetes-style objects the control plane understands, after parsing and before
// compilation: a faithful, typed copy of the fields we use and nothing else. Parsing
// (k8s_loader.h) checks types and formats; meaning (ambient enrolment, waypoints, service
// selection, policy translation) is the compiler's job (compiler.h). Keeping the two apart lets
// a future xDS server re-run only the compiler when one object changes.
//
// Threading: plain values; a ResourceSet is built once per directory scan and then read-only.
// Invariants: every object has a non-empty name and namespace (defaulted to "default" like
// kubectl for namespaced kinds); IPs are canonical (ztunnel::parse_ip).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/model/model.h"
#include "controlplane/mesh_config.h"
#include "controlplane/ratelimit_policy.h"
#include "controlplane/telemetry.h"
#include "controlplane/waypoint_resources.h"

namespace controlplane {

using Labels = std::map<std::string, std::string>;

// Well-known labels and values (Istio / Gateway API spellings).
inline constexpr std::string_view kDataplaneModeLabel = "istio.io/dataplane-mode";
inline constexpr std::string_view kDataplaneModeAmbient = "ambient";
inline constexpr std::string_view kDataplaneModeNone = "none";
inline constexpr std::string_view kUseWaypointLabel = "istio.io/use-waypoint";
inline constexpr std::string_view kIngressUseWaypointLabel = "istio.io/ingress-use-waypoint";
inline constexpr std::string_view kUseWaypointNamespaceLabel = "istio.io/use-waypoint-namespace";
inline constexpr std::string_view kWaypointForLabel = "istio.io/waypoint-for";
inline constexpr std::string_view kGatewayNameLabel = "gateway.networking.k8s.io/gateway-name";
inline constexpr std::string_view kWaypointGatewayClass = "istio-waypoint";

// Where an object came from, for diagnostics.
struct SourceRef {
  std::string file;
  std::string object;  // "Pod demo/web-1"
};

struct OwnerReference {
  std::string kind;
  std::string name;
  bool controller = false;
};

struct ObjectMeta {
  std::string name;
  std::string ns;  // empty only for cluster-scoped kinds (Namespace)
  std::string uid;
  Labels labels;
  Labels annotations;
  std::vector<OwnerReference> owners;
  bool deleting = false;  // metadata.deletionTimestamp set
};

struct NamespaceObject {
  ObjectMeta meta;
  SourceRef src;
};

struct ServiceAccountObject {
  ObjectMeta meta;
  SourceRef src;
};

struct ContainerPort {
  std::string name;
  uint16_t port = 0;
};

struct PodObject {
  ObjectMeta meta;
  SourceRef src;
  std::string service_account{ztunnel::kDefaultServiceAccount};
  std::string node_name;
  bool host_network = false;
  std::vector<ContainerPort> ports;  // every container's ports, for named targetPorts
  std::vector<ztunnel::IpAddr> ips;  // status.podIPs, else status.podIP; may be empty
  std::string phase;                 // status.phase ("" when not given)
  bool ready = true;                 // false only when a Ready condition says "False"
};

// networking.istio.io WorkloadEntry: a VM or external endpoint as a workload.
struct WorkloadEntryObject {
  ObjectMeta meta;
  SourceRef src;
  std::optional<ztunnel::IpAddr> address;  // spec.address when it is an IP
  std::string hostname;                    // spec.address when it is not
  Labels labels;                           // spec.labels merged over metadata.labels
  std::string service_account{ztunnel::kDefaultServiceAccount};
  std::string network;
  std::map<std::string, uint16_t> ports;  // spec.ports: name -> number
  uint32_t weight = 0;                    // 0 = unset
  ztunnel::Locality locality;
};

struct ServicePort {
  std::string name;
  uint16_t port = 0;
  uint16_t target_port = 0;      // numeric targetPort (defaults to port); 0 when named
  std::string target_port_name;  // named targetPort, resolved per workload
};

struct ServiceObject {
  ObjectMeta meta;
  SourceRef src;
  std::optional<Labels> selector;            // nullopt: selects nothing (endpoints managed elsewhere)
  std::vector<ServicePort> ports;            // TCP ports only
  std::vector<ztunnel::IpAddr> cluster_ips;  // empty for headless / unassigned
  bool external_name = false;
};

// discovery.k8s.io/v1 EndpointSlice of a Service (label kubernetes.io/service-name). Only
// slices of Services matter: they give a Service without a selector its endpoints (compiled as
// istiod does: a pod targetRef joins that pod to the Service; any other address becomes a
// workload of its own). FQDN slices are kept (address_type) so the compiler can say why it
// skips them.
inline constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";
struct EndpointSlicePort {
  std::string name;   // the Service port's name ("" for an unnamed port)
  uint16_t port = 0;  // the endpoints' port (the Service's targetPort resolved)
};
struct EndpointSliceEndpoint {
  std::string path;                        // "endpoints[i]", for diagnostics
  std::vector<ztunnel::IpAddr> addresses;  // empty for FQDN slices
  bool ready = true;                       // conditions.ready; unset means ready (as the API says)
  std::string pod_ns, pod_name;            // targetRef when it is a Pod
};
struct EndpointSliceObject {
  ObjectMeta meta;
  SourceRef src;
  std::string service_name;  // metadata.labels[kubernetes.io/service-name]; "" = not a Service's
  std::string address_type;  // IPv4 | IPv6 | FQDN
  std::vector<EndpointSlicePort> ports;  // TCP ports with a port number
  std::vector<EndpointSliceEndpoint> endpoints;
};

// gateway.networking.k8s.io Gateway: class istio-waypoint (a waypoint) or istio (an ingress
// gateway, whose listeners are read strictly; other classes keep no listeners).
inline constexpr std::string_view kIngressGatewayClass = "istio";
struct GatewayObject {
  ObjectMeta meta;
  SourceRef src;
  std::string class_name;
  std::vector<K8sGatewayListener> listeners;             // class istio only (ingress_resources.h)
  uint16_t hbone_port = ztunnel::kDefaultHboneMtlsPort;  // the HBONE listener's port
  std::vector<ztunnel::IpAddr> addresses;                // status.addresses (IP type)
};

// security.istio.io AuthorizationPolicy, as written. Values stay strings (that is what the
// API says, e.g. ports are strings); the translator validates them, so it can decide per rule
// what an unusable value means for safety.
struct PolicySource {
  std::map<std::string, std::vector<std::string>> fields;  // "principals" -> values, ...
};
struct PolicyOperation {
  std::map<std::string, std::vector<std::string>> fields;  // "ports" -> values, ...
};
struct PolicyCondition {
  std::string key;
  std::vector<std::string> values;
  std::vector<std::string> not_values;
};
struct PolicyRule {
  std::vector<PolicySource> from;
  std::vector<PolicyOperation> to;
  std::vector<PolicyCondition> when;
};

// spec.targetRef / spec.targetRefs[i] (PolicyTargetReference); `path` names it for diagnostics.
struct PolicyTargetRef {
  std::string group, kind, name, ns;  // ns empty = the policy's namespace
  std::string path;
};

struct AuthorizationPolicyObject {
  ObjectMeta meta;
  SourceRef src;
  std::optional<Labels> selector;  // spec.selector.matchLabels ({} when selector is empty)
  bool has_target_ref = false;     // targetRef/targetRefs: bound to a waypoint, not ztunnel
  std::vector<PolicyTargetRef> target_refs;
  std::string provider;            // spec.provider.name (CUSTOM)
  std::string action = "ALLOW";    // ALLOW | DENY | AUDIT | CUSTOM
  std::vector<PolicyRule> rules;
};

// security.istio.io RequestAuthentication (JWT rules), as written. Only targetRefs ones are
// compiled (for waypoints, controlplane/waypoint_authn.h); selector ones are reported.
struct JwtRuleSpec {
  std::string path;  // "spec.jwtRules[i]"
  std::string issuer;
  std::vector<std::string> audiences;
  std::string jwks_uri;
  std::string jwks;
  std::vector<std::pair<std::string, std::string>> from_headers;  // name, prefix
  std::vector<std::string> from_params;
  std::string output_payload_to_header;
  bool forward_original_token = false;
};
struct RequestAuthenticationObject {
  ObjectMeta meta;
  SourceRef src;
  bool has_selector = false;
  std::vector<PolicyTargetRef> target_refs;
  std::vector<JwtRuleSpec> jwt_rules;
};

// Everything read from one directory scan.
struct ResourceSet {
  std::vector<NamespaceObject> namespaces;
  std::vector<ServiceAccountObject> service_accounts;
  std::vector<PodObject> pods;
  std::vector<WorkloadEntryObject> workload_entries;
  std::vector<ServiceObject> services;
  std::vector<EndpointSliceObject> endpoint_slices;
  std::vector<GatewayObject> gateways;
  std::vector<AuthorizationPolicyObject> policies;
  std::vector<RequestAuthenticationObject> request_authns;
  WaypointRouteObjects l7;  // VirtualService, DestinationRule, HTTPRoute, GRPCRoute (waypoint routing)
  std::vector<RateLimitPolicyObject> rate_limits;  // RateLimitPolicy + EnvoyFilter rate limits (waypoints)
  std::optional<MeshConfigObject> mesh;  // the ConfigMap istio-system/istio, when present
  std::vector<TelemetryObject> telemetries;  // telemetry.istio.io Telemetry (tracing): telemetry.h

  size_t size() const {
    return namespaces.size() + service_accounts.size() + pods.size() + workload_entries.size() + services.size() +
           endpoint_slices.size() + gateways.size() + policies.size() + request_authns.size() + l7.size();
  }
};

}  // namespace controlplane
