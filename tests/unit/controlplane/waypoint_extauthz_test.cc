// CUSTOM AuthorizationPolicy at the waypoint (controlplane/waypoint_authz.h "CUSTOM"), through
// the whole configuration path: Kubernetes YAML with the mesh config's extensionProviders ->
// the control plane's ext_authz filter config, CUSTOM selection rules and provider cluster ->
// the waypoint's converters (which must accept them) -> which requests are sent to the
// provider. Semantics are Istio's documented ones: CUSTOM is evaluated first, its rules select
// the requests checked, an unusable provider fails closed, one provider per workload.
#include <catch2/catch.hpp>

#include <google/protobuf/any.pb.h>

#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/ext_authz/v3/ext_authz.pb.h"
#include "tests/unit/controlplane/waypoint_fixture.h"
#include "waypoint/authz/authz_filter.h"
#include "waypoint/authz/ext_authz.h"
#include "waypoint/authz/rbac_eval.h"
#include "waypoint/xds/ext_authz_convert.h"

using namespace controlplane;
using namespace wptest;
namespace route = envoy::config::route::v3;
namespace ea = envoy::extensions::filters::http::ext_authz::v3;

namespace {

const std::string kMesh = std::string(kWaypointMeshPrefix) + R"(---
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
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ext-authz, namespace: foo}
spec:
  selector: {app: ext-authz}
  clusterIP: 10.96.0.30
  ports: [{name: grpc, port: 9000, targetPort: 9000}, {name: http, port: 8000, targetPort: 8000}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: authz-grpc
      envoyExtAuthzGrpc: {service: ext-authz.foo.svc.cluster.local, port: 9000, timeout: 2s, failOpen: true, statusOnError: "503"}
    - name: authz-http
      envoyExtAuthzHttp:
        service: foo/ext-authz.foo.svc.cluster.local
        port: 8000
        pathPrefix: /check
        includeRequestHeadersInCheck: [x-ext-authz]
        includeAdditionalHeadersInCheck: {x-added: "yes"}
        headersToUpstreamOnAllow: [x-ext-authz-check-result]
        headersToDownstreamOnDeny: [x-ext-authz-check-result]
    - name: missing-svc
      envoyExtAuthzGrpc: {service: nope.foo.svc.cluster.local, port: 9000}
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
)";

const std::string kCalc = "inbound-vip|8080|http|calculate.demo.svc.cluster.local";
const std::string kOther = "inbound-vip|80|http|other.demo.svc.cluster.local";

Compiled compile_yaml(const std::string& yaml) {
  Compiled c = compile_waypoint_yaml(kMesh + "---\n" + yaml);
  for (const auto& d : c.load_diags) UNSCOPED_INFO(d.to_string());
  CHECK(c.load_diags.empty());
  return c;
}

std::string custom_policy(const std::string& name, const std::string& provider, const std::string& target,
                          const std::string& rules = "  rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]\n") {
  return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " + name +
         ", namespace: demo}\nspec:\n  targetRefs: [" + target + "]\n  action: CUSTOM\n  provider: {name: " + provider +
         "}\n" + rules;
}

const std::string kGateway = "{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}";
const std::string kCalcRef = "{kind: Service, group: \"\", name: calculate}";

struct Verdict {
  bool checked = false;  // sent to the ext_authz service
  bool denied = false;   // denied by the waypoint itself (RBAC or fail closed)
};

Verdict judge(const waypoint::RouteConfig& rc, const std::string& path) {
  waypoint::router::HttpRequest h;
  h.method = "GET";
  h.path = path;
  h.authority = "calculate.demo:8080";
  waypoint::authz::Downstream down;
  down.peer_principal = "spiffe://cluster.local/ns/demo/sa/client";
  down.source_ip = boost::asio::ip::make_address("10.0.2.1");
  REQUIRE(rc.virtual_hosts.size() == 1);
  waypoint::authz::AuthnState st;
  Verdict v;
  auto a = waypoint::authz::run_authn(rc.virtual_hosts[0], nullptr, h, down, st);
  v.checked = st.custom_check;
  v.denied = a.denied || waypoint::authz::run_rbac(rc.virtual_hosts[0], nullptr, h, down, st).denied;
  return v;
}

bool has_diag(const Diagnostics& d, Severity s, const std::string& field, const std::string& needle) {
  for (const auto& x : d)
    if (x.severity == s && x.field == field && x.message.find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("waypoint ext_authz: a gRPC provider's CUSTOM policy selects the requests sent to it", "[extauthz]") {
  auto c = compile_yaml(custom_policy("ext", "authz-grpc", kGateway));
  INFO(diags_text(c.result.diagnostics));
  CHECK(c.result.diagnostics.empty());
  const auto& w = served(c);
  check_waypoint_accepts(w);
  // The provider's cluster, as istiod names it.
  CHECK(w.clusters.count("outbound|9000||ext-authz.foo.svc.cluster.local") == 1);

  auto proto = unpack<route::RouteConfiguration>(w.routes.at(kCalc));
  const auto& tpfc = proto.virtual_hosts(0).typed_per_filter_config();
  REQUIRE(tpfc.count("envoy.filters.http.ext_authz") == 1);
  REQUIRE(tpfc.count("envoy.filters.http.rbac.custom") == 1);
  CHECK(tpfc.count("envoy.filters.http.rbac.deny") == 0);
  ea::ExtAuthz m;
  REQUIRE(tpfc.at("envoy.filters.http.ext_authz").UnpackTo(&m));
  CHECK(m.grpc_service().envoy_grpc().cluster_name() == "outbound|9000||ext-authz.foo.svc.cluster.local");
  CHECK(m.grpc_service().timeout().seconds() == 2);
  CHECK(m.failure_mode_allow());
  CHECK(m.status_on_error().code() == 503);
  CHECK(m.transport_api_version() == 2);

  for (const auto& name : {kCalc, kOther}) {
    auto rc = converted_route(w, name);
    const auto* cfg = rc.virtual_hosts[0].filters.ext_authz.get();
    REQUIRE(cfg);
    CHECK(cfg->kind == waypoint::authz::ExtAuthzConfig::Kind::Grpc);
    CHECK(cfg->cluster == "outbound|9000||ext-authz.foo.svc.cluster.local");
    CHECK(cfg->timeout == std::chrono::milliseconds(2000));
    CHECK(cfg->failure_mode_allow);
    CHECK(cfg->status_on_error == 503);
    auto admin = judge(rc, "/admin/x");
    CHECK(admin.checked);
    CHECK_FALSE(admin.denied);
    auto root = judge(rc, "/");  // no CUSTOM rule matches: not sent, and not denied
    CHECK_FALSE(root.checked);
    CHECK_FALSE(root.denied);
  }
}

TEST_CASE("waypoint ext_authz: an HTTP provider's settings reach the waypoint", "[extauthz]") {
  auto c = compile_yaml(custom_policy("ext", "authz-http", kCalcRef));
  INFO(diags_text(c.result.diagnostics));
  CHECK(c.result.diagnostics.empty());
  const auto& w = served(c);
  check_waypoint_accepts(w);
  CHECK(w.clusters.count("outbound|8000||ext-authz.foo.svc.cluster.local") == 1);
  auto rc = converted_route(w, kCalc);
  const auto* cfg = rc.virtual_hosts[0].filters.ext_authz.get();
  REQUIRE(cfg);
  CHECK(cfg->kind == waypoint::authz::ExtAuthzConfig::Kind::Http);
  CHECK(cfg->cluster == "outbound|8000||ext-authz.foo.svc.cluster.local");
  CHECK(cfg->path_prefix == "/check");
  CHECK(cfg->timeout == std::chrono::milliseconds(600'000));  // Istio's default
  CHECK_FALSE(cfg->failure_mode_allow);
  CHECK(cfg->status_on_error == 403);
  REQUIRE(cfg->headers_to_add.size() == 1);
  CHECK(cfg->headers_to_add[0] == std::pair<std::string, std::string>("x-added", "yes"));
  CHECK(cfg->allowed_headers.size() == 1);
  CHECK(cfg->allowed_upstream_headers.size() == 1);
  CHECK(cfg->allowed_client_headers.size() == 1);
  // Only the Service the policy targets.
  auto other = converted_route(w, kOther);
  CHECK_FALSE(other.virtual_hosts[0].filters.ext_authz);
}

TEST_CASE("waypoint ext_authz: unusable providers fail closed with an Error naming spec.provider.name", "[extauthz]") {
  for (const auto& [provider, needle] :
       std::vector<std::pair<std::string, std::string>>{{"unknown", "no extension provider 'unknown'"},
                                                        {"zipkin", "zipkin tracing provider"},
                                                        {"missing-svc", "not a known Service port"}}) {
    INFO(provider);
    auto c = compile_yaml(custom_policy("ext", provider, kGateway));
    CHECK(has_diag(c.result.diagnostics, Severity::Error, "spec.provider.name", needle));
    CHECK(has_diag(c.result.diagnostics, Severity::Error, "spec.provider.name", "fail closed"));
    const auto& w = served(c);
    check_waypoint_accepts(w);
    auto rc = converted_route(w, kCalc);
    CHECK_FALSE(rc.virtual_hosts[0].filters.ext_authz);
    CHECK(judge(rc, "/admin").denied);   // what it would have sent to the provider is denied
    CHECK_FALSE(judge(rc, "/").denied);  // the rest is untouched
  }
}

TEST_CASE("waypoint ext_authz: one provider per service; CUSTOM is evaluated before DENY/ALLOW", "[extauthz]") {
  auto c = compile_yaml(
      custom_policy("a-first", "authz-grpc", kGateway) + "---\n" +
      custom_policy("b-second", "authz-http", kCalcRef, "  rules: [{to: [{operation: {paths: [\"/other*\"]}}]}]\n") +
      R"(---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-admin-only, namespace: demo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: ALLOW
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
)");
  CHECK(has_diag(c.result.diagnostics, Severity::Error, "spec.provider.name", "already uses ext_authz provider"));
  const auto& w = served(c);
  check_waypoint_accepts(w);
  auto rc = converted_route(w, kCalc);
  const auto* cfg = rc.virtual_hosts[0].filters.ext_authz.get();
  REQUIRE(cfg);
  CHECK(cfg->kind == waypoint::authz::ExtAuthzConfig::Kind::Grpc);  // the first (namespace/name order)
  CHECK(judge(rc, "/other").denied);                                // the second's requests: fail closed
  auto admin = judge(rc, "/admin");
  CHECK(admin.checked);  // checked first, then ALLOW admits it
  CHECK_FALSE(admin.denied);
  auto root = judge(rc, "/");
  CHECK_FALSE(root.checked);
  CHECK(root.denied);  // ALLOW does not match
  // The other service has only the Gateway-wide policy: no conflict there.
  auto other = converted_route(w, kOther);
  CHECK(judge(other, "/admin").checked);
  CHECK_FALSE(judge(other, "/other").checked);  // the second policy targets calculate only
}

TEST_CASE("waypoint ext_authz converter NACKs what it does not implement, naming the field", "[extauthz]") {
  auto nack = [](const ea::ExtAuthz& m) {
    auto r = waypoint::xds::parse_ext_authz(m.SerializeAsString());
    REQUIRE_FALSE(r.ok());
    return r.error();
  };
  ea::ExtAuthz base;
  base.set_transport_api_version(2);
  base.mutable_grpc_service()->mutable_envoy_grpc()->set_cluster_name("outbound|9000||a.b.svc.cluster.local");
  REQUIRE(waypoint::xds::parse_ext_authz(base.SerializeAsString()).ok());
  {
    auto m = base;
    m.mutable_with_request_body()->set_max_request_bytes(10);
    CHECK_THAT(nack(m), Catch::Contains("ext_authz.with_request_body"));
  }
  {
    auto m = base;
    m.set_transport_api_version(0);
    CHECK_THAT(nack(m), Catch::Contains("ext_authz.transport_api_version"));
  }
  {
    auto m = base;
    m.add_metadata_context_namespaces("envoy.filters.http.jwt_authn");
    CHECK_THAT(nack(m), Catch::Contains("ext_authz.metadata_context_namespaces"));
  }
  {
    auto m = base;
    m.mutable_grpc_service()->clear_envoy_grpc();
    CHECK_THAT(nack(m), Catch::Contains("ext_authz.grpc_service.envoy_grpc"));
  }
  {
    ea::ExtAuthz m;
    m.set_transport_api_version(2);
    m.mutable_http_service()->mutable_server_uri()->set_uri("http://x");
    m.mutable_http_service()->mutable_server_uri()->set_cluster("c");
    m.mutable_http_service()
        ->mutable_authorization_response()
        ->mutable_dynamic_metadata_from_headers()
        ->add_patterns()
        ->set_exact("x");
    CHECK_THAT(nack(m), Catch::Contains("ext_authz.http_service.authorization_response.dynamic_metadata_from_headers"));
  }
  {
    auto m = base;
    m.GetReflection()->MutableUnknownFields(&m)->AddVarint(111, 1);
    CHECK_THAT(nack(m), Catch::Contains("unknown field #111"));
  }
}
