// controlplane_lib: Kubernetes YAML loading, AuthorizationPolicy translation, compilation to
// the ztunnel model, the LOCAL_XDS_PATH writer (round trip through ztunnel's own parser) and
// directory fingerprints. Behavioural checks evaluate the compiled policies with ztunnel's
// real authorization engine, so "compiled as istiod does" is checked by effect, not by shape.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "temp_dir.h"
#include "controlplane/authz_policy.h"
#include "controlplane/compiler.h"
#include "controlplane/dir_watch.h"
#include "controlplane/k8s_loader.h"
#include "controlplane/local_xds_writer.h"
#include "ztunnel/authz.h"
#include "ztunnel/local_config.h"
#include "ztunnel/state.h"

using namespace controlplane;
namespace fs = std::filesystem;

namespace {

using testutil::examples_k8s;

class TempDir : public testutil::TempDir {
 public:
  TempDir() : testutil::TempDir("cp-test") {}
};

const ztunnel::Workload* workload(const ztunnel::LocalConfig& c, const std::string& ns, const std::string& name) {
  for (const auto& w : c.workloads) {
    if (w.ns == ns && w.name == name) return &w;
  }
  return nullptr;
}
const ztunnel::Service* service(const ztunnel::LocalConfig& c, const std::string& ns, const std::string& name) {
  for (const auto& s : c.services) {
    if (s.ns == ns && s.name == name) return &s;
  }
  return nullptr;
}
const ztunnel::Authorization* policy(const ztunnel::LocalConfig& c, const std::string& ns, const std::string& name) {
  for (const auto& p : c.policies) {
    if (p.ns == ns && p.name == name) return &p;
  }
  return nullptr;
}

std::string dump(const Diagnostics& diags) {
  std::string out;
  for (const auto& d : diags) out += d.to_string() + "\n";
  return out;
}

bool has_diag(const Diagnostics& diags, Severity s, const std::string& fragment) {
  return std::any_of(diags.begin(), diags.end(), [&](const Diagnostic& d) {
    return d.severity == s && d.to_string().find(fragment) != std::string::npos;
  });
}

ztunnel::IpAddr ip(const char* s) {
  return *ztunnel::parse_ip(s);
}

// Decision for a connection from `src` (with its identity) to `dst`:port in `cfg`.
ztunnel::Decision decide(const ztunnel::LocalConfig& cfg, const ztunnel::Workload& src, const ztunnel::Workload& dst,
                         uint16_t port) {
  auto snap = ztunnel::Snapshot::from_local_config(cfg);
  const ztunnel::Workload* d = snap->find_workload_by_uid(dst.uid);
  REQUIRE(d != nullptr);
  ztunnel::ConnectionInfo conn{src.addresses.at(0), dst.addresses.at(0), port, src.identity()};
  return ztunnel::evaluate(*snap, conn, *d);
}

// Writes, reparses with ztunnel's parser, writes again: must be a fixpoint.
ztunnel::LocalConfig round_trip(const ztunnel::LocalConfig& cfg) {
  const std::string first = to_local_xds_yaml(cfg, "test");
  auto parsed = ztunnel::parse_local_config(first);
  INFO(first);
  INFO((parsed.ok() ? std::string() : parsed.error()));
  REQUIRE(parsed.ok());
  const std::string second = to_local_xds_yaml(*parsed, "test");
  CHECK(first == second);
  return std::move(parsed).value();
}

// A mesh exercising every rule of the compiler.
const char* kShopNamespaces = R"(
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: waypoint
---
apiVersion: v1
kind: Namespace
metadata:
  name: legacy
---
apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
)";

const char* kShopGateways = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: shop
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: wl-waypoint
  namespace: shop
  labels:
    istio.io/waypoint-for: workload
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15009
    protocol: HBONE
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ingress
  namespace: shop
spec:
  gatewayClassName: istio
)";

const char* kShopPods = R"(
apiVersion: v1
kind: Pod
metadata:
  name: waypoint-7c9d
  namespace: shop
  labels:
    gateway.networking.k8s.io/gateway-name: waypoint
    istio.io/dataplane-mode: none
spec:
  serviceAccountName: waypoint
  nodeName: node-1
status:
  podIP: 10.0.0.100
---
apiVersion: v1
kind: Pod
metadata:
  name: wl-waypoint-1
  namespace: shop
  labels:
    gateway.networking.k8s.io/gateway-name: wl-waypoint
    istio.io/dataplane-mode: none
spec:
  nodeName: node-1
status:
  podIP: 10.0.0.101
---
apiVersion: v1
kind: Pod
metadata:
  name: a-5d8f9-x2x4k
  namespace: shop
  labels:
    app: a
    version: v2
    pod-template-hash: 5d8f9
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: a-5d8f9
    controller: true
spec:
  serviceAccountName: sa-a
  nodeName: node-1
  containers:
  - name: app
    ports:
    - name: http
      containerPort: 8080
status:
  podIP: 10.0.0.1
  podIPs:
  - ip: 10.0.0.1
  - ip: fd00::1
---
apiVersion: v1
kind: Pod
metadata:
  name: b
  namespace: shop
  labels:
    app: b
    istio.io/use-waypoint: wl-waypoint
    service.istio.io/canonical-name: bee
spec:
  nodeName: node-2
  containers:
  - name: app
    ports:
    - name: web
      containerPort: 9090
status:
  podIP: 10.0.0.2
  conditions:
  - type: Ready
    status: "False"
---
apiVersion: v1
kind: Pod
metadata:
  name: c
  namespace: shop
  labels:
    app: c
    istio.io/dataplane-mode: none
spec:
  nodeName: node-1
status:
  podIP: 10.0.0.3
---
apiVersion: v1
kind: Pod
metadata:
  name: d
  namespace: legacy
  labels:
    app: d
spec:
  nodeName: node-1
status:
  podIP: 10.0.0.4
---
apiVersion: v1
kind: Pod
metadata:
  name: pending
  namespace: shop
spec:
  nodeName: node-1
)";

const char* kShopServices = R"(
apiVersion: v1
kind: Service
metadata:
  name: a-svc
  namespace: shop
spec:
  selector:
    app: a
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 80
    targetPort: http
  - name: admin
    port: 9000
    targetPort: 9001
  - name: dns
    port: 53
    protocol: UDP
---
apiVersion: v1
kind: Service
metadata:
  name: b-svc
  namespace: shop
  labels:
    istio.io/use-waypoint: none
spec:
  selector:
    app: b
  clusterIP: 10.96.0.11
  ports:
  - port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: d-svc
  namespace: legacy
spec:
  selector:
    app: d
  clusterIP: None
  ports:
  - port: 5432
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm1
  namespace: shop
spec:
  address: 10.0.1.1
  serviceAccount: vm
  labels:
    app: a
  ports:
    http: 8081
  weight: 3
)";

const char* kShopPolicies = R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-a
  namespace: shop
spec:
  selector:
    matchLabels:
      app: a
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/*"]
    to:
    - operation:
        ports: ["8080"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-legacy
  namespace: shop
spec:
  action: DENY
  rules:
  - from:
    - source:
        namespaces: ["legacy"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: global-deny
  namespace: istio-system
spec:
  action: DENY
  rules:
  - from:
    - source:
        ipBlocks: ["192.168.0.0/16"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: audit
  namespace: shop
spec:
  action: AUDIT
  rules:
  - {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: mesh-select
  namespace: istio-system
spec:
  selector:
    matchLabels:
      app: d
  action: DENY
  rules:
  - to:
    - operation:
        ports: ["5432"]
)";

CompiledState compile_shop(TempDir& dir) {
  dir.write("00-namespaces.yaml", kShopNamespaces);
  dir.write("10-gateways.yaml", kShopGateways);
  dir.write("20-pods.yaml", kShopPods);
  dir.write("30-services.yml", kShopServices);
  dir.write("40-policies.yaml", kShopPolicies);
  auto state = compile_directory(dir.path(), CompileOptions{});
  REQUIRE(state.ok());
  return std::move(state).value();
}

// Translates the AuthorizationPolicy whose `spec` is given (namespace "ns1").
std::optional<ztunnel::Authorization> translate(const std::string& spec, Diagnostics& diags,
                                                const std::string& ns = "ns1") {
  const std::string doc =
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
      "metadata:\n  name: p\n  namespace: " +
      ns + "\nspec:\n" + spec;
  ResourceSet set;
  parse_manifests(doc, "policy.yaml", set, diags);
  INFO(dump(diags));
  REQUIRE(set.policies.size() == 1);
  return translate_policy(set.policies[0], kDefaultRootNamespace, diags);
}

ztunnel::StringMatch exact(const char* v) {
  return {ztunnel::StringMatch::Kind::Exact, v};
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("examples/k8s compiles to the demo mesh and its policy denies only the client", "[controlplane]") {
  auto state = compile_directory(examples_k8s(), CompileOptions{});
  REQUIRE(state.ok());
  INFO(dump(state->diagnostics));
  CHECK(count(state->diagnostics, Severity::Error) == 0);
  CHECK(count(state->diagnostics, Severity::Warning) == 0);
  const auto& cfg = state->config;
  REQUIRE(cfg.workloads.size() == 3);
  REQUIRE(cfg.services.size() == 1);
  REQUIRE(cfg.policies.size() == 1);

  // Sorted by uid, in istiod's uid format.
  CHECK(cfg.workloads[0].uid == "Kubernetes//Pod/demo/client");
  CHECK(cfg.workloads[1].uid == "Kubernetes//Pod/demo/web-1");
  CHECK(cfg.workloads[2].uid == "Kubernetes//Pod/demo/web-2");

  const auto* web1 = workload(cfg, "demo", "web-1");
  const auto* client = workload(cfg, "demo", "client");
  REQUIRE(web1);
  REQUIRE(client);
  CHECK(web1->tunnel_protocol == ztunnel::TunnelProtocol::Hbone);
  CHECK(web1->service_account == "web");
  CHECK(web1->node == "demo-node");
  CHECK(web1->addresses == std::vector<ztunnel::IpAddr>{ip("10.99.1.11")});
  CHECK(web1->canonical_name == "web");
  CHECK(web1->canonical_revision == "v1");
  CHECK(web1->identity().uri() == "spiffe://cluster.local/ns/demo/sa/web");
  // Named targetPort "http" resolved through the pod's containerPort.
  REQUIRE(web1->services.count("demo/web.demo.svc.cluster.local") == 1);
  CHECK(web1->services.at("demo/web.demo.svc.cluster.local").find(80) == uint16_t{8080});
  CHECK(client->services.empty());

  const auto& svc = cfg.services[0];
  CHECK(svc.hostname == "web.demo.svc.cluster.local");
  REQUIRE(svc.vips.size() == 1);
  CHECK(svc.vips[0].to_string() == "/10.99.250.10");
  CHECK(svc.ports.find(80) == uint16_t{0});  // named: per-endpoint override decides

  const auto& pol = cfg.policies[0];
  CHECK(pol.key() == "demo/deny-client");
  CHECK(pol.scope == ztunnel::AuthzScope::Namespace);
  CHECK(pol.action == ztunnel::AuthzAction::Deny);

  // The effect, through ztunnel's engine and a snapshot built from the round-tripped file.
  const auto reparsed = round_trip(cfg);
  const auto* web2 = workload(reparsed, "demo", "web-2");
  REQUIRE(web2);
  CHECK_FALSE(decide(reparsed, *client, *web1, 8080).allow);
  CHECK(decide(reparsed, *web2, *web1, 8080).allow);
}

TEST_CASE("compiler: enrolment, workload identity fields, services, waypoints, policies", "[controlplane]") {
  TempDir dir;
  const auto state = compile_shop(dir);
  INFO(dump(state.diagnostics));
  const auto& cfg = state.config;
  CHECK(count(state.diagnostics, Severity::Error) == 0);

  SECTION("enrolment and workload fields") {
    const auto* a = workload(cfg, "shop", "a-5d8f9-x2x4k");
    REQUIRE(a);
    CHECK(a->uid == "Kubernetes//Pod/shop/a-5d8f9-x2x4k");
    CHECK(a->tunnel_protocol == ztunnel::TunnelProtocol::Hbone);
    CHECK(a->workload_name == "a");  // Deployment behind the ReplicaSet
    CHECK(a->workload_type == "deployment");
    CHECK(a->canonical_name == "a");
    CHECK(a->canonical_revision == "v2");
    CHECK(a->service_account == "sa-a");
    CHECK(a->cluster_id == "Kubernetes");
    CHECK(a->addresses == std::vector<ztunnel::IpAddr>{ip("10.0.0.1"), ip("fd00::1")});
    CHECK(a->status == ztunnel::HealthStatus::Healthy);

    const auto* b = workload(cfg, "shop", "b");
    REQUIRE(b);
    CHECK(b->canonical_name == "bee");  // service.istio.io/canonical-name wins
    CHECK(b->canonical_revision == "latest");
    CHECK(b->service_account == "default");
    CHECK(b->status == ztunnel::HealthStatus::Unhealthy);  // Ready=False

    const auto* c = workload(cfg, "shop", "c");  // pod opted out
    REQUIRE(c);
    CHECK(c->tunnel_protocol == ztunnel::TunnelProtocol::None);
    const auto* d = workload(cfg, "legacy", "d");  // namespace not in ambient
    REQUIRE(d);
    CHECK(d->tunnel_protocol == ztunnel::TunnelProtocol::None);
    CHECK_FALSE(d->waypoint);

    CHECK(workload(cfg, "shop", "pending") == nullptr);  // no IP yet
    CHECK(has_diag(state.diagnostics, Severity::Info, "Pod shop/pending"));

    const auto* vm = workload(cfg, "shop", "vm1");
    REQUIRE(vm);
    CHECK(vm->uid == "Kubernetes/networking.istio.io/WorkloadEntry/shop/vm1");
    CHECK(vm->service_account == "vm");
    CHECK(vm->capacity == 3);
    CHECK(vm->tunnel_protocol == ztunnel::TunnelProtocol::Hbone);
  }

  SECTION("services: VIPs, numeric and named target ports, per-workload port maps") {
    const auto* svc = service(cfg, "shop", "a-svc");
    REQUIRE(svc);
    CHECK(svc->hostname == "a-svc.shop.svc.cluster.local");
    REQUIRE(svc->vips.size() == 1);
    CHECK(svc->vips[0].ip == ip("10.96.0.10"));
    CHECK(svc->ports.size() == 2);  // UDP port dropped
    CHECK(svc->ports.find(80) == uint16_t{0});
    CHECK(svc->ports.find(9000) == uint16_t{9001});

    const auto* a = workload(cfg, "shop", "a-5d8f9-x2x4k");
    const auto* vm = workload(cfg, "shop", "vm1");
    REQUIRE(a);
    REQUIRE(vm);
    const std::string key = "shop/a-svc.shop.svc.cluster.local";
    REQUIRE(a->services.count(key));
    CHECK(a->services.at(key).find(80) == uint16_t{8080});  // containerPort "http"
    CHECK(a->services.at(key).find(9000) == uint16_t{9001});
    REQUIRE(vm->services.count(key));
    CHECK(vm->services.at(key).find(80) == uint16_t{8081});  // WorkloadEntry ports["http"]

    const auto* headless = service(cfg, "legacy", "d-svc");
    REQUIRE(headless);
    CHECK(headless->vips.empty());
    const auto* d = workload(cfg, "legacy", "d");
    REQUIRE(d);
    CHECK(d->services.count("legacy/d-svc.legacy.svc.cluster.local") == 1);
  }

  SECTION("waypoints: namespace label for services, waypoint-for, opt-out, pod label") {
    const auto* a_svc = service(cfg, "shop", "a-svc");
    REQUIRE(a_svc);
    REQUIRE(a_svc->waypoint);
    CHECK(a_svc->waypoint->to_string() == "/10.0.0.100");  // the waypoint pod's IP
    CHECK(a_svc->waypoint->hbone_mtls_port == 15008);

    const auto* b_svc = service(cfg, "shop", "b-svc");  // use-waypoint: none
    REQUIRE(b_svc);
    CHECK_FALSE(b_svc->waypoint);

    // The namespace's waypoint is for services (default): workloads do not get it.
    const auto* a = workload(cfg, "shop", "a-5d8f9-x2x4k");
    REQUIRE(a);
    CHECK_FALSE(a->waypoint);
    // Pod b asks for a workload waypoint itself.
    const auto* b = workload(cfg, "shop", "b");
    REQUIRE(b);
    REQUIRE(b->waypoint);
    CHECK(b->waypoint->to_string() == "/10.0.0.101");
    CHECK(b->waypoint->hbone_mtls_port == 15009);
    // Waypoint pods never get a waypoint.
    const auto* wp = workload(cfg, "shop", "waypoint-7c9d");
    REQUIRE(wp);
    CHECK_FALSE(wp->waypoint);
    // A Gateway of another class is not a waypoint.
    CHECK(has_diag(state.diagnostics, Severity::Info, "Gateway shop/ingress"));
  }

  SECTION("policies: scopes, selector keys on workloads, AUDIT dropped") {
    REQUIRE(cfg.policies.size() == 4);
    const auto* allow_a = policy(cfg, "shop", "allow-a");
    REQUIRE(allow_a);
    CHECK(allow_a->scope == ztunnel::AuthzScope::WorkloadSelector);
    const auto* deny_legacy = policy(cfg, "shop", "deny-legacy");
    REQUIRE(deny_legacy);
    CHECK(deny_legacy->scope == ztunnel::AuthzScope::Namespace);
    const auto* global = policy(cfg, "istio-system", "global-deny");
    REQUIRE(global);
    CHECK(global->scope == ztunnel::AuthzScope::Global);
    CHECK(policy(cfg, "shop", "audit") == nullptr);
    CHECK(has_diag(state.diagnostics, Severity::Info, "AUDIT"));

    const auto* a = workload(cfg, "shop", "a-5d8f9-x2x4k");
    const auto* vm = workload(cfg, "shop", "vm1");
    const auto* b = workload(cfg, "shop", "b");
    const auto* d = workload(cfg, "legacy", "d");
    REQUIRE((a && vm && b && d));
    CHECK(a->authorization_policies == std::vector<std::string>{"shop/allow-a"});
    CHECK(vm->authorization_policies == std::vector<std::string>{"shop/allow-a"});
    CHECK(b->authorization_policies.empty());
    // A selector policy in the root namespace selects across namespaces.
    CHECK(d->authorization_policies == std::vector<std::string>{"istio-system/mesh-select"});
  }

  SECTION("the compiled policies decide as written") {
    const auto cfg2 = round_trip(cfg);
    const auto* a = workload(cfg2, "shop", "a-5d8f9-x2x4k");
    const auto* b = workload(cfg2, "shop", "b");
    const auto* d = workload(cfg2, "legacy", "d");
    REQUIRE((a && b && d));
    CHECK(decide(cfg2, *b, *a, 8080).allow);        // shop principal, port 8080
    CHECK_FALSE(decide(cfg2, *b, *a, 9001).allow);  // ALLOW exists, port not listed
    CHECK_FALSE(decide(cfg2, *d, *b, 80).allow);    // legacy namespace denied in shop
    CHECK(decide(cfg2, *b, *d, 80).allow);          // legacy has no policy on port 80
    CHECK_FALSE(decide(cfg2, *b, *d, 5432).allow);  // ... but the mesh-wide selector one
  }
}

TEST_CASE("writer: output parses with ztunnel's parser and is a fixpoint", "[controlplane]") {
  ztunnel::LocalConfig cfg;
  ztunnel::Workload w;
  w.uid = "c1//Pod/ns/w";
  w.name = "w";
  w.ns = "true";  // a namespace that YAML would read as a bool when unquoted
  w.service_account = "123";
  w.addresses = {ip("10.1.2.3"), ip("2001:db8::5")};
  w.tunnel_protocol = ztunnel::TunnelProtocol::Hbone;
  w.network_mode = ztunnel::NetworkMode::HostNetwork;
  w.node = "n";
  w.network = "net1";
  w.cluster_id = "c1";
  w.locality = {"r", "z", ""};
  w.capacity = 7;
  w.native_tunnel = true;
  w.waypoint = ztunnel::GatewayAddress{ztunnel::NamespacedHostname{"ns", "wp.ns.svc.cluster.local"}, 15008};
  w.network_gateway = ztunnel::GatewayAddress{ztunnel::NetworkAddress{"net2", ip("192.0.2.1")}, 15009};
  w.application_tunnel = ztunnel::ApplicationTunnel{ztunnel::ApplicationTunnel::Protocol::Proxy, 15088};
  w.authorization_policies = {"ns/p1", "ns/p2"};
  w.services["ns/s.ns.svc.cluster.local"].set(80, 8080);
  w.services["ns/empty.ns.svc.cluster.local"];  // selected, but no port resolvable
  cfg.workloads.push_back(w);

  ztunnel::Service s;
  s.name = "s";
  s.ns = "ns";
  s.hostname = "s.ns.svc.cluster.local";
  s.vips = {ztunnel::NetworkAddress{"", ip("10.96.0.1")}, ztunnel::NetworkAddress{"net1", ip("fd00::1")}};
  s.ports.set(80, 0);
  s.ports.set(443, 8443);
  s.subject_alt_names = {"spiffe://cluster.local/ns/ns/sa/x"};
  s.waypoint = ztunnel::GatewayAddress{ztunnel::NetworkAddress{"", ip("10.0.0.9")}, 15008};
  s.load_balancer = ztunnel::LoadBalancer{{ztunnel::LoadBalancerScope::Zone},
                                          ztunnel::LoadBalancerMode::Failover,
                                          ztunnel::LoadBalancerHealthPolicy::AllowAll};
  s.ip_families = ztunnel::IpFamily::Dual;
  s.canonical = true;
  ztunnel::Endpoint ep;
  ep.workload_uid = w.uid;
  ep.port.set(80, 8081);
  s.endpoints.push_back(ep);
  cfg.services.push_back(s);

  ztunnel::Authorization a;
  a.name = "p1";
  a.ns = "ns";
  a.scope = ztunnel::AuthzScope::WorkloadSelector;
  a.action = ztunnel::AuthzAction::Deny;
  a.dry_run = true;
  ztunnel::AuthzMatch m;
  m.namespaces = {exact("a"), {ztunnel::StringMatch::Kind::Presence, ""}};
  m.not_namespaces = {{ztunnel::StringMatch::Kind::Prefix, "kube-"}};
  m.principals = {{ztunnel::StringMatch::Kind::Suffix, "/sa/x"}};
  m.not_principals = {exact("cluster.local/ns/a/sa/b")};
  m.source_ips = {*ztunnel::Cidr::parse("10.0.0.0/8")};
  m.not_source_ips = {*ztunnel::Cidr::parse("fd00::/64")};
  m.destination_ips = {*ztunnel::Cidr::parse("10.1.2.3")};
  m.not_destination_ips = {*ztunnel::Cidr::parse("10.1.2.4/31")};
  m.destination_ports = {80, 443};
  m.not_destination_ports = {22};
  m.service_accounts = {{"ns", "sa"}};
  m.not_service_accounts = {{"ns", "other"}};
  a.rules = {ztunnel::AuthzRule{ztunnel::AuthzClause{m, ztunnel::AuthzMatch{}}, ztunnel::AuthzClause{}},
             ztunnel::AuthzRule{}};
  cfg.policies.push_back(a);
  ztunnel::Authorization none;
  none.name = "no-rules";
  none.ns = "";
  none.scope = ztunnel::AuthzScope::Global;
  cfg.policies.push_back(none);

  const auto back = round_trip(cfg);
  REQUIRE(back.workloads.size() == 1);
  const auto& w2 = back.workloads[0];
  CHECK(w2.ns == "true");
  CHECK(w2.service_account == "123");
  CHECK(w2.addresses == w.addresses);
  CHECK(w2.network_mode == ztunnel::NetworkMode::HostNetwork);
  CHECK(w2.locality == w.locality);
  CHECK(w2.capacity == 7);
  CHECK(w2.native_tunnel);
  CHECK(w2.waypoint == w.waypoint);
  CHECK(w2.network_gateway == w.network_gateway);
  CHECK(w2.application_tunnel == w.application_tunnel);
  CHECK(w2.authorization_policies == w.authorization_policies);
  CHECK(w2.services == w.services);

  REQUIRE(back.services.size() == 1);
  const auto& s2 = back.services[0];
  CHECK(s2.vips == s.vips);
  CHECK(s2.ports == s.ports);
  CHECK(s2.subject_alt_names == s.subject_alt_names);
  CHECK(s2.waypoint == s.waypoint);
  CHECK(s2.load_balancer == s.load_balancer);
  CHECK(s2.ip_families == s.ip_families);
  CHECK(s2.canonical);
  REQUIRE(s2.endpoints.size() == 1);
  CHECK(s2.endpoints[0].port == ep.port);

  REQUIRE(back.policies.size() == 2);
  const auto& a2 = back.policies[0];
  CHECK(a2.dry_run);
  CHECK(a2.action == ztunnel::AuthzAction::Deny);
  CHECK(a2.scope == ztunnel::AuthzScope::WorkloadSelector);
  REQUIRE(a2.rules.size() == 2);
  REQUIRE(a2.rules[0].size() == 2);
  REQUIRE(a2.rules[0][0].size() == 2);
  const auto& m2 = a2.rules[0][0][0];
  CHECK(m2.namespaces == m.namespaces);
  CHECK(m2.not_namespaces == m.not_namespaces);
  CHECK(m2.principals == m.principals);
  CHECK(m2.not_principals == m.not_principals);
  CHECK(m2.source_ips == m.source_ips);
  CHECK(m2.not_source_ips == m.not_source_ips);
  CHECK(m2.destination_ips == m.destination_ips);
  CHECK(m2.not_destination_ips == m.not_destination_ips);
  CHECK(m2.destination_ports == m.destination_ports);
  CHECK(m2.not_destination_ports == m.not_destination_ports);
  CHECK(m2.service_accounts == m.service_accounts);
  CHECK(m2.not_service_accounts == m.not_service_accounts);
  CHECK(a2.rules[0][0][1].empty());
  CHECK(a2.rules[0][1].empty());
  CHECK(a2.rules[1].empty());
  CHECK(back.policies[1].rules.empty());

  // An empty config is a valid file too.
  const auto empty = round_trip(ztunnel::LocalConfig{});
  CHECK(empty.workloads.empty());
}

TEST_CASE("compiled mesh round-trips through parse_local_config", "[controlplane]") {
  TempDir dir;
  const auto state = compile_shop(dir);
  const auto back = round_trip(state.config);
  CHECK(back.workloads.size() == state.config.workloads.size());
  CHECK(back.services.size() == state.config.services.size());
  CHECK(back.policies.size() == state.config.policies.size());
  for (size_t i = 0; i < back.workloads.size(); ++i) {
    CHECK(back.workloads[i].uid == state.config.workloads[i].uid);
    CHECK(back.workloads[i].services == state.config.workloads[i].services);
    CHECK(back.workloads[i].waypoint == state.config.workloads[i].waypoint);
  }
}

TEST_CASE("invalid objects are reported with file, object and field; the rest compiles", "[controlplane]") {
  TempDir dir;
  dir.write("good.yaml", R"(
apiVersion: v1
kind: Namespace
metadata:
  name: ns1
  labels: {istio.io/dataplane-mode: ambient}
---
apiVersion: v1
kind: Pod
metadata: {name: ok-1, namespace: ns1, labels: {app: ok}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: bad-ip, namespace: ns1}
status: {podIP: 10.0.0.999}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dep, namespace: ns1}
---
this: is: not: yaml
---
apiVersion: v1
kind: Pod
metadata: {name: ok-2, namespace: ns1, labels: {app: ok}}
status: {podIP: 10.0.0.2}
)");
  dir.write("more.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: bad-port, namespace: ns1}
spec:
  selector: {app: ok}
  ports:
  - port: 70000
---
apiVersion: v1
kind: Service
metadata: {name: ok-svc, namespace: ns1}
spec:
  selector: {app: ok}
  clusterIP: 10.96.0.5
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: typo, namespace: ns1}
spec:
  action: DENY
  rules:
  - from:
    - source:
        principal: ["cluster.local/ns/ns1/sa/x"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad-action, namespace: ns1}
spec:
  action: REJECT
---
apiVersion: v1
kind: Pod
metadata: {name: ok-1, namespace: ns1}
status: {podIP: 10.0.0.3}
---
kind: Pod
metadata: {name: no-api}
---
apiVersion: v1
kind: Pod
metadata: {name: Bad_Name}
status: {podIP: 10.0.0.4}
)");
  dir.write("notes.txt", "ignored: not a manifest extension");
  dir.write(".hidden.yaml", "::: garbage");

  auto state = compile_directory(dir.path(), CompileOptions{});
  REQUIRE(state.ok());
  const auto& diags = state->diagnostics;
  INFO(dump(diags));
  const std::string good = dir.file("good.yaml");
  const std::string more = dir.file("more.yaml");

  // Each problem names file, object and field.
  CHECK(has_diag(diags, Severity::Error, good + ": Pod ns1/bad-ip: status.podIP: invalid IP address '10.0.0.999'"));
  CHECK(has_diag(diags, Severity::Error, good + ": document 5 (line 21): invalid YAML"));
  CHECK(has_diag(diags, Severity::Info, good + ": Deployment ns1/dep"));
  CHECK(has_diag(diags, Severity::Error,
                 more + ": Service ns1/bad-port: spec.ports[0].port: expected an integer in [1, 65535]"));
  CHECK(has_diag(diags, Severity::Error,
                 more + ": AuthorizationPolicy ns1/typo: spec.rules[0].from[0].source.principal: unknown field"));
  CHECK(has_diag(diags, Severity::Error, more + ": AuthorizationPolicy ns1/bad-action: spec.action"));
  CHECK(has_diag(diags, Severity::Error,
                 more + ": Pod ns1/ok-1: metadata.name: duplicate Pod (first defined in " + good));
  CHECK(has_diag(diags, Severity::Error, "apiVersion: missing"));
  CHECK(has_diag(diags, Severity::Error, "metadata.name: 'Bad_Name' is not a valid name"));
  // Files that are not manifests are not read at all.
  for (const auto& d : diags) {
    CHECK(d.file.find("notes.txt") == std::string::npos);
    CHECK(d.file.find(".hidden") == std::string::npos);
  }

  // The valid rest compiled: the first ok-1 (not the duplicate), ok-2, the good service.
  const auto& cfg = state->config;
  REQUIRE(cfg.workloads.size() == 2);
  const auto* ok1 = workload(cfg, "ns1", "ok-1");
  REQUIRE(ok1);
  CHECK(ok1->addresses == std::vector<ztunnel::IpAddr>{ip("10.0.0.1")});
  CHECK(ok1->services.count("ns1/ok-svc.ns1.svc.cluster.local") == 1);
  CHECK(workload(cfg, "ns1", "ok-2"));
  CHECK(cfg.services.size() == 1);
  CHECK(cfg.policies.empty());
  round_trip(cfg);
}

TEST_CASE("loader: List kind, documents split at ---, fatal only for a missing directory", "[controlplane]") {
  Diagnostics diags;
  ResourceSet set;
  parse_manifests(R"(---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: sa1, namespace: x}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm}
--- # trailing comment on the marker
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
---
)",
                  "list.yaml", set, diags);
  INFO(dump(diags));
  CHECK(set.service_accounts.size() == 1);
  CHECK(set.namespaces.size() == 1);
  CHECK(count(diags, Severity::Error) == 0);
  CHECK(has_diag(diags, Severity::Info, "ConfigMap"));

  auto missing = compile_directory("/nonexistent/cp-test-dir", CompileOptions{});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().find("/nonexistent/cp-test-dir") != std::string::npos);
}

TEST_CASE("options: cluster id, domain and trust domain reach uids, hostnames and identities", "[controlplane]") {
  CompileOptions opt;
  opt.cluster_id = "east";
  opt.cluster_domain = "corp.internal";
  opt.trust_domain = "example.org";
  auto state = compile_directory(examples_k8s(), opt);
  REQUIRE(state.ok());
  const auto* web1 = workload(state->config, "demo", "web-1");
  REQUIRE(web1);
  CHECK(web1->uid == "east//Pod/demo/web-1");
  CHECK(web1->cluster_id == "east");
  CHECK(web1->identity().uri() == "spiffe://example.org/ns/demo/sa/web");
  CHECK(web1->services.count("demo/web.demo.svc.corp.internal") == 1);
  CHECK(state->config.services.at(0).hostname == "web.demo.svc.corp.internal");
}

// ---- AuthorizationPolicy translation matrix ----

TEST_CASE("authz: scope from selector and namespace", "[controlplane][authz]") {
  Diagnostics d;
  auto ns = translate("  action: DENY\n", d);
  REQUIRE(ns);
  CHECK(ns->scope == ztunnel::AuthzScope::Namespace);
  CHECK(ns->ns == "ns1");
  CHECK(ns->action == ztunnel::AuthzAction::Deny);

  auto global = translate("  action: DENY\n", d, "istio-system");
  REQUIRE(global);
  CHECK(global->scope == ztunnel::AuthzScope::Global);
  CHECK(global->ns == "istio-system");

  auto sel = translate("  selector:\n    matchLabels: {app: x}\n", d);
  REQUIRE(sel);
  CHECK(sel->scope == ztunnel::AuthzScope::WorkloadSelector);
  CHECK(sel->action == ztunnel::AuthzAction::Allow);  // default action
  CHECK(sel->rules.empty());                          // no rules: ALLOW matches nothing

  auto empty_sel = translate("  selector: {}\n", d);
  REQUIRE(empty_sel);
  CHECK(empty_sel->scope == ztunnel::AuthzScope::WorkloadSelector);
}

TEST_CASE("authz: AUDIT, CUSTOM and targetRef policies are not sent to ztunnel", "[controlplane][authz]") {
  for (const char* spec : {"  action: AUDIT\n  rules: [{}]\n", "  action: CUSTOM\n  provider: {name: x}\n",
                           "  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}\n"}) {
    Diagnostics d;
    INFO(spec);
    CHECK_FALSE(translate(spec, d));
    CHECK(count(d, Severity::Info) == 1);
  }
}

TEST_CASE("authz: principals and namespaces globs", "[controlplane][authz]") {
  using K = ztunnel::StringMatch::Kind;
  CHECK(string_match_from_glob("*") == ztunnel::StringMatch{K::Presence, ""});
  CHECK(string_match_from_glob("*/sa/web") == ztunnel::StringMatch{K::Suffix, "/sa/web"});
  CHECK(string_match_from_glob("cluster.local/ns/x/*") == ztunnel::StringMatch{K::Prefix, "cluster.local/ns/x/"});
  CHECK(string_match_from_glob("cluster.local/ns/x/sa/y") == ztunnel::StringMatch{K::Exact, "cluster.local/ns/x/sa/y"});
  CHECK(string_match_from_glob("a*b") == ztunnel::StringMatch{K::Exact, "a*b"});
}

TEST_CASE("authz: rule structure and every L4 field", "[controlplane][authz]") {
  Diagnostics d;
  auto p = translate(R"(  action: ALLOW
  rules:
  - to:
    - operation: {ports: ["80", "443"], notPorts: ["8443"]}
    - operation: {ports: ["9090"]}
    from:
    - source:
        principals: ["cluster.local/ns/a/sa/b", "*"]
        notPrincipals: ["*/sa/evil"]
        namespaces: ["a*"]
        notNamespaces: ["kube-system"]
        ipBlocks: ["10.0.0.0/8", "192.168.1.1"]
        notIpBlocks: ["10.9.0.0/16"]
        serviceAccounts: ["web", "other/db"]
        notServiceAccounts: ["other/bad"]
    - source: {namespaces: ["b"]}
    when:
    - key: source.ip
      values: ["172.16.0.0/12"]
      notValues: ["172.16.0.1"]
    - key: destination.port
      values: ["80"]
    - key: destination.ip
      notValues: ["10.96.0.0/12"]
    - key: source.namespace
      values: ["a"]
    - key: source.principal
      notValues: ["cluster.local/ns/a/sa/x"]
  - {}
)",
                     d);
  INFO(dump(d));
  REQUIRE(p);
  CHECK(d.empty());
  REQUIRE(p->rules.size() == 2);
  const auto& r = p->rules[0];
  REQUIRE(r.size() == 7);  // to, from, then one clause per condition
  // to: two entries OR-ed in one clause
  REQUIRE(r[0].size() == 2);
  CHECK(r[0][0].destination_ports == std::vector<uint16_t>{80, 443});
  CHECK(r[0][0].not_destination_ports == std::vector<uint16_t>{8443});
  CHECK(r[0][1].destination_ports == std::vector<uint16_t>{9090});
  // from
  REQUIRE(r[1].size() == 2);
  const auto& m = r[1][0];
  using K = ztunnel::StringMatch::Kind;
  CHECK(m.principals == std::vector<ztunnel::StringMatch>{exact("cluster.local/ns/a/sa/b"), {K::Presence, ""}});
  CHECK(m.not_principals == std::vector<ztunnel::StringMatch>{{K::Suffix, "/sa/evil"}});
  CHECK(m.namespaces == std::vector<ztunnel::StringMatch>{{K::Prefix, "a"}});
  CHECK(m.not_namespaces == std::vector<ztunnel::StringMatch>{exact("kube-system")});
  CHECK(m.source_ips ==
        std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("10.0.0.0/8"), *ztunnel::Cidr::parse("192.168.1.1/32")});
  CHECK(m.not_source_ips == std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("10.9.0.0/16")});
  CHECK(m.service_accounts == std::vector<ztunnel::ServiceAccountMatch>{{"ns1", "web"}, {"other", "db"}});
  CHECK(m.not_service_accounts == std::vector<ztunnel::ServiceAccountMatch>{{"other", "bad"}});
  CHECK(r[1][1].namespaces == std::vector<ztunnel::StringMatch>{exact("b")});
  // when
  REQUIRE(r[2].size() == 1);
  CHECK(r[2][0].source_ips == std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("172.16.0.0/12")});
  CHECK(r[2][0].not_source_ips == std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("172.16.0.1")});
  CHECK(r[3][0].destination_ports == std::vector<uint16_t>{80});
  CHECK(r[4][0].not_destination_ips == std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("10.96.0.0/12")});
  CHECK(r[5][0].namespaces == std::vector<ztunnel::StringMatch>{exact("a")});
  CHECK(r[6][0].not_principals == std::vector<ztunnel::StringMatch>{exact("cluster.local/ns/a/sa/x")});
  // `- {}`: a rule without clauses, which matches every connection.
  CHECK(p->rules[1].empty());
}

TEST_CASE("authz: L7 attributes — ALLOW rule omitted, DENY rule kept without them", "[controlplane][authz]") {
  SECTION("ALLOW: the L7 rule goes, the L4 rule stays") {
    Diagnostics d;
    auto p = translate(R"(  rules:
  - to:
    - operation: {methods: ["GET"], ports: ["80"]}
  - from:
    - source: {namespaces: ["a"]}
)",
                       d);
    REQUIRE(p);
    REQUIRE(p->rules.size() == 1);
    CHECK(p->rules[0][0][0].namespaces == std::vector<ztunnel::StringMatch>{exact("a")});
    CHECK(has_diag(d, Severity::Warning, "spec.rules[0].to[0].operation.methods"));
    CHECK(has_diag(d, Severity::Warning, "ALLOW rule is omitted"));
  }
  SECTION("ALLOW with only L7 rules matches nothing, which is reported") {
    Diagnostics d;
    auto p = translate("  rules:\n  - when:\n    - {key: \"request.auth.claims[iss]\", values: [x]}\n", d);
    REQUIRE(p);
    CHECK(p->rules.empty());
    CHECK(has_diag(d, Severity::Warning, "matches nothing"));
  }
  SECTION("DENY: L7 fields dropped from a match, the L4 part kept") {
    Diagnostics d;
    auto p = translate(R"(  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin"], ports: ["8080"]}
    from:
    - source: {requestPrincipals: ["*"], namespaces: ["evil"]}
    when:
    - {key: "request.headers[x-user]", values: [bob]}
    - {key: destination.port, values: ["8080"]}
)",
                       d);
    INFO(dump(d));
    REQUIRE(p);
    REQUIRE(p->rules.size() == 1);
    const auto& r = p->rules[0];
    REQUIRE(r.size() == 3);  // to, from, the L4 condition; the header condition is gone
    CHECK(r[0][0].destination_ports == std::vector<uint16_t>{8080});
    CHECK(r[1][0].namespaces == std::vector<ztunnel::StringMatch>{exact("evil")});
    CHECK(r[2][0].destination_ports == std::vector<uint16_t>{8080});
    CHECK(has_diag(d, Severity::Warning, "DENY rule is enforced without them"));
  }
  SECTION("DENY: an entry left empty makes its clause match anything") {
    Diagnostics d;
    auto p = translate(R"(  action: DENY
  rules:
  - to:
    - operation: {methods: ["DELETE"]}
    - operation: {ports: ["22"]}
    from:
    - source: {namespaces: ["evil"]}
)",
                       d);
    REQUIRE(p);
    REQUIRE(p->rules.size() == 1);
    REQUIRE(p->rules[0].size() == 1);  // `to` became "any" and was dropped
    CHECK(p->rules[0][0][0].namespaces == std::vector<ztunnel::StringMatch>{exact("evil")});
  }
  SECTION("DENY with nothing enforceable denies everything, and says so") {
    Diagnostics d;
    auto p = translate("  action: DENY\n  rules:\n  - to:\n    - operation: {methods: [POST]}\n", d);
    REQUIRE(p);
    REQUIRE(p->rules.size() == 1);
    CHECK(p->rules[0].empty());
    CHECK(has_diag(d, Severity::Warning, "matches every connection"));
  }
}

TEST_CASE("authz: unusable values — ALLOW rule omitted, DENY constraint dropped", "[controlplane][authz]") {
  Diagnostics d;
  auto allow = translate(R"(  rules:
  - to:
    - operation: {ports: ["http"]}
  - from:
    - source: {ipBlocks: ["10.0.0.0/33"]}
  - from:
    - source: {principals: ["cluster.local/ns/a/sa/b"]}
)",
                         d);
  INFO(dump(d));
  REQUIRE(allow);
  REQUIRE(allow->rules.size() == 1);
  CHECK(allow->rules[0][0][0].principals == std::vector<ztunnel::StringMatch>{exact("cluster.local/ns/a/sa/b")});
  CHECK(has_diag(d, Severity::Error, "spec.rules[0].to[0].operation.ports[0]: invalid port 'http'"));
  CHECK(has_diag(d, Severity::Error, "spec.rules[1].from[0].source.ipBlocks[0]: invalid IP or CIDR"));

  Diagnostics d2;
  auto deny = translate(R"(  action: DENY
  rules:
  - to:
    - operation: {ports: ["80", "99999"]}
    from:
    - source: {namespaces: ["x"]}
)",
                        d2);
  REQUIRE(deny);
  REQUIRE(deny->rules.size() == 1);
  REQUIRE(deny->rules[0].size() == 1);  // the port constraint is gone: denies x on any port
  CHECK(deny->rules[0][0][0].namespaces == std::vector<ztunnel::StringMatch>{exact("x")});
  CHECK(has_diag(d2, Severity::Error, "denies more"));
}

TEST_CASE("authz: translated policies decide like Istio's intent", "[controlplane][authz]") {
  // Destination in ns1; sources with identities in ns1 (sa web) and ns2 (sa evil).
  ztunnel::Workload dst, good, evil;
  dst.uid = "u-dst";
  dst.ns = "ns1";
  dst.name = "dst";
  dst.addresses = {ip("10.0.0.1")};
  good.uid = "u-good";
  good.ns = "ns1";
  good.service_account = "web";
  good.addresses = {ip("10.0.0.2")};
  evil.uid = "u-evil";
  evil.ns = "ns2";
  evil.service_account = "evil";
  evil.addresses = {ip("10.0.0.3")};

  auto run = [&](const std::string& spec, const ztunnel::Workload& src, uint16_t port) {
    Diagnostics d;
    auto p = translate(spec, d);
    REQUIRE(p);
    ztunnel::LocalConfig cfg;
    cfg.workloads = {dst, good, evil};
    cfg.policies = {*p};
    return decide(cfg, src, dst, port).allow;
  };

  const std::string allow_ns1 = "  rules:\n  - from:\n    - source: {namespaces: [ns1]}\n";
  CHECK(run(allow_ns1, good, 80));
  CHECK_FALSE(run(allow_ns1, evil, 80));

  const std::string deny_evil_l7 =
      "  action: DENY\n  rules:\n  - from:\n    - source: {principals: ['*/sa/evil']}\n"
      "    to:\n    - operation: {methods: [GET]}\n";
  CHECK_FALSE(run(deny_evil_l7, evil, 80));  // L7 part dropped: evil denied on every request
  CHECK(run(deny_evil_l7, good, 80));

  const std::string allow_l7_only = "  rules:\n  - to:\n    - operation: {paths: [/public]}\n";
  CHECK_FALSE(run(allow_l7_only, good, 80));  // cannot be proven at L4: nothing allowed

  const std::string allow_all = "  rules:\n  - {}\n";
  CHECK(run(allow_all, evil, 80));
  const std::string deny_port = "  action: DENY\n  rules:\n  - to:\n    - operation: {ports: ['22']}\n";
  CHECK_FALSE(run(deny_port, good, 22));
  CHECK(run(deny_port, good, 80));
  const std::string sa_allow = "  rules:\n  - from:\n    - source: {serviceAccounts: [web]}\n";
  CHECK(run(sa_allow, good, 80));
  CHECK_FALSE(run(sa_allow, evil, 80));
}

TEST_CASE("write_file_atomically replaces the file whole and leaves no temporary", "[controlplane]") {
  TempDir dir;
  const std::string out = dir.file("out.yaml");
  REQUIRE(write_file_atomically(out, "first\n").ok());
  REQUIRE(write_file_atomically(out, "second\n").ok());
  std::ifstream in(out);
  std::stringstream buf;
  buf << in.rdbuf();
  CHECK(buf.str() == "second\n");
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
  auto bad = write_file_atomically(dir.file("missing/out.yaml"), "x");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("missing/out.yaml") != std::string::npos);
}

TEST_CASE("fingerprint changes on edit, addition and removal, not on other files", "[controlplane]") {
  TempDir dir;
  dir.write("a.yaml", "kind: x\n");
  auto f0 = fingerprint(dir.path());
  REQUIRE(f0.ok());
  CHECK(f0->size() == 1);

  dir.write("a.yaml", "kind: xy\n");  // size changes even within one mtime tick
  auto f1 = fingerprint(dir.path());
  REQUIRE(f1.ok());
  CHECK(*f1 != *f0);

  dir.write("b.yml", "");
  auto f2 = fingerprint(dir.path());
  REQUIRE(f2.ok());
  CHECK(f2->size() == 2);

  dir.write("out.yaml", "generated");  // excluded (our own output)
  dir.write("README.md", "x");         // not a manifest
  auto f3 = fingerprint(dir.path(), {dir.file("out.yaml")});
  REQUIRE(f3.ok());
  CHECK(*f3 == *f2);

  fs::remove(dir.file("b.yml"));
  auto f4 = fingerprint(dir.path());
  REQUIRE(f4.ok());
  CHECK(f4->size() == 2);  // a.yaml + out.yaml (not excluded this time)
  CHECK_FALSE(fingerprint(dir.file("nope")).ok());
}
