// Waypoint compiler: Kubernetes YAML (VirtualService, DestinationRule, HTTPRoute, GRPCRoute)
// in, Envoy v3 resources out, named as istiod names them (controlplane/waypoint_compiler.h).
// Every compiled resource is also fed to the waypoint's own converter, which must accept it
// (the control plane never sends what the waypoint would NACK).
#include <catch2/catch.hpp>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "tests/unit/controlplane/waypoint_fixture.h"

using namespace controlplane;
using namespace wptest;
namespace route = envoy::config::route::v3;

namespace {

// The seeds' Calculate app behind a waypoint (seed-scenarios.md).
const std::string kMesh = std::string(kWaypointMeshPrefix) + R"(---
apiVersion: v1
kind: Pod
metadata: {name: waypoint-0, namespace: demo, labels: {gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none}}
spec: {serviceAccountName: waypoint}
status: {podIP: 10.0.0.9}
---
apiVersion: v1
kind: Service
metadata: {name: calculate, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: calculate}
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: cat, namespace: demo, labels: {app: calculate, version: cat-plus}}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: dog, namespace: demo, labels: {app: calculate, version: dog-multi}}
status: {podIP: 10.0.1.2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calculate, namespace: demo}
spec:
  host: calculate
  subsets:
  - {name: cat-with-plus, labels: {version: cat-plus}}
  - {name: dog-with-multi, labels: {version: dog-multi}}
)";

const char* kVirtualService = R"(
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: calculate, namespace: demo}
spec:
  hosts: [calculate]
  http:
  - name: dark-launch
    match:
    - headers: {version: {exact: dog}}
    route:
    - destination: {host: calculate, subset: dog-with-multi}
  - name: canary
    route:
    - destination: {host: calculate, subset: cat-with-plus}
      weight: 90
    - destination: {host: calculate.demo.svc.cluster.local, subset: dog-with-multi}
      weight: 10
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,503"}
    fault:
      abort: {httpStatus: 503, percentage: {value: 25}}
  - name: never-reached
    route:
    - destination: {host: calculate}
)";

const std::string kHost = "calculate.demo.svc.cluster.local";

}  // namespace

TEST_CASE("VirtualService + DestinationRule compile into istiod-named Envoy resources") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + "---\n" + kVirtualService);
  CHECK(c.load_diags.size() == 0);
  CHECK(c.result.diagnostics.empty());
  const auto& w = served(c);
  REQUIRE(c.result.by_proxy.count("waypoint-0.demo") == 1);
  CHECK(proxy_key_of_node("waypoint~10.0.0.9~waypoint-0.demo~demo.svc.cluster.local") == "waypoint-0.demo");
  CHECK(proxy_key_of_node("ztunnel~10.0.0.9~zt.istio-system~istio-system.svc.cluster.local") == "");

  REQUIRE(w.routes.count("inbound-vip|8080|http|" + kHost) == 1);
  auto rc = unpack<route::RouteConfiguration>(w.routes.at("inbound-vip|8080|http|" + kHost));
  REQUIRE(rc.virtual_hosts_size() == 1);
  CHECK(rc.virtual_hosts(0).name() == "inbound|http|8080");
  CHECK(rc.virtual_hosts(0).domains(0) == "*");
  // Translation stops after the first catch-all rule ("canary"): two routes.
  REQUIRE(rc.virtual_hosts(0).routes_size() == 2);
  const auto& dark = rc.virtual_hosts(0).routes(0);
  CHECK(dark.name() == "dark-launch");
  CHECK(dark.match().prefix() == "/");
  REQUIRE(dark.match().headers_size() == 1);
  CHECK(dark.match().headers(0).name() == "version");
  CHECK(dark.match().headers(0).string_match().exact() == "dog");
  CHECK(dark.route().cluster() == "inbound-vip|8080|http/dog-with-multi|" + kHost);
  CHECK(dark.route().timeout().seconds() == 0);                   // Istio writes 0s = disabled
  CHECK(dark.route().retry_policy().num_retries().value() == 2);  // Istio's default policy

  const auto& canary = rc.virtual_hosts(0).routes(1);
  REQUIRE(canary.route().weighted_clusters().clusters_size() == 2);
  CHECK(canary.route().weighted_clusters().clusters(0).name() == "inbound-vip|8080|http/cat-with-plus|" + kHost);
  CHECK(canary.route().weighted_clusters().clusters(0).weight().value() == 90);
  CHECK(canary.route().weighted_clusters().clusters(1).weight().value() == 10);
  CHECK(canary.route().timeout().seconds() == 2);
  CHECK(canary.route().max_grpc_timeout().seconds() == 2);
  const auto& rp = canary.route().retry_policy();
  CHECK(rp.num_retries().value() == 3);
  CHECK(rp.per_try_timeout().nanos() == 500'000'000);
  CHECK(rp.retry_on() == "5xx,retriable-status-codes");
  REQUIRE(rp.retriable_status_codes_size() == 1);
  CHECK(rp.retriable_status_codes(0) == 503);
  envoy::extensions::filters::http::fault::v3::HTTPFault fault;
  REQUIRE(canary.typed_per_filter_config().at("envoy.filters.http.fault").UnpackTo(&fault));
  CHECK(fault.abort().http_status() == 503);
  CHECK(fault.abort().percentage().numerator() == 250000);
  CHECK(fault.abort().percentage().denominator() == envoy::type::v3::FractionalPercent::MILLION);

  // Clusters: the service's and one per subset; endpoints filtered by subset labels.
  CHECK(w.clusters.size() == 3);
  auto cl = unpack<envoy::config::cluster::v3::Cluster>(w.clusters.at("inbound-vip|8080|http|" + kHost));
  CHECK(cl.type() == envoy::config::cluster::v3::Cluster::EDS);
  CHECK(cl.lb_policy() == envoy::config::cluster::v3::Cluster::LEAST_REQUEST);
  CHECK(cl.circuit_breakers().thresholds(0).max_requests().value() == 4294967295u);
  auto all =
      unpack<envoy::config::endpoint::v3::ClusterLoadAssignment>(w.endpoints.at("inbound-vip|8080|http|" + kHost));
  CHECK(all.endpoints(0).lb_endpoints_size() == 2);
  auto dog = unpack<envoy::config::endpoint::v3::ClusterLoadAssignment>(
      w.endpoints.at("inbound-vip|8080|http/dog-with-multi|" + kHost));
  REQUIRE(dog.endpoints(0).lb_endpoints_size() == 1);
  CHECK(dog.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().address() == "10.0.1.2");
  CHECK(dog.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().port_value() == 80);  // targetPort

  check_waypoint_accepts(w);
}

TEST_CASE("without routes a service gets Istio's default route") {
  auto c = compile_waypoint_yaml(kMesh);
  const auto& w = served(c);
  auto rc = unpack<route::RouteConfiguration>(w.routes.at("inbound-vip|8080|http|" + kHost));
  REQUIRE(rc.virtual_hosts(0).routes_size() == 1);
  const auto& r = rc.virtual_hosts(0).routes(0);
  CHECK(r.match().prefix() == "/");
  CHECK(r.route().cluster() == "inbound-vip|8080|http|" + kHost);
  CHECK(r.route().retry_policy().retry_on() ==
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
  CHECK(r.route().retry_policy().retry_host_predicate(0).name() == "envoy.retry_host_predicates.previous_hosts");
  check_waypoint_accepts(w);
}

TEST_CASE("an invalid VirtualService is reported with file, object and field; the rest compiles") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + R"(---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: typo, namespace: demo}
spec:
  hosts: [calculate]
  http:
  - route: [{destination: {host: calculate}}]
    retires: {attempts: 3}
)");
  REQUIRE(c.load_diags.size() == 1);
  CHECK(c.load_diags[0].to_string() ==
        "error: mesh.yaml: VirtualService demo/typo: spec.http[0].retires: unknown field; object ignored");
  // The service still compiles (default route).
  const auto& w = served(c);
  CHECK(unpack<route::RouteConfiguration>(w.routes.at("inbound-vip|8080|http|" + kHost))
            .virtual_hosts(0)
            .routes(0)
            .name() == "default");
}

TEST_CASE("sourceLabels match entries are dropped at a waypoint, with a warning") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + R"(---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: calculate, namespace: demo}
spec:
  hosts: [calculate.demo.svc.cluster.local]
  http:
  - match: [{sourceLabels: {app: client}}, {uri: {prefix: /api}, ignoreUriCase: true}]
    route: [{destination: {host: calculate}}]
)");
  REQUIRE(c.result.diagnostics.size() == 1);
  CHECK(c.result.diagnostics[0].field == "spec.http[0].match[0].sourceLabels");
  auto rc = unpack<route::RouteConfiguration>(served(c).routes.at("inbound-vip|8080|http|" + kHost));
  REQUIRE(rc.virtual_hosts(0).routes_size() == 1);
  CHECK(rc.virtual_hosts(0).routes(0).match().prefix() == "/api");
  CHECK_FALSE(rc.virtual_hosts(0).routes(0).match().case_sensitive().value());
}

TEST_CASE("HTTPRoute attached to a Service: Istio's precedence order, segment-aware prefixes, zero weights") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: calc, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: calculate, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: calculate, port: 8080, weight: 0}]
  - matches: [{path: {type: Exact, value: /api/v2/add}, method: POST}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Route, value: exact}]}
    backendRefs: [{name: calculate, port: 8080}]
    timeouts: {request: 3s}
  - backendRefs: [{name: calculate, port: 8080}]
)");
  CHECK(c.load_diags.empty());
  CHECK(c.result.diagnostics.empty());
  const auto& w = served(c);
  auto rc = unpack<route::RouteConfiguration>(w.routes.at("inbound-vip|8080|http|" + kHost));
  REQUIRE(rc.virtual_hosts(0).routes_size() == 3);
  const auto& exact = rc.virtual_hosts(0).routes(0);
  CHECK(exact.match().path() == "/api/v2/add");
  CHECK(exact.match().headers(0).name() == ":method");
  CHECK(exact.route().timeout().seconds() == 3);
  CHECK(exact.request_headers_to_add(0).header().key() == "x-route");
  CHECK(exact.request_headers_to_add(0).append_action() ==
        envoy::config::core::v3::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
  const auto& prefix = rc.virtual_hosts(0).routes(1);
  CHECK(prefix.match().path_separated_prefix() == "/api");
  CHECK(prefix.direct_response().status() == 500);  // all backends weight 0
  CHECK(rc.virtual_hosts(0).routes(2).match().prefix() == "/");
  CHECK(rc.virtual_hosts(0).routes(2).name() == "demo.calc.2");
  check_waypoint_accepts(w);
}

TEST_CASE("GRPCRoute method matches become URI matches; unsupported filters are errors") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: demo}
spec:
  parentRefs: [{kind: Service, group: "", name: calculate}]
  rules:
  - matches: [{method: {service: calc.Calculator, method: Add}}, {method: {service: calc.Admin}}]
    backendRefs: [{name: calculate, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ext, namespace: demo}
spec:
  parentRefs: [{kind: Service, group: "", name: calculate}]
  rules:
  - filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}]
    backendRefs: [{name: calculate, port: 8080}]
)");
  REQUIRE(c.load_diags.size() == 1);
  CHECK(c.load_diags[0].object == "HTTPRoute demo/ext");
  CHECK(c.load_diags[0].field == "spec.rules[0].filters[0].type");
  auto rc = unpack<route::RouteConfiguration>(served(c).routes.at("inbound-vip|8080|http|" + kHost));
  REQUIRE(rc.virtual_hosts(0).routes_size() == 2);
  CHECK(rc.virtual_hosts(0).routes(0).match().path() == "/calc.Calculator/Add");
  CHECK(rc.virtual_hosts(0).routes(1).match().prefix() == "/calc.Admin/");
}

TEST_CASE("a route to another service gets an outbound cluster with its endpoints") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + R"(---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: demo}
spec:
  selector: {app: legacy}
  clusterIP: 10.96.0.11
  ports: [{name: http, port: 9090, targetPort: 9090}]
---
apiVersion: v1
kind: Pod
metadata: {name: legacy-1, namespace: demo, labels: {app: legacy}}
status: {podIP: 10.0.2.1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculate, namespace: demo}
spec:
  hosts: [calculate]
  http:
  - match: [{uri: {regex: "/legacy/.*"}}]
    route: [{destination: {host: legacy}}]
    mirror: {host: calculate, subset: dog-with-multi}
    mirrorPercentage: {value: 50}
  - route: [{destination: {host: nowhere}}]
)");
  const auto& w = served(c);
  const std::string out = "outbound|9090||legacy.demo.svc.cluster.local";
  REQUIRE(w.clusters.count(out) == 1);
  auto cla = unpack<envoy::config::endpoint::v3::ClusterLoadAssignment>(w.endpoints.at(out));
  CHECK(cla.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().address() == "10.0.2.1");
  auto rc = unpack<route::RouteConfiguration>(w.routes.at("inbound-vip|8080|http|" + kHost));
  CHECK(rc.virtual_hosts(0).routes(0).match().safe_regex().regex() == "/legacy/.*");
  const auto& mirror = rc.virtual_hosts(0).routes(0).route().request_mirror_policies(0);
  CHECK(mirror.cluster() == "inbound-vip|8080|http/dog-with-multi|" + kHost);
  CHECK(mirror.runtime_fraction().default_value().numerator() == 500000);
  CHECK_FALSE(mirror.trace_sampled().value());
  REQUIRE(c.result.diagnostics.size() == 1);
  CHECK(c.result.diagnostics[0].field == "spec.http[1].route[0].destination.host");
  check_waypoint_accepts(w);
}

TEST_CASE("a regex RE2 rejects is an error naming the field, not a route the waypoint would NACK") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + R"(---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad-regex, namespace: demo}
spec:
  hosts: [calculate]
  http:
  - match: [{uri: {regex: "/(unclosed"}}]
    route: [{destination: {host: calculate}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-header-regex, namespace: demo}
spec:
  parentRefs: [{kind: Service, group: "", name: calculate}]
  rules:
  - matches: [{headers: [{type: RegularExpression, name: x, value: "a{2,1}"}]}]
    backendRefs: [{name: calculate, port: 8080}]
)");
  REQUIRE(c.load_diags.size() == 2);
  CHECK(c.load_diags[0].object == "VirtualService demo/bad-regex");
  CHECK(c.load_diags[0].field == "spec.http[0].match[0].uri.regex");
  CHECK(c.load_diags[0].message.find("invalid regex (RE2)") == 0);
  CHECK(c.load_diags[1].object == "HTTPRoute demo/bad-header-regex");
  CHECK(c.load_diags[1].field == "spec.rules[0].matches[0][x]");
  check_waypoint_accepts(served(c));
}
