// controlplane/compiler: Kubernetes objects -> the mesh model as istiod compiles them for ztunnel.
#include "fixture.h"

using namespace cptest;

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

TEST_CASE("a pod's topology.istio.io/locality label is its locality (dots for slashes)", "[controlplane]") {
  TempDir dir;
  dir.write("00-ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: geo, labels: {istio.io/dataplane-mode: ambient}}\n");
  auto pod = [](const std::string& name, const std::string& ip, const std::string& labels) {
    return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: geo, labels: {" + labels +
           "}}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\nstatus: {phase: Running, podIP: " + ip +
           "}\n---\n";
  };
  dir.write("10-pods.yaml", pod("full", "10.9.0.1", "topology.istio.io/locality: us-east.us-east-1a.rack7") +
                                pod("region-only", "10.9.0.2", "topology.istio.io/locality: eu-west") +
                                pod("legacy", "10.9.0.3", "istio-locality: ap.ap-1") +
                                pod("both", "10.9.0.4", "topology.istio.io/locality: r1.z1, istio-locality: r2.z2") +
                                pod("none", "10.9.0.5", "app: x"));
  auto state = compile_directory(dir.path(), CompileOptions{});
  REQUIRE(state.ok());
  const auto& cfg = state->config;
  auto loc = [&](const char* name) {
    const auto* w = workload(cfg, "geo", name);
    REQUIRE(w);
    return w->locality;
  };
  CHECK(loc("full") == ztunnel::Locality{"us-east", "us-east-1a", "rack7"});
  CHECK(loc("region-only") == ztunnel::Locality{"eu-west", "", ""});
  CHECK(loc("legacy") == ztunnel::Locality{"ap", "ap-1", ""});
  CHECK(loc("both") == ztunnel::Locality{"r1", "z1", ""});  // the official label wins
  CHECK(loc("none").empty());
}
