// L7 AuthorizationPolicy at the waypoint, through the whole configuration path: Kubernetes YAML
// -> the controlplane's RBAC per-filter config (controlplane/waypoint_authz.h) -> the waypoint's
// converter (waypoint/xds/rbac_convert.h) -> the evaluator (waypoint/authz/rbac_eval.h) deciding
// real requests. Decisions are checked against Istio's documented semantics, not against what
// the compiler happens to emit; the proto shape is checked only where it is wire contract (the
// filter keys, the action, the policy names).
#include <catch2/catch.hpp>

#include <google/protobuf/any.pb.h>

#include "controlplane/k8s_loader.h"
#include "controlplane/waypoint_compiler.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb.h"
#include "tests/unit/controlplane/waypoint_fixture.h"
#include "waypoint/authz/rbac_eval.h"
#include "waypoint/xds/rbac_convert.h"

using namespace controlplane;
using namespace wptest;
namespace route = envoy::config::route::v3;
using waypoint::authz::RequestContext;

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
)";

const std::string kCalc = "inbound-vip|8080|http|calculate.demo.svc.cluster.local";
const std::string kOther = "inbound-vip|80|http|other.demo.svc.cluster.local";

Compiled compile_yaml(const std::string& yaml) {
  Compiled c = compile_waypoint_yaml(std::string(kMesh) + "---\n" + yaml);
  // Every policy in these cases is well-formed YAML: the loader must accept all of them.
  for (const auto& d : c.load_diags) UNSCOPED_INFO(d.to_string());
  CHECK(c.load_diags.empty());
  return c;
}

route::RouteConfiguration route_proto(const Compiled& c, const std::string& name) {
  const auto& w = served(c);
  REQUIRE(w.routes.count(name) == 1);
  return unpack<route::RouteConfiguration>(w.routes.at(name));
}

struct Req {
  std::string method = "GET";
  std::string path = "/";
  std::string authority = "calculate.demo:8080";
  std::vector<std::pair<std::string, std::string>> headers = {};
  std::optional<std::string> principal = "spiffe://cluster.local/ns/demo/sa/client";
  std::string source_ip = "10.0.2.1";
  uint16_t port = 8080;
  const waypoint::authz::MetaValue* authn = nullptr;
};

// True = allowed.
bool decide(const waypoint::RouteConfig& rc, const Req& r) {
  waypoint::router::HttpRequest h;
  h.method = r.method;
  h.path = r.path;
  h.authority = r.authority;
  for (const auto& [k, v] : r.headers) h.headers.add(k, v);
  RequestContext ctx;
  ctx.request = &h;
  ctx.peer_principal = r.principal;
  ctx.source_ip = boost::asio::ip::make_address(r.source_ip);
  ctx.destination_ip = boost::asio::ip::make_address("10.96.0.10");
  ctx.destination_port = r.port;
  ctx.authn = r.authn;
  REQUIRE(rc.virtual_hosts.size() == 1);
  const auto* f = rc.virtual_hosts[0].filters.rbac.get();
  if (!f) return true;
  return waypoint::authz::authorize(*f, ctx).allowed;
}

}  // namespace

TEST_CASE("waypoint authz: DENY by path and method on the Gateway applies to every service") {
  auto c = compile_yaml(R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: demo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
  - to: [{operation: {methods: [DELETE], paths: ["/items/{*}"]}}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  auto proto = route_proto(c, kCalc);
  const auto& tpfc = proto.virtual_hosts(0).typed_per_filter_config();
  REQUIRE(tpfc.count("envoy.filters.http.rbac.deny") == 1);
  CHECK(tpfc.count("envoy.filters.http.rbac.allow") == 0);
  envoy::extensions::filters::http::rbac::v3::RBACPerRoute pr;
  REQUIRE(tpfc.at("envoy.filters.http.rbac.deny").UnpackTo(&pr));
  CHECK(pr.rbac().rules().action() == envoy::config::rbac::v3::RBAC::DENY);
  CHECK(pr.rbac().rules().policies().count("ns[demo]-policy[deny-admin]-rule[0]") == 1);
  CHECK(pr.rbac().rules().policies().count("ns[demo]-policy[deny-admin]-rule[1]") == 1);

  for (const auto& name : {kCalc, kOther}) {
    auto rc = converted_route(served(c), name);
    CHECK(decide(rc, {.path = "/"}));
    CHECK_FALSE(decide(rc, {.path = "/admin"}));
    CHECK_FALSE(decide(rc, {.path = "/admin/users?x=1"}));
    CHECK(decide(rc, {.path = "/items/7"}));  // GET: the method does not match
    CHECK_FALSE(decide(rc, {.method = "DELETE", .path = "/items/7"}));
    CHECK_FALSE(decide(rc, {.method = "DELETE", .path = "/items/7?force=1"}));  // url_path ignores the query
    CHECK(decide(rc, {.method = "DELETE", .path = "/items/7/parts"}));          // {*} is one segment
    CHECK(decide(rc, {.method = "DELETE", .path = "/items/"}));                 // {*} is not empty
  }
}

TEST_CASE("waypoint authz: ALLOW by principal on one Service only") {
  auto c = compile_yaml(R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: demo}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  auto calc = converted_route(served(c), kCalc);
  CHECK(decide(calc, {}));
  CHECK_FALSE(decide(calc, {.principal = "spiffe://cluster.local/ns/demo/sa/intruder"}));
  CHECK_FALSE(decide(calc, {.principal = std::nullopt}));  // no peer certificate
  // The other service of the same waypoint is not targeted.
  auto other = converted_route(served(c), kOther);
  CHECK(decide(other, {.principal = "spiffe://cluster.local/ns/demo/sa/intruder"}));
}

TEST_CASE("waypoint authz: an ALLOW policy with no rules denies everything; DENY beats ALLOW") {
  auto c = compile_yaml(R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: other}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-post, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  action: DENY
  rules: [{to: [{operation: {methods: [POST]}}]}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  CHECK_FALSE(decide(converted_route(served(c), kOther), {}));
  auto calc = converted_route(served(c), kCalc);
  CHECK(decide(calc, {.principal = std::nullopt}));
  CHECK_FALSE(decide(calc, {.method = "POST"}));
}

TEST_CASE("waypoint authz: sources, operations and when conditions, with their not* forms") {
  auto c = compile_yaml(R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-rules, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  rules:
  # 0: namespace glob, host glob, not a path
  - from: [{source: {namespaces: ["front*"]}}]
    to: [{operation: {hosts: ["*.demo", "Calc.Example.com"], notPaths: ["/private/{**}"]}}]
  # 1: ip blocks and ports, excluding one principal
  - from: [{source: {ipBlocks: ["10.1.0.0/16"], notPrincipals: ["*/sa/bad"]}}]
    to: [{operation: {ports: ["8080"]}}]
  # 2: when conditions
  - when:
    - {key: "request.headers[X-Team]", values: ["blue", "green*"]}
    - {key: source.principal, notValues: ["cluster.local/ns/demo/sa/client"]}
    - {key: destination.port, values: ["8080"]}
  # 3: service accounts
  - from: [{source: {serviceAccounts: ["ops/admin"]}}]
)");
  INFO(diags_text(c.result.diagnostics));
  CHECK(c.result.diagnostics.empty());
  auto rc = converted_route(served(c), kCalc);
  const std::string front = "spiffe://cluster.local/ns/frontend/sa/web";
  // rule 0
  CHECK(decide(rc, {.authority = "calculate.demo", .principal = front, .source_ip = "10.9.9.9"}));
  CHECK(decide(rc, {.authority = "calc.example.COM", .principal = front, .source_ip = "10.9.9.9"}));
  CHECK_FALSE(decide(rc, {.authority = "calculate.other", .principal = front, .source_ip = "10.9.9.9"}));
  CHECK_FALSE(
      decide(rc, {.path = "/private/a/b", .authority = "calculate.demo", .principal = front, .source_ip = "10.9.9.9"}));
  CHECK_FALSE(decide(
      rc,
      {.authority = "calculate.demo", .principal = "spiffe://cluster.local/ns/back/sa/web", .source_ip = "10.9.9.9"}));
  // rule 1
  CHECK(decide(rc, {.principal = "spiffe://cluster.local/ns/x/sa/good", .source_ip = "10.1.2.3"}));
  CHECK_FALSE(decide(rc, {.principal = "spiffe://cluster.local/ns/x/sa/bad", .source_ip = "10.1.2.3"}));
  CHECK_FALSE(decide(rc, {.principal = "spiffe://cluster.local/ns/x/sa/good", .source_ip = "10.1.2.3", .port = 9090}));
  // rule 2
  const std::string other = "spiffe://cluster.local/ns/demo/sa/other";
  CHECK(decide(rc, {.headers = {{"x-team", "blue"}}, .principal = other, .source_ip = "10.9.9.9"}));
  CHECK(decide(rc, {.headers = {{"x-team", "greenish"}}, .principal = other, .source_ip = "10.9.9.9"}));
  CHECK_FALSE(decide(rc, {.headers = {{"x-team", "red"}}, .principal = other, .source_ip = "10.9.9.9"}));
  CHECK_FALSE(decide(rc, {.headers = {{"x-team", "blue"}}, .source_ip = "10.9.9.9"}));  // the excluded principal
  CHECK_FALSE(decide(rc, {.headers = {{"x-team", "blue"}}, .principal = other, .source_ip = "10.9.9.9", .port = 80}));
  // rule 3
  CHECK(decide(rc, {.principal = "spiffe://cluster.local/ns/ops/sa/admin", .source_ip = "10.9.9.9"}));
  CHECK_FALSE(decide(rc, {.principal = "spiffe://cluster.local/ns/ops/sa/admin2", .source_ip = "10.9.9.9"}));
}

TEST_CASE("waypoint authz: request principals and JWT claims read the istio_authn metadata") {
  auto c = compile_yaml(R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
    when:
    - {key: "request.auth.claims[groups]", values: ["admins"]}
    - {key: "request.auth.claims[org][unit]", notValues: ["sales"]}
)");
  INFO(diags_text(c.result.diagnostics));
  CHECK(c.result.diagnostics.empty());
  auto rc = converted_route(served(c), kCalc);
  using waypoint::authz::MetaValue;
  auto str = [](std::string s) {
    MetaValue v;
    v.kind = MetaValue::Kind::String;
    v.str = std::move(s);
    return v;
  };
  auto obj = [](std::vector<std::pair<std::string, MetaValue>> kv) {
    MetaValue v;
    v.kind = MetaValue::Kind::Object;
    for (auto& [k, x] : kv) v.object.push_back(waypoint::authz::MetaMember{k, std::move(x)});
    return v;
  };
  MetaValue groups;
  groups.kind = MetaValue::Kind::List;
  groups.list = {str("dev"), str("admins")};
  MetaValue good = obj({{"request.auth.principal", str("https://issuer/alice")},
                        {"request.auth.claims", obj({{"groups", groups}, {"org", obj({{"unit", str("eng")}})}})}});
  MetaValue sales = obj({{"request.auth.principal", str("https://issuer/bob")},
                         {"request.auth.claims", obj({{"groups", groups}, {"org", obj({{"unit", str("sales")}})}})}});
  MetaValue no_group = obj({{"request.auth.principal", str("https://issuer/carol")},
                            {"request.auth.claims", obj({{"groups", str("dev")}})}});
  CHECK(decide(rc, {.authn = &good}));
  CHECK_FALSE(decide(rc, {.authn = &sales}));
  CHECK_FALSE(decide(rc, {.authn = &no_group}));
  CHECK_FALSE(decide(rc, {}));  // no token: requestPrincipals ["*"] cannot match (403, as Istio)
}

TEST_CASE("waypoint authz: targetRef policies never reach ztunnel; selector policies still do") {
  ResourceSet set;
  Diagnostics d;
  parse_manifests(std::string(kMesh) + R"(---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: at-waypoint, namespace: demo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/x"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: at-ztunnel, namespace: demo}
spec:
  selector: {matchLabels: {app: calculate}}
  action: DENY
  rules: [{from: [{source: {namespaces: ["evil"]}}]}]
)",
                  "mesh.yaml", set, d);
  auto state = compile(set, CompileOptions{});
  bool waypoint_policy = false, ztunnel_policy = false;
  for (const auto& p : state.config.policies) {
    waypoint_policy |= p.name == "at-waypoint";
    ztunnel_policy |= p.name == "at-ztunnel";
  }
  CHECK_FALSE(waypoint_policy);
  CHECK(ztunnel_policy);
  // And the waypoint gets only the targetRef one.
  auto wp = compile_waypoints(set, CompileOptions{});
  const auto& w = *wp.by_gateway.at("demo/waypoint");
  google::protobuf::Any any;
  REQUIRE(any.ParseFromString(w.routes.at(kCalc).any));
  route::RouteConfiguration rc;
  REQUIRE(any.UnpackTo(&rc));
  envoy::extensions::filters::http::rbac::v3::RBACPerRoute pr;
  REQUIRE(rc.virtual_hosts(0).typed_per_filter_config().at("envoy.filters.http.rbac.deny").UnpackTo(&pr));
  CHECK(pr.rbac().rules().policies_size() == 1);
  CHECK(pr.rbac().rules().policies().begin()->first == "ns[demo]-policy[at-waypoint]-rule[0]");
}

TEST_CASE("waypoint authz: bad fields are diagnosed by name; the rest still compiles") {
  auto c = compile_yaml(R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad-allow, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  rules:
  - to: [{operation: {ports: ["http"]}}]
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]
  - when: [{key: connection.sni, values: [x]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad-deny, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  action: DENY
  rules:
  - to: [{operation: {methods: [PUT], paths: ["/a{*}"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: other}]
  action: CUSTOM
  provider: {name: my-ext-authz}
  rules: [{to: [{operation: {paths: ["/ext"]}}]}]
)");
  const std::string text = diags_text(c.result.diagnostics);
  INFO(text);
  CHECK(text.find("AuthorizationPolicy demo/bad-allow: spec.rules[0].to[0].operation.ports[0]: invalid port 'http'") !=
        std::string::npos);
  CHECK(text.find("spec.rules[0].to[0].operation.paths[0]: invalid path template '/a{*}'") != std::string::npos);
  CHECK(text.find("spec.rules[2].when[0].key: condition key 'connection.sni' is not supported") != std::string::npos);
  // No mesh config here: the provider is unknown (waypoint_extauthz_test.cc has the providers).
  CHECK(text.find("AuthorizationPolicy demo/custom: spec.provider.name: no extension provider 'my-ext-authz'") !=
        std::string::npos);
  auto rc = converted_route(served(c), kCalc);
  // bad-allow rules 0 and 2 are omitted (they would match anything), rule 1 still allows the client.
  CHECK(decide(rc, {}));
  CHECK_FALSE(decide(rc, {.principal = "spiffe://cluster.local/ns/demo/sa/x"}));
  // bad-deny keeps its rule without the bad path: PUT anywhere is denied (denies more).
  CHECK_FALSE(decide(rc, {.method = "PUT", .path = "/b"}));
  // CUSTOM fails closed on what it would have sent to the provider.
  auto other = converted_route(served(c), kOther);
  CHECK_FALSE(decide(other, {.path = "/ext"}));
  CHECK(decide(other, {.path = "/in"}));
}

TEST_CASE("waypoint RBAC converter NACKs what it does not implement, naming the field") {
  using envoy::extensions::filters::http::rbac::v3::RBACPerRoute;
  auto check_error = [](const RBACPerRoute& pr, std::string_view key, const std::string& want) {
    waypoint::authz::RbacFilters f;
    auto st = waypoint::xds::parse_rbac_per_route(key, pr.SerializeAsString(), f);
    REQUIRE_FALSE(st.ok());
    INFO(st.error());
    CHECK(st.error().find(want) != std::string::npos);
  };
  RBACPerRoute pr;
  auto* rules = pr.mutable_rbac()->mutable_rules();
  rules->set_action(envoy::config::rbac::v3::RBAC::DENY);
  auto& pol = (*rules->mutable_policies())["p"];
  pol.add_permissions()->set_any(true);
  pol.add_principals()->mutable_metadata()->set_filter("envoy.filters.http.jwt_authn");
  check_error(pr, "envoy.filters.http.rbac.deny", "rbac.rbac.rules.policies[p].principals[0].metadata.filter");
  pol.mutable_principals(0)->set_any(true);
  check_error(pr, "envoy.filters.http.rbac.allow", "rbac.rbac.rules.action: does not match");
  pol.mutable_permissions(0)->mutable_requested_server_name()->set_exact("x");
  check_error(pr, "envoy.filters.http.rbac.deny", "permissions[0].requested_server_name");
  pol.mutable_permissions(0)->set_any(true);
  // Shadow rules must agree with the instance, and the AUDIT instance has none.
  *pr.mutable_rbac()->mutable_shadow_rules() = *rules;
  check_error(pr, "envoy.filters.http.rbac.allow", "rbac.rbac.rules.action: does not match");
  pr.mutable_rbac()->mutable_shadow_rules()->set_action(envoy::config::rbac::v3::RBAC::LOG);
  check_error(pr, "envoy.filters.http.rbac.deny", "rbac.rbac.shadow_rules.action: does not match");
  pr.mutable_rbac()->mutable_shadow_rules()->set_action(envoy::config::rbac::v3::RBAC::DENY);
  {
    RBACPerRoute audit;
    audit.mutable_rbac()->mutable_rules()->set_action(envoy::config::rbac::v3::RBAC::LOG);
    *audit.mutable_rbac()->mutable_shadow_rules() = *rules;
    check_error(audit, "envoy.filters.http.rbac.audit", "rbac.rbac.shadow_rules: shadow rules are not implemented");
  }
  pr.mutable_rbac()->clear_shadow_rules();
  check_error(RBACPerRoute{}, "envoy.filters.http.rbac.deny", "rbac.rbac: required");
  check_error(pr, "envoy.filters.http.rbac.custom", "rbac.rbac.rules.action: does not match");  // LOG only
  check_error(pr, "envoy.filters.http.rbac.other", "unknown RBAC filter instance");
  waypoint::authz::RbacFilters f;
  CHECK(waypoint::xds::parse_rbac_per_route("envoy.filters.http.rbac.deny", pr.SerializeAsString(), f).ok());
  REQUIRE(f.deny);
  CHECK(f.deny->policies.size() == 1);
}

namespace {

const char* kTcpService = R"(
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: db}
  clusterIP: 10.96.0.20
  ports: [{name: tcp-pg, port: 5432, targetPort: 5432}, {name: http, port: 80, targetPort: 8080}]
---
)";
const std::string kDbTcp = "inbound-vip|5432|tcp|db.demo.svc.cluster.local";
const std::string kDbHttp = "inbound-vip|80|http|db.demo.svc.cluster.local";

// The TCP port's cluster as the waypoint converts it (must be accepted).
waypoint::Cluster tcp_cluster_view(const Compiled& c, const std::string& name) {
  return converted_cluster(served(c), name);
}

// A TCP connection: no HTTP request, only the peer, addresses and port. True = allowed.
bool decide_tcp(const waypoint::Cluster& c, std::optional<std::string> principal, std::string source_ip = "10.0.2.1") {
  RequestContext ctx;
  ctx.peer_principal = std::move(principal);
  ctx.source_ip = boost::asio::ip::make_address(source_ip);
  ctx.destination_ip = boost::asio::ip::make_address("10.96.0.20");
  ctx.destination_port = 5432;
  if (!c.network_rbac) return true;
  return waypoint::authz::authorize(*c.network_rbac, ctx).allowed;
}

const std::string kClient = "spiffe://cluster.local/ns/demo/sa/client";
const std::string kIntruder = "spiffe://cluster.local/ns/demo/sa/intruder";

}  // namespace

TEST_CASE("waypoint authz on a TCP port: a TCP cluster with no policy relays everything") {
  auto c = compile_yaml(kTcpService);
  const auto tcp = tcp_cluster_view(c, kDbTcp);
  CHECK(tcp.network_rbac == nullptr);
  CHECK(decide_tcp(tcp, kIntruder));
  // The HTTP port of the same service keeps its route configuration.
  CHECK(converted_route(served(c), kDbHttp).virtual_hosts.size() == 1);
}

TEST_CASE("waypoint authz on a TCP port: ALLOW rules with HTTP-only fields never match; the others do") {
  auto c = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]
    to: [{operation: {methods: [GET]}}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  // On TCP the only rule needs an HTTP method: nothing matches, the port is closed to all.
  const auto tcp = tcp_cluster_view(c, kDbTcp);
  REQUIRE(tcp.network_rbac != nullptr);
  CHECK_FALSE(decide_tcp(tcp, kClient));
  CHECK_FALSE(decide_tcp(tcp, kIntruder));
  // On HTTP the rule still applies as written.
  auto http = converted_route(served(c), kDbHttp);
  CHECK(decide(http, {.principal = kClient}));
  CHECK_FALSE(decide(http, {.method = "POST", .principal = kClient}));

  auto c2 = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-mixed, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  rules:
  - to: [{operation: {paths: ["/public/*"]}}]
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]
    to: [{operation: {ports: ["5432"]}}]
  - when: [{key: "request.headers[x-user]", values: ["admin"]}]
  - from: [{source: {requestPrincipals: ["*"]}}]
)");
  CHECK(diags_text(c2.result.diagnostics).empty());
  const auto tcp2 = tcp_cluster_view(c2, kDbTcp);
  REQUIRE(tcp2.network_rbac != nullptr);
  REQUIRE(tcp2.network_rbac->allow.has_value());
  CHECK(tcp2.network_rbac->allow->policies.size() == 1);  // only rule 1 survives
  CHECK(decide_tcp(tcp2, kClient));
  CHECK_FALSE(decide_tcp(tcp2, kIntruder));
}

TEST_CASE("waypoint authz on a TCP port: DENY rules drop their HTTP-only fields and deny more") {
  auto c = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/intruder"]}}]
    to: [{operation: {paths: ["/admin"], notMethods: [GET]}}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  const auto tcp = tcp_cluster_view(c, kDbTcp);
  REQUIRE(tcp.network_rbac != nullptr);
  CHECK_FALSE(decide_tcp(tcp, kIntruder));  // widened: the path and method are gone
  CHECK(decide_tcp(tcp, kClient));          // the principal still has to match
  auto http = converted_route(served(c), kDbHttp);
  CHECK(decide(http, {.path = "/", .principal = kIntruder}));
  CHECK_FALSE(decide(http, {.method = "POST", .path = "/admin", .principal = kIntruder}));

  // A DENY made only of HTTP attributes denies every TCP connection.
  auto c2 = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-delete, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  action: DENY
  rules:
  - to: [{operation: {methods: [DELETE]}}]
    when: [{key: "request.auth.claims[group]", values: [guest]}]
)");
  CHECK(diags_text(c2.result.diagnostics).empty());
  const auto tcp2 = tcp_cluster_view(c2, kDbTcp);
  CHECK_FALSE(decide_tcp(tcp2, kClient));
  CHECK(decide(converted_route(served(c2), kDbHttp), {.principal = kClient}));
}

TEST_CASE("waypoint authz on a TCP port: a path-only ALLOW denies TCP, a method-only DENY denies TCP") {
  // ALLOW whose only rule needs a path: on TCP the path is missing, which never matches ALLOW.
  auto c = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-public, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  rules:
  - to: [{operation: {paths: ["/public/*"]}}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  const auto tcp = tcp_cluster_view(c, kDbTcp);
  REQUIRE(tcp.network_rbac != nullptr);
  CHECK_FALSE(decide_tcp(tcp, kClient));
  CHECK_FALSE(decide_tcp(tcp, std::nullopt));
  CHECK(decide(converted_route(served(c), kDbHttp), {.path = "/public/x", .principal = kClient}));

  // DENY whose only rule names a method, bound to the waypoint Gateway: on TCP the method is
  // missing, which counts as a match in DENY, so every TCP connection is closed.
  auto c2 = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-delete, namespace: demo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: DENY
  rules:
  - to: [{operation: {methods: [DELETE]}}]
)");
  CHECK(diags_text(c2.result.diagnostics).empty());
  const auto tcp2 = tcp_cluster_view(c2, kDbTcp);
  REQUIRE(tcp2.network_rbac != nullptr);
  CHECK(tcp2.network_rbac->deny.has_value());
  CHECK_FALSE(decide_tcp(tcp2, kClient));
  CHECK_FALSE(decide_tcp(tcp2, std::nullopt));
  CHECK(decide(converted_route(served(c2), kDbHttp), {.method = "GET", .principal = kClient}));
}

TEST_CASE("waypoint authz for pod-addressed TCP: the policies targeting the waypoint, on inbound-pod|tcp") {
  const std::string kPod = "inbound-pod|tcp";
  // No policy, or only a Service-targeted one: no carrier cluster (pod traffic is relayed).
  auto none = compile_yaml(kTcpService);
  CHECK(served(none).clusters.count(kPod) == 0);
  auto svc_only = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  rules: [{from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]}]
)");
  CHECK(served(svc_only).clusters.count(kPod) == 0);

  // A Gateway-targeted ALLOW by principal plus a Service-targeted DENY of everyone: the pod
  // cluster carries the ALLOW only (Service targets do not reach pod-addressed traffic).
  auto c = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: demo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  rules:
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]
  - to: [{operation: {paths: ["/x"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-db, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  action: DENY
  rules: [{}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  REQUIRE(served(c).clusters.count(kPod) == 1);
  const auto pod = converted_cluster(served(c), kPod);  // the waypoint accepts it
  REQUIRE(pod.network_rbac != nullptr);
  CHECK_FALSE(pod.network_rbac->deny.has_value());
  REQUIRE(pod.network_rbac->allow.has_value());
  CHECK(pod.network_rbac->allow->policies.size() == 1);  // the path-only rule is omitted on TCP
  CHECK(decide_tcp(pod, kClient));
  CHECK_FALSE(decide_tcp(pod, kIntruder));
  CHECK(served(c).endpoints.count(kPod) == 0);  // STATIC, no endpoints to discover
  // The service's own TCP port has both.
  const auto tcp = tcp_cluster_view(c, kDbTcp);
  REQUIRE(tcp.network_rbac != nullptr);
  CHECK(tcp.network_rbac->deny.has_value());
}

TEST_CASE("waypoint authz on a TCP port: namespace, port and source IP rules apply to the connection") {
  auto c = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-demo-ns, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  rules:
  - from: [{source: {namespaces: [demo]}}]
    to: [{operation: {ports: ["5432"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-bad-subnet, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: db}]
  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["10.0.9.0/24"]}}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  const auto tcp = tcp_cluster_view(c, kDbTcp);
  REQUIRE(tcp.network_rbac != nullptr);
  CHECK(decide_tcp(tcp, kClient));                                            // ns demo, port 5432
  CHECK_FALSE(decide_tcp(tcp, "spiffe://cluster.local/ns/other/sa/client"));  // another namespace
  CHECK_FALSE(decide_tcp(tcp, std::nullopt));                                 // no peer certificate
  CHECK_FALSE(decide_tcp(tcp, kClient, "10.0.9.7"));                          // the DENY by source IP

  // The port rule: the same namespace on another port is not allowed.
  RequestContext ctx;
  ctx.peer_principal = kClient;
  ctx.source_ip = boost::asio::ip::make_address("10.0.2.1");
  ctx.destination_ip = boost::asio::ip::make_address("10.96.0.20");
  ctx.destination_port = 5433;
  CHECK_FALSE(waypoint::authz::authorize(*tcp.network_rbac, ctx).allowed);
  ctx.destination_port = 5432;
  CHECK(waypoint::authz::authorize(*tcp.network_rbac, ctx).allowed);
}

TEST_CASE("waypoint authz on a port of unknown protocol: an HTTP route and a TCP cluster with network RBAC") {
  auto c = compile_yaml(R"(
apiVersion: v1
kind: Service
metadata: {name: mixed, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: mixed}
  clusterIP: 10.96.0.21
  ports: [{name: web, port: 7000, targetPort: 7000}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client-get, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: mixed}]
  rules:
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]
  - to: [{operation: {methods: [GET]}}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  // Istio sniffs such a port: the HTTP chain keeps its route, non-HTTP bytes go to the TCP one.
  const auto http = converted_route(served(c), "inbound-vip|7000|http|mixed.demo.svc.cluster.local");
  CHECK(decide(http, {.principal = kIntruder}));  // GET: the method-only rule allows it on HTTP
  const auto tcp = tcp_cluster_view(c, "inbound-vip|7000|tcp|mixed.demo.svc.cluster.local");
  REQUIRE(tcp.network_rbac != nullptr);
  CHECK(decide_tcp(tcp, kClient));
  CHECK_FALSE(decide_tcp(tcp, kIntruder));  // on TCP the method-only rule never matches
}

TEST_CASE("waypoint converter: network RBAC metadata keys must name deny, allow or audit") {
  envoy::config::cluster::v3::Cluster proto;
  proto.set_name(kDbTcp);
  proto.set_type(envoy::config::cluster::v3::Cluster::EDS);
  envoy::extensions::filters::http::rbac::v3::RBACPerRoute pr;
  pr.mutable_rbac()->mutable_rules()->set_action(envoy::config::rbac::v3::RBAC::DENY);
  (*proto.mutable_metadata()->mutable_typed_filter_metadata())["envoy.filters.network.rbac.other"].PackFrom(pr);
  auto bad = waypoint::xds::convert_cluster(proto);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("typed_filter_metadata[envoy.filters.network.rbac.other]") != std::string::npos);
  // The action must agree with the key (the virtual-host rule).
  proto.mutable_metadata()->mutable_typed_filter_metadata()->clear();
  (*proto.mutable_metadata()->mutable_typed_filter_metadata())["envoy.filters.network.rbac.allow"].PackFrom(pr);
  CHECK_FALSE(waypoint::xds::convert_cluster(proto).ok());
  proto.mutable_metadata()->mutable_typed_filter_metadata()->clear();
  (*proto.mutable_metadata()->mutable_typed_filter_metadata())["envoy.filters.network.rbac.deny"].PackFrom(pr);
  auto ok = waypoint::xds::convert_cluster(proto);
  REQUIRE(ok.ok());
  REQUIRE(ok.value().network_rbac != nullptr);
  CHECK(ok.value().network_rbac->deny.has_value());
}

TEST_CASE("waypoint authz: istio.io/dry-run policies become shadow rules, evaluated but never enforced") {
  auto c = compile_yaml(R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: dry-deny-admin, namespace: demo, annotations: {istio.io/dry-run: "true"}}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-post, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  action: DENY
  rules: [{to: [{operation: {methods: [POST]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: dry-allow-client, namespace: demo, annotations: {istio.io/dry-run: "1"}}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  rules: [{from: [{source: {principals: ["cluster.local/ns/demo/sa/client"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-dry, namespace: demo, annotations: {istio.io/dry-run: "maybe"}}
spec:
  targetRefs: [{kind: Service, name: other}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/x"]}}]}]
)");
  // The wire shape is istiod's: the enforced DENY keeps its rules, the dry-run DENY is in
  // shadow_rules of the same instance; the ALLOW instance has shadow rules only.
  auto proto = route_proto(c, kCalc);
  const auto& tpfc = proto.virtual_hosts(0).typed_per_filter_config();
  envoy::extensions::filters::http::rbac::v3::RBACPerRoute deny, allow;
  REQUIRE(tpfc.count("envoy.filters.http.rbac.deny") == 1);
  REQUIRE(tpfc.at("envoy.filters.http.rbac.deny").UnpackTo(&deny));
  CHECK(deny.rbac().rules().policies().count("ns[demo]-policy[deny-post]-rule[0]") == 1);
  CHECK(deny.rbac().rules().policies().count("ns[demo]-policy[dry-deny-admin]-rule[0]") == 0);
  CHECK(deny.rbac().shadow_rules().action() == envoy::config::rbac::v3::RBAC::DENY);
  CHECK(deny.rbac().shadow_rules().policies().count("ns[demo]-policy[dry-deny-admin]-rule[0]") == 1);
  CHECK(deny.rbac().shadow_rules_stat_prefix() == "istio_dry_run_deny_");
  REQUIRE(tpfc.count("envoy.filters.http.rbac.allow") == 1);
  REQUIRE(tpfc.at("envoy.filters.http.rbac.allow").UnpackTo(&allow));
  CHECK_FALSE(allow.rbac().has_rules());
  CHECK(allow.rbac().shadow_rules_stat_prefix() == "istio_dry_run_allow_");

  auto rc = converted_route(served(c), kCalc);
  const auto* f = rc.virtual_hosts[0].filters.rbac.get();
  REQUIRE(f);
  CHECK_FALSE(f->allow.has_value());  // nothing enforced by the ALLOW instance
  REQUIRE(f->deny_shadow.has_value());
  REQUIRE(f->allow_shadow.has_value());
  auto judge = [&](const Req& r) {
    waypoint::router::HttpRequest h;
    h.method = r.method;
    h.path = r.path;
    h.authority = r.authority;
    RequestContext ctx;
    ctx.request = &h;
    ctx.peer_principal = r.principal;
    ctx.source_ip = boost::asio::ip::make_address(r.source_ip);
    return waypoint::authz::authorize(*f, ctx);
  };
  // /admin: the dry-run DENY matches, but the request is allowed; the shadow results say why.
  auto admin = judge({.path = "/admin/x", .principal = "spiffe://cluster.local/ns/demo/sa/intruder"});
  CHECK(admin.allowed);
  REQUIRE(admin.shadow.size() == 2);
  CHECK(admin.shadow[0].stat_prefix == "istio_dry_run_deny_");
  CHECK_FALSE(admin.shadow[0].allowed);
  CHECK(admin.shadow[0].policy == "ns[demo]-policy[dry-deny-admin]-rule[0]");
  CHECK(admin.shadow[1].stat_prefix == "istio_dry_run_allow_");
  CHECK_FALSE(admin.shadow[1].allowed);  // the intruder matches no dry-run ALLOW
  CHECK(admin.shadow[1].policy.empty());
  auto ok = judge({.path = "/calc"});
  CHECK(ok.allowed);
  REQUIRE(ok.shadow.size() == 2);
  CHECK(ok.shadow[0].allowed);
  CHECK(ok.shadow[1].allowed);
  CHECK(ok.shadow[1].policy == "ns[demo]-policy[dry-allow-client]-rule[0]");
  // The enforced DENY still denies; the request never reaches the ALLOW instance's shadow.
  auto post = judge({.method = "POST", .path = "/admin"});
  CHECK_FALSE(post.allowed);
  REQUIRE(post.shadow.size() == 1);
  CHECK_FALSE(post.shadow[0].allowed);
  // A value that is not a boolean is reported and the policy stays enforced.
  CHECK(diags_text(c.result.diagnostics).find("metadata.annotations[istio.io/dry-run]") != std::string::npos);
  CHECK_FALSE(decide(converted_route(served(c), kOther), {.path = "/x"}));
}

TEST_CASE("waypoint authz on a TCP port: a dry-run DENY is shadow network RBAC, never enforced") {
  auto c = compile_yaml(std::string(kTcpService) + R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: dry-deny-intruder, namespace: demo, annotations: {istio.io/dry-run: "true"}}
spec:
  targetRefs: [{kind: Service, name: db}]
  action: DENY
  rules: [{from: [{source: {principals: ["cluster.local/ns/demo/sa/intruder"]}}]}]
)");
  CHECK(diags_text(c.result.diagnostics).empty());
  const auto tcp = tcp_cluster_view(c, kDbTcp);
  REQUIRE(tcp.network_rbac != nullptr);
  CHECK_FALSE(tcp.network_rbac->deny.has_value());
  REQUIRE(tcp.network_rbac->deny_shadow.has_value());
  CHECK(decide_tcp(tcp, kIntruder));
  RequestContext ctx;
  ctx.peer_principal = kIntruder;
  const auto d = waypoint::authz::authorize(*tcp.network_rbac, ctx);
  REQUIRE(d.shadow.size() == 1);
  CHECK_FALSE(d.shadow[0].allowed);
}
