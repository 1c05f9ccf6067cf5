// Rate limit policies, control plane to waypoint model: our RateLimitPolicy and the EnvoyFilter
// shape Istio users write compile to the same Envoy config (controlplane/ratelimit_compile.h),
// which the waypoint's converter accepts and turns into its model (waypoint/ratelimit/); bad
// fields are diagnostics naming file, object and field, and the rest still compiles.
#include <catch2/catch.hpp>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.pb.h"
#include "envoy/extensions/filters/http/ratelimit/v3/rate_limit.pb.h"
#include "tests/unit/controlplane/waypoint_fixture.h"
#include "waypoint/ratelimit/rate_limit.h"

using namespace controlplane;
using namespace wptest;
namespace route = envoy::config::route::v3;

namespace {

const std::string kMesh = std::string(kWaypointMeshPrefix) + R"(---
apiVersion: v1
kind: Pod
metadata: {name: waypoint-0, namespace: demo, labels: {gateway.networking.k8s.io/gateway-name: waypoint}}
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
kind: Service
metadata: {name: other, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: other}
  clusterIP: 10.96.0.11
  ports: [{name: http, port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: cat, namespace: demo, labels: {app: calculate}}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Service
metadata: {name: ratelimit, namespace: demo}
spec:
  selector: {app: ratelimit}
  clusterIP: 10.96.0.20
  ports: [{name: grpc, port: 8081, targetPort: 8081}]
---
apiVersion: v1
kind: Pod
metadata: {name: ratelimit-0, namespace: demo, labels: {app: ratelimit}}
status: {podIP: 10.0.2.1}
)";

// Ours: 5 requests a minute on calculate, and the global limit against the RLS.
const char* kPolicy = R"(
apiVersion: ambient.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: calculate, namespace: demo}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  local: {requests: 5, unit: minute}
  global:
    domain: calculate
    service: ratelimit:8081
    timeout: 100ms
    descriptors:
    - actions: [{genericKey: {value: calculate}}, {remoteAddress: {}}]
    - actions: [{requestHeaders: {header: X-User, key: user}}]
)";

// What Istio users write today (the shape of Istio's rate limiting docs), on the waypoint.
const char* kEnvoyFilter = R"(
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: calculate-ratelimit, namespace: demo}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: WAYPOINT
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value:
            stat_prefix: http_local_rate_limiter
            token_bucket: {max_tokens: 5, tokens_per_fill: 5, fill_interval: 60s}
            filter_enabled:
              runtime_key: local_rate_limit_enabled
              default_value: {numerator: 100, denominator: HUNDRED}
            filter_enforced:
              runtime_key: local_rate_limit_enforced
              default_value: {numerator: 100, denominator: HUNDRED}
            response_headers_to_add:
            - append_action: OVERWRITE_IF_EXISTS_OR_ADD
              header: {key: x-local-rate-limit, value: 'true'}
            enable_x_ratelimit_headers: DRAFT_VERSION_03
  - applyTo: HTTP_FILTER
    match:
      context: WAYPOINT
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
          domain: calculate
          failure_mode_deny: false
          timeout: 0.1s
          rate_limit_service:
            grpc_service:
              envoy_grpc: {cluster_name: outbound|8081||ratelimit.demo.svc.cluster.local}
            transport_api_version: V3
  - applyTo: VIRTUAL_HOST
    match: {context: WAYPOINT, routeConfiguration: {vhost: {name: "", route: {action: ANY}}}}
    patch:
      operation: MERGE
      value:
        rate_limits:
        - actions: [{generic_key: {descriptor_value: calculate}}, {remote_address: {}}]
        - actions: [{request_headers: {header_name: x-user, descriptor_key: user}}]
  - applyTo: CLUSTER
    patch: {operation: MERGE, value: {connect_timeout: 1s}}
)";

const std::string kCalc = "inbound-vip|8080|http|calculate.demo.svc.cluster.local";
const std::string kOther = "inbound-vip|8080|http|other.demo.svc.cluster.local";
const std::string kRls = "outbound|8081||ratelimit.demo.svc.cluster.local";

// Both shapes must give this model.
void check_model(const Compiled& c) {
  auto rc = converted_route(served(c), kCalc);
  REQUIRE(rc.virtual_hosts.size() == 1);
  const auto& vh = rc.virtual_hosts[0];
  REQUIRE(vh.filters.local_ratelimit);
  const auto& l = *vh.filters.local_ratelimit;
  CHECK(l.max_tokens == 5);
  CHECK(l.tokens_per_fill == 5);
  CHECK(l.fill_interval == std::chrono::minutes(1));
  CHECK(l.filter_enabled.numerator == l.filter_enabled.denominator);
  CHECK(l.filter_enforced.numerator == l.filter_enforced.denominator);
  CHECK(l.x_ratelimit_headers);
  CHECK(l.bucket != nullptr);
  REQUIRE(vh.filters.ratelimit);
  const auto& g = *vh.filters.ratelimit;
  CHECK(g.domain == "calculate");
  CHECK(g.cluster == kRls);
  CHECK(g.timeout == std::chrono::milliseconds(100));
  CHECK_FALSE(g.failure_mode_deny);
  REQUIRE(vh.rate_limits);
  REQUIRE(vh.rate_limits->entries.size() == 2);
  const auto& a = vh.rate_limits->entries[0].actions;
  REQUIRE(a.size() == 2);
  CHECK(a[0].kind == waypoint::ratelimit::RateLimitAction::Kind::GenericKey);
  CHECK(a[0].descriptor_value == "calculate");
  CHECK(a[1].kind == waypoint::ratelimit::RateLimitAction::Kind::RemoteAddress);
  const auto& b = vh.rate_limits->entries[1].actions;
  REQUIRE(b.size() == 1);
  CHECK(b[0].kind == waypoint::ratelimit::RateLimitAction::Kind::RequestHeaders);
  CHECK(b[0].header_name == "x-user");
  CHECK(b[0].descriptor_key == "user");
  // The RLS cluster is served with the pods behind it; the other service is not limited.
  const auto& w = served(c);
  CHECK(w.clusters.count(kRls) == 1);
  CHECK(w.endpoints.count(kRls) == 1);
  auto other = converted_route(served(c), kOther);
  CHECK_FALSE(other.virtual_hosts[0].filters.local_ratelimit);
  CHECK_FALSE(other.virtual_hosts[0].filters.ratelimit);
  google::protobuf::Any any;
  REQUIRE(any.ParseFromString(w.clusters.at(kRls).any));
  CHECK(waypoint::xds::parse_cluster(kRls, any.value()).ok());
}

}  // namespace

TEST_CASE("RateLimitPolicy compiles to local_ratelimit + ratelimit filter config and rate_limits") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + "---\n" + kPolicy);
  INFO(diags_text(c.all_diags()));
  CHECK(count(c.all_diags(), Severity::Error) == 0);
  CHECK(count(c.all_diags(), Severity::Warning) == 0);
  check_model(c);
  // The Envoy wire form, as any Envoy-speaking waypoint would read it.
  auto rc = unpack<route::RouteConfiguration>(served(c).routes.at(kCalc));
  const auto& tpfc = rc.virtual_hosts(0).typed_per_filter_config();
  REQUIRE(tpfc.count("envoy.filters.http.local_ratelimit") == 1);
  envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit l;
  REQUIRE(tpfc.at("envoy.filters.http.local_ratelimit").UnpackTo(&l));
  CHECK(l.token_bucket().fill_interval().seconds() == 60);
  envoy::extensions::filters::http::ratelimit::v3::RateLimit g;
  REQUIRE(tpfc.at("envoy.filters.http.ratelimit").UnpackTo(&g));
  CHECK(g.rate_limit_service().grpc_service().envoy_grpc().cluster_name() == kRls);
}

TEST_CASE("EnvoyFilter (Istio's rate limit shape) compiles to the same waypoint model") {
  auto c = compile_waypoint_yaml(std::string(kMesh) + "---\n" + kEnvoyFilter);
  INFO(diags_text(c.all_diags()));
  CHECK(count(c.all_diags(), Severity::Error) == 0);
  // The CLUSTER patch is not applied, and that is said, naming it.
  bool named = false;
  for (const auto& d : c.all_diags())
    named |= d.severity == Severity::Warning && d.message.find("configPatches[3]") != std::string::npos;
  CHECK(named);
  check_model(c);
  const auto model = converted_route(served(c), kCalc);
  const auto& l = *model.virtual_hosts[0].filters.local_ratelimit;
  REQUIRE(l.response_headers_to_add.size() == 1);
  CHECK(l.response_headers_to_add[0].key == "x-local-rate-limit");
}

TEST_CASE("EnvoyFilter without filter_enabled limits nothing, as in Envoy") {
  std::string ef = R"(
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: quiet, namespace: demo}
spec:
  workloadSelector: {labels: {gateway.networking.k8s.io/gateway-name: waypoint}}
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: quiet
          token_bucket: {max_tokens: 1, fill_interval: 1s}
)";
  auto c = compile_waypoint_yaml(std::string(kMesh) + "---\n" + ef);
  INFO(diags_text(c.all_diags()));
  CHECK(count(c.all_diags(), Severity::Error) == 0);
  // Gateway-wide: both services get it.
  for (const auto& name : {kCalc, kOther}) {
    auto rc = converted_route(served(c), name);
    REQUIRE(rc.virtual_hosts[0].filters.local_ratelimit);
    CHECK(rc.virtual_hosts[0].filters.local_ratelimit->filter_enabled.numerator == 0);
  }
}

TEST_CASE("bad rate limit fields are named; the rest still compiles") {
  struct Case {
    const char* spec;
    const char* field;
  };
  const Case cases[] = {
      {"targetRefs: [{kind: Service, name: calculate}]\n  local: {maxToken: 5, fillInterval: 1s}",
       "spec.local.maxToken"},
      {"targetRefs: [{kind: Service, name: calculate}]\n  local: {maxTokens: 5, fillInterval: 10ms}",
       "spec.local.fillInterval"},
      {"targetRefs: [{kind: Service, name: calculate}]\n  local: {requests: 5, unit: fortnight}", "spec.local.unit"},
      {"targetRefs: [{kind: Service, name: calculate}]\n  local: {requests: 0, unit: minute}", "spec.local.requests"},
      {"targetRefs: [{kind: Pod, name: calculate}]\n  local: {requests: 5, unit: minute}", "spec.targetRefs[0].kind"},
      {"local: {requests: 5, unit: minute}", "spec.targetRefs"},
      {"targetRefs: [{kind: Service, name: calculate}]\n  global: {domain: d, service: 'ratelimit', "
       "descriptors: [{actions: [{remoteAddress: {}}]}]}",
       "spec.global.service"},
      {"targetRefs: [{kind: Service, name: calculate}]\n  global: {domain: d, service: 'ratelimit:8081', "
       "descriptors: [{actions: [{remoteAddress: {}, genericKey: {value: x}}]}]}",
       "spec.global.descriptors[0].actions[0]"},
      {"targetRefs: [{kind: Service, name: calculate}]\n  global: {domain: d, service: 'ratelimit:8081', "
       "descriptors: [{actions: [{requestHeaders: {key: k}}]}]}",
       "spec.global.descriptors[0].actions[0].requestHeaders.header"},
  };
  for (const auto& k : cases) {
    std::string bad = std::string(
                          "apiVersion: ambient.dev/v1alpha1\nkind: RateLimitPolicy\n"
                          "metadata: {name: bad, namespace: demo}\nspec:\n  ") +
                      k.spec + "\n";
    auto c = compile_waypoint_yaml(std::string(kMesh) + "---\n" + kPolicy + "---\n" + bad);
    INFO(k.field << "\n" << diags_text(c.all_diags()));
    bool found = false;
    for (const auto& d : c.all_diags())
      found |= d.severity == Severity::Error && d.object == "RateLimitPolicy demo/bad" && d.field == k.field &&
               d.file == "mesh.yaml";
    CHECK(found);
    check_model(c);  // the good policy still applies
  }
}

TEST_CASE("bad EnvoyFilter rate limit fields are named") {
  std::string ef = kEnvoyFilter;
  const std::string from = "max_tokens: 5";
  ef.replace(ef.find(from), from.size(), "max_tokens: -5");
  auto c = compile_waypoint_yaml(std::string(kMesh) + "---\n" + ef);
  bool found = false;
  for (const auto& d : c.all_diags())
    found |= d.severity == Severity::Error && d.object == "EnvoyFilter demo/calculate-ratelimit" &&
             d.field == "spec.configPatches[0].patch.value.typed_config.value.token_bucket.max_tokens";
  INFO(diags_text(c.all_diags()));
  CHECK(found);
  // An unknown RLS service: the global part is refused by name, the local part applies.
  auto c2 = compile_waypoint_yaml(
      std::string(kMesh) + "---\n" +
      std::string(kPolicy).replace(std::string(kPolicy).find("ratelimit:8081"), 14, "nowhere:8081"));
  bool named = false;
  for (const auto& d : c2.all_diags()) named |= d.severity == Severity::Error && d.field == "spec.global.service";
  CHECK(named);
  auto rc = converted_route(served(c2), kCalc);
  CHECK(rc.virtual_hosts[0].filters.local_ratelimit);
  CHECK_FALSE(rc.virtual_hosts[0].filters.ratelimit);
}

TEST_CASE("route-scoped policies coexist with a service-wide one; a second one for the same place is a warning") {
  const std::string vs = R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculate, namespace: demo}
spec:
  hosts: [calculate]
  http:
  - name: fast
    match: [{uri: {prefix: /fast}}]
    route: [{destination: {host: calculate}}]
  - route: [{destination: {host: calculate}}]
)";
  const std::string fast = R"(
apiVersion: ambient.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: fast, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  routes: [fast]
  local: {maxTokens: 100, fillInterval: 1s}
)";
  const std::string again = R"(
apiVersion: ambient.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: zz-again, namespace: demo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  local: {requests: 1, unit: hour}
)";
  auto c =
      compile_waypoint_yaml(std::string(kMesh) + "---\n" + vs + "---\n" + kPolicy + "---\n" + fast + "---\n" + again);
  INFO(diags_text(c.all_diags()));
  CHECK(count(c.all_diags(), Severity::Error) == 0);
  bool warned = false;
  for (const auto& d : c.all_diags())
    warned |= d.severity == Severity::Warning && d.object == "RateLimitPolicy demo/zz-again" && d.field == "spec";
  CHECK(warned);
  const auto model = converted_route(served(c), kCalc);
  const auto& vh = model.virtual_hosts[0];
  REQUIRE(vh.routes.size() == 2);
  CHECK(vh.routes[0].name == "fast");
  REQUIRE(vh.routes[0].filters.local_ratelimit);
  CHECK(vh.routes[0].filters.local_ratelimit->max_tokens == 100);
  CHECK_FALSE(vh.routes[1].filters.local_ratelimit);
  REQUIRE(vh.filters.local_ratelimit);
  CHECK(vh.filters.local_ratelimit->max_tokens == 5);  // calculate (first by name), not zz-again
  // zz-again still applies where nothing else does: the other service's virtual host.
  auto other = converted_route(served(c), kOther);
  REQUIRE(other.virtual_hosts[0].filters.local_ratelimit);
  CHECK(other.virtual_hosts[0].filters.local_ratelimit->fill_interval == std::chrono::hours(1));
}
