// EndpointSlices (discovery.k8s.io/v1): a Service without a selector gets its endpoints from the
// slices labelled kubernetes.io/service-name, as istiod's ambient index builds them — a pod
// targetRef joins that pod to the Service, any other address becomes a workload of its own
// (uid ".../discovery.k8s.io/EndpointSlice/<ns>/<slice>/<ip>", host-network mode, no tunnel),
// slice ports map to the Service port of the same name; FQDN slices and slices of no Service
// are left out; a bad address fails only its slice, naming the field.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "common/state/snapshot.h"
#include "fixture.h"

namespace cptest {
namespace {

const char* kMesh = R"(
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {serviceAccountName: web, containers: [{name: web, image: x, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.0.0.5}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: 10.96.0.50
  ports: [{name: pg, port: 5432, targetPort: 5432}, {name: admin, port: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-abc12, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 15432, protocol: TCP}, {name: admin, port: 19000}, {name: dns, port: 53, protocol: UDP}]
endpoints:
- addresses: [192.168.10.7]
- addresses: [192.168.10.8]
  conditions: {ready: false}
- addresses: [10.0.0.5]
  targetRef: {kind: Pod, name: web-1, namespace: shop}
- addresses: [192.168.10.7]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-ext, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: FQDN
ports: [{name: pg, port: 5432}]
endpoints: [{addresses: [db.example.com]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: loose, namespace: shop}
addressType: IPv4
ports: [{name: pg, port: 5432}]
endpoints: [{addresses: [192.168.10.99]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-bad, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
endpoints: [{addresses: [192.168.10.9]}, {addresses: [not-an-ip]}]
)";

CompiledState compile_text(const std::string& text) {
  ResourceSet set;
  Diagnostics diags;
  parse_manifests(text, "mesh.yaml", set, diags);
  remove_duplicates(set, diags);
  CompiledState st = compile(set, CompileOptions{});
  st.diagnostics.insert(st.diagnostics.begin(), diags.begin(), diags.end());
  return st;
}

const ztunnel::Workload* by_uid(const ztunnel::LocalConfig& c, const std::string& uid) {
  for (const auto& w : c.workloads) {
    if (w.uid == uid) return &w;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("EndpointSlices give a selector-less Service its endpoints as istiod does", "[controlplane]") {
  const auto st = compile_text(kMesh);
  INFO(dump(st.diagnostics));
  const auto& cfg = st.config;
  const std::string key = "shop/db.shop.svc.cluster.local";

  SECTION("a non-pod address is a workload of its own") {
    const auto* w = by_uid(cfg, "Kubernetes/discovery.k8s.io/EndpointSlice/shop/db-abc12/192.168.10.7");
    REQUIRE(w);
    CHECK(w->name == "db-abc12");
    CHECK(w->ns == "shop");
    CHECK(w->addresses == std::vector<ztunnel::IpAddr>{ip("192.168.10.7")});
    CHECK(w->network_mode == ztunnel::NetworkMode::HostNetwork);
    CHECK(w->tunnel_protocol == ztunnel::TunnelProtocol::None);  // even in an ambient namespace
    CHECK(w->status == ztunnel::HealthStatus::Healthy);
    CHECK_FALSE(w->waypoint);
    REQUIRE(w->services.count(key));
    // Slice ports are the endpoints' ports, joined to the Service port of the same name.
    CHECK(w->services.at(key).find(5432) == uint16_t{15432});
    CHECK(w->services.at(key).find(9000) == uint16_t{19000});
    CHECK(w->services.at(key).size() == 2);  // the UDP port is not carried

    const auto* unready = by_uid(cfg, "Kubernetes/discovery.k8s.io/EndpointSlice/shop/db-abc12/192.168.10.8");
    REQUIRE(unready);
    CHECK(unready->status == ztunnel::HealthStatus::Unhealthy);
  }

  SECTION("a Pod targetRef joins that pod to the Service; it is not a second workload") {
    const auto* pod = workload(cfg, "shop", "web-1");
    REQUIRE(pod);
    REQUIRE(pod->services.count(key));
    CHECK(pod->services.at(key).find(5432) == uint16_t{15432});
    CHECK(by_uid(cfg, "Kubernetes/discovery.k8s.io/EndpointSlice/shop/db-abc12/10.0.0.5") == nullptr);
  }

  SECTION("a repeated address, FQDN slices and slices of no Service are left out, with a reason") {
    CHECK(has_diag(st.diagnostics, Severity::Warning, "listed twice"));
    CHECK(has_diag(st.diagnostics, Severity::Info, "FQDN"));
    for (const auto& w : cfg.workloads) {
      CHECK(w.uid.find("/loose/") == std::string::npos);
      CHECK(w.uid.find("/db-ext/") == std::string::npos);
    }
  }

  SECTION("a bad address fails its slice only, naming the field") {
    bool named = false;
    for (const auto& d : st.diagnostics) {
      if (d.severity == Severity::Error && d.object == "EndpointSlice shop/db-bad" &&
          d.field == "endpoints[1].addresses[0]") {
        named = true;
      }
    }
    CHECK(named);
    CHECK(by_uid(cfg, "Kubernetes/discovery.k8s.io/EndpointSlice/shop/db-bad/192.168.10.9") == nullptr);
    CHECK(by_uid(cfg, "Kubernetes/discovery.k8s.io/EndpointSlice/shop/db-abc12/192.168.10.7") != nullptr);
  }

  SECTION("ztunnel's parser takes it and the Service VIP load-balances over the ready slice endpoints") {
    const auto cfg2 = round_trip(cfg);
    auto snap = ztunnel::Snapshot::from_local_config(cfg2);
    const auto* svc = snap->find_service("", ip("10.96.0.50"));
    REQUIRE(svc);
    std::set<std::string> eps;
    for (const auto& e : snap->endpoints(*svc)) eps.insert(e.workload->uid);
    // The unready address (192.168.10.8) is a workload but not an endpoint the VIP picks.
    CHECK(eps == std::set<std::string>{"Kubernetes//Pod/shop/web-1",
                                       "Kubernetes/discovery.k8s.io/EndpointSlice/shop/db-abc12/192.168.10.7"});
  }
}

TEST_CASE("EndpointSlices of a Service with a selector add only non-pod addresses", "[controlplane]") {
  const std::string text = std::string(kMesh) + R"(
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: other}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-x1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.0.0.5]
  targetRef: {kind: Pod, name: web-1, namespace: shop}
- addresses: [192.168.20.1]
)";
  const auto st = compile_text(text);
  INFO(dump(st.diagnostics));
  const auto* pod = workload(st.config, "shop", "web-1");
  REQUIRE(pod);
  // The selector (app: other) decides pod membership, not the slice's targetRef.
  CHECK(pod->services.count("shop/web.shop.svc.cluster.local") == 0);
  const auto* ext = by_uid(st.config, "Kubernetes/discovery.k8s.io/EndpointSlice/shop/web-x1/192.168.20.1");
  REQUIRE(ext);
  CHECK(ext->services.at("shop/web.shop.svc.cluster.local").find(80) == uint16_t{8080});
}

}  // namespace cptest
