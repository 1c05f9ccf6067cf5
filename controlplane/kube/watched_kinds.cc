#include "controlplane/kube/kube_source.h"
#include "controlplane/mesh_config.h"

namespace controlplane::kube {

const std::vector<ResourceKind>& watched_kinds() {
  static const std::vector<ResourceKind> kinds{
      {"", "v1", "namespaces", "Namespace", false},
      {"", "v1", "nodes", "Node", false},
      {"", "v1", "pods", "Pod", true},
      {"", "v1", "services", "Service", true},
      {"", "v1", "serviceaccounts", "ServiceAccount", true},
      {"discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true},
      {"networking.istio.io", "v1", "workloadentries", "WorkloadEntry", true},
      {"networking.istio.io", "v1", "virtualservices", "VirtualService", true},
      {"networking.istio.io", "v1", "destinationrules", "DestinationRule", true},
      {"security.istio.io", "v1", "authorizationpolicies", "AuthorizationPolicy", true},
      {"security.istio.io", "v1", "peerauthentications", "PeerAuthentication", true},
      {"security.istio.io", "v1", "requestauthentications", "RequestAuthentication", true},
      {"networking.istio.io", "v1alpha3", "envoyfilters", "EnvoyFilter", true},
      {"ambient.dev", "v1alpha1", "ratelimitpolicies", "RateLimitPolicy", true},
      {"telemetry.istio.io", "v1", "telemetries", "Telemetry", true},
      {"gateway.networking.k8s.io", "v1", "gateways", "Gateway", true},
      {"gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", true},
      {"gateway.networking.k8s.io", "v1", "grpcroutes", "GRPCRoute", true},
      // Istio's Gateway (ingress role, with VirtualServices naming it in `gateways:`); shares the
      // plural with the Gateway API's: callers of objects_of("gateways") name the group.
      {"networking.istio.io", "v1", "gateways", "Gateway", true},
  };
  return kinds;
}

const std::vector<ScopedKind>& scoped_kinds() {
  static const std::vector<ScopedKind> kinds{
      {{"", "v1", "configmaps", "ConfigMap", true}, kSystemNamespace, std::string("metadata.name=") + kMeshConfigMapName},
  };
  return kinds;
}

}  // namespace controlplane::kube
