// libFuzzer target: the waypoint routing compiler (controlplane/waypoint_loader + waypoint_compiler)
// over arbitrary YAML appended to a fixed mesh (a waypoint Gateway, its pod, and a Service bound
// to it), so VirtualService / DestinationRule / HTTPRoute / GRPCRoute input reaches route
// generation. Must never crash, hang or leak an exception. Invariants on every input:
//   - every diagnostic says something;
//   - every resource is a google.protobuf.Any of the type it is filed under, whose payload
//     parses, and whose name is the one the message carries;
//   - the waypoint's converter (waypoint/xds/convert.h) runs on every resource without crashing
//     (it may reject, e.g. an RE2-invalid regex the user wrote: that is a NACK, not a crash).
// Linked against controlplane_lib and waypoint_xds by their CMakeLists (deferred calls).
#include <google/protobuf/any.pb.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controlplane/k8s_loader.h"
#include "controlplane/waypoint_compiler.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "waypoint/xds/convert.h"

namespace {

const char* kMesh = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: demo}
spec: {gatewayClassName: istio-waypoint}
---
apiVersion: v1
kind: Pod
metadata: {name: waypoint-0, namespace: demo, labels: {gateway.networking.k8s.io/gateway-name: waypoint}}
status: {podIP: 10.0.0.9}
---
apiVersion: v1
kind: Service
metadata: {name: calc, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: calc}
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 8080, targetPort: 80}, {name: grpc, port: 9090, targetPort: 9090}]
---
apiVersion: v1
kind: Pod
metadata: {name: calc-1, namespace: demo, labels: {app: calc, version: v1}}
status: {podIP: 10.0.1.1}
---
)";

template <typename M, typename Convert>
void check(const controlplane::XdsResourceMap& map, std::string_view type_url, Convert convert) {
  for (const auto& [name, r] : map) {
    google::protobuf::Any any;
    if (!any.ParseFromString(r.any) || any.type_url() != type_url) std::abort();
    M m;
    if (!m.ParseFromString(any.value())) std::abort();
    (void)convert(name, any.value());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input = kMesh;
  input.append(reinterpret_cast<const char*>(data), size);
  controlplane::Diagnostics diags;
  controlplane::ResourceSet set;
  controlplane::parse_manifests(input, "fuzz.yaml", set, diags);
  controlplane::remove_duplicates(set, diags);
  auto result = controlplane::compile_waypoints(set, controlplane::CompileOptions{});
  for (const auto* list : {&diags, &result.diagnostics}) {
    for (const auto& d : *list) {
      if (d.message.empty()) std::abort();
      (void)d.to_string();
    }
  }
  for (const auto& [gw, res] : result.by_gateway) {
    check<envoy::config::route::v3::RouteConfiguration>(res->routes, controlplane::kRouteConfigurationTypeUrl,
                                                        waypoint::xds::parse_route_configuration);
    for (const auto& [name, r] : res->routes) {
      if (name.rfind("inbound-vip|", 0) != 0) std::abort();
    }
    check<envoy::config::cluster::v3::Cluster>(res->clusters, controlplane::kClusterTypeUrl, waypoint::xds::parse_cluster);
    check<envoy::config::endpoint::v3::ClusterLoadAssignment>(
        res->endpoints, controlplane::kClusterLoadAssignmentTypeUrl, waypoint::xds::parse_load_assignment);
  }
  return 0;
}
