#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "common/model/local_config.h"
#include "common/state/snapshot.h"
#include "ztunnel/state/route.h"

using namespace ztunnel;

namespace {

SnapshotConstSharedPtr snapshot_from(const std::string& yaml) {
  auto r = parse_local_config(yaml);
  INFO((r.ok() ? "" : r.error()));
  REQUIRE(r.ok());
  return Snapshot::from_local_config(std::move(r).value());
}

IpAddr ip(const char* s) { return *parse_ip(s); }

const char* kMesh = R"(
workloads:
- uid: c//v1/Pod/ns/client
  name: client
  namespace: ns
  serviceAccount: client
  workloadIps: ["10.0.0.1"]
  protocol: HBONE
  node: n1
  locality: {region: r1, zone: z1}
- uid: c//v1/Pod/ns/server-a
  name: server-a
  namespace: ns
  serviceAccount: server
  workloadIps: ["10.0.0.2", "fd00::2"]
  protocol: HBONE
  node: n1
  locality: {region: r1, zone: z1}
  services: {"ns/server.ns.svc": {}}
- uid: c//v1/Pod/ns/server-b
  name: server-b
  namespace: ns
  serviceAccount: server
  workloadIps: ["10.0.0.3"]
  protocol: HBONE
  node: n2
  capacity: 3
  locality: {region: r1, zone: z2}
  services: {"ns/server.ns.svc": {}}
- uid: c//v1/Pod/ns/sick
  name: sick
  namespace: ns
  workloadIps: ["10.0.0.4"]
  protocol: HBONE
  status: Unhealthy
  services: {"ns/server.ns.svc": {}}
- uid: c//v1/Pod/ns/legacy
  name: legacy
  namespace: ns
  workloadIps: ["10.0.0.5"]
  protocol: TCP
  services: {"ns/legacy.ns.svc": {}}
- uid: c//v1/Pod/kube-system/hostnet
  name: hostnet
  namespace: kube-system
  workloadIps: ["10.0.0.99"]
  networkMode: HostNetwork
- uid: c//v1/Pod/ns/remote
  name: remote
  namespace: ns
  network: other
  workloadIps: ["10.0.0.2"]
  protocol: HBONE
services:
- name: server
  namespace: ns
  hostname: server.ns.svc
  vips: ["/10.96.0.1"]
  ports: {80: 8080}
  subjectAltNames: ["spiffe://cluster.local/ns/ns/sa/extra"]
- name: legacy
  namespace: ns
  hostname: legacy.ns.svc
  vips: ["/10.96.0.2"]
  ports: {80: 8080}
- name: empty
  namespace: ns
  hostname: empty.ns.svc
  vips: ["/10.96.0.3"]
  ports: {80: 8080}
- name: external
  namespace: ns
  hostname: external.example.com
  vips: ["/10.96.0.4"]
  ports: {443: 443}
  loadBalancer: {mode: Passthrough}
policies:
- {name: ns-allow, namespace: ns, scope: Namespace, action: Allow, rules: []}
- {name: global-deny, namespace: istio-system, scope: Global, action: Deny, rules: []}
- {name: selected, namespace: ns, scope: WorkloadSelector, action: Deny, rules: []}
)";

}  // namespace

TEST_CASE("snapshot indexes workloads, services and policies", "[state]") {
  auto snap = snapshot_from(kMesh);

  const Workload* a = snap->find_workload("", ip("10.0.0.2"));
  REQUIRE(a);
  CHECK(a->name == "server-a");
  CHECK(snap->find_workload("", ip("fd00::2")) == a);
  CHECK(snap->find_workload("", ip("::ffff:10.0.0.2")) == a);  // v4-mapped is canonicalised
  CHECK(snap->find_workload("other", ip("10.0.0.2"))->name == "remote");
  CHECK(snap->find_workload("nope", ip("10.0.0.2")) == nullptr);
  CHECK(snap->find_workload("", ip("10.0.0.99")) == nullptr);  // HOST_NETWORK not by IP
  CHECK(snap->find_workload_by_uid("c//v1/Pod/kube-system/hostnet") != nullptr);
  CHECK(snap->find_workload_by_info("ns", "client", "client")->uid == "c//v1/Pod/ns/client");
  CHECK(snap->find_workload_by_info("ns", "client", "other") == nullptr);

  const Service* svc = snap->find_service("", ip("10.96.0.1"));
  REQUIRE(svc);
  CHECK(svc->hostname == "server.ns.svc");
  CHECK(snap->find_service_by_host("ns", "server.ns.svc") == svc);
  CHECK(snap->find_service_by_key("ns/server.ns.svc") == svc);
  CHECK(snap->find_service("x", ip("10.96.0.1")) == nullptr);

  auto of = snap->services_of(*a);
  REQUIRE(of.size() == 1);
  CHECK(of[0] == svc);

  // The unhealthy endpoint is dropped at build time.
  auto eps = snap->endpoints(*svc);
  CHECK(eps.size() == 2);
  for (const auto& e : eps) CHECK(e.workload->name != "sick");

  CHECK(snap->find_policy("ns/ns-allow") != nullptr);
  CHECK(snap->namespace_policies("ns").size() == 1);
  REQUIRE(snap->global_policies().size() == 1);
  CHECK(snap->global_policies()[0]->key() == "istio-system/global-deny");
  CHECK(snap->namespace_policies("istio-system").empty());  // global lives under ""
}

TEST_CASE("address conflicts prefer pods, then HBONE", "[state]") {
  auto snap = snapshot_from(R"(
workloads:
- {uid: "c/networking.istio.io/WorkloadEntry/ns/we", namespace: ns, workloadIps: ["10.1.0.1"], protocol: HBONE}
- {uid: "c//Pod/ns/pod", namespace: ns, workloadIps: ["10.1.0.1"], protocol: TCP}
- {uid: "c/networking.istio.io/WorkloadEntry/ns/we2", namespace: ns, workloadIps: ["10.1.0.1"]}
)");
  CHECK(snap->find_workload("", ip("10.1.0.1"))->uid == "c//Pod/ns/pod");
}

TEST_CASE("AllowAll health policy keeps unhealthy endpoints", "[state]") {
  auto snap = snapshot_from(R"(
workloads:
- {uid: u1, namespace: ns, workloadIps: ["10.0.0.1"], status: Unhealthy, services: {"ns/h": {}}}
services:
- {name: s, namespace: ns, hostname: h, ports: {80: 80}, loadBalancer: {healthPolicy: AllowAll}}
)");
  const Service* s = snap->find_service_by_key("ns/h");
  REQUIRE(snap->endpoints(*s).size() == 1);
  auto c = snap->choose_endpoint(*s, 80, nullptr, 0);
  REQUIRE(c);
  CHECK(c->workload->uid == "u1");
}

TEST_CASE("target ports: endpoint override, service mapping, named ports", "[state]") {
  auto snap = snapshot_from(R"(
workloads:
- {uid: u1, namespace: ns, workloadIps: ["10.0.0.1"], services: {"ns/h": {9090: 9999}}}
- {uid: u2, namespace: ns, workloadIps: ["10.0.0.2"], services: {"ns/h": {}}}
services:
- {name: s, namespace: ns, hostname: h, ports: {80: 8080, 9090: 0}}
)");
  const Service* s = snap->find_service_by_key("ns/h");
  const Workload* u1 = snap->find_workload_by_uid("u1");
  const Workload* u2 = snap->find_workload_by_uid("u2");
  CHECK(snap->target_port(*s, 80, *u1) == std::optional<uint16_t>(8080));
  CHECK(snap->target_port(*s, 9090, *u1) == std::optional<uint16_t>(9999));
  CHECK_FALSE(snap->target_port(*s, 9090, *u2).has_value());
  CHECK_FALSE(snap->target_port(*s, 81, *u1).has_value());

  // Named target port: only u1 (which has an override) is eligible, whatever the random value.
  for (uint64_t r = 0; r < 16; ++r) {
    auto c = snap->choose_endpoint(*s, 9090, nullptr, r);
    REQUIRE(c);
    CHECK(c->workload == u1);
    CHECK(c->target_port == 9999);
  }
  CHECK_FALSE(snap->choose_endpoint(*s, 81, nullptr, 0).has_value());  // unknown port
}

TEST_CASE("load balancing is weighted by capacity", "[state]") {
  auto snap = snapshot_from(kMesh);
  const Service* svc = snap->find_service("", ip("10.96.0.1"));
  const Workload* client = snap->find_workload("", ip("10.0.0.1"));

  // Exhaustive sweep of the random input: exactly proportional to capacity (1 : 3).
  std::map<std::string, int> counts;
  for (uint64_t r = 0; r < 4000; ++r) {
    auto c = snap->choose_endpoint(*svc, 80, client, r);
    REQUIRE(c);
    CHECK(c->target_port == 8080);
    counts[c->workload->name]++;
  }
  CHECK(counts["server-a"] == 1000);
  CHECK(counts["server-b"] == 3000);

  // And with the real PRNG, a bounded sample lands near 25% / 75%.
  counts.clear();
  for (int i = 0; i < 4000; ++i) counts[snap->choose_endpoint(*svc, 80, client, lb_random())->workload->name]++;
  CHECK(counts["server-a"] > 700);
  CHECK(counts["server-a"] < 1300);
  CHECK(counts["server-a"] + counts["server-b"] == 4000);
}

TEST_CASE("routing preferences: Failover ranks, Strict drops", "[state]") {
  const std::string base = R"(
workloads:
- {uid: src, namespace: ns, workloadIps: ["10.0.0.1"], node: n1, locality: {region: r1, zone: z1}}
- {uid: near, namespace: ns, workloadIps: ["10.0.0.2"], node: n2, locality: {region: r1, zone: z1}, services: {"ns/h": {}}}
- {uid: far, namespace: ns, workloadIps: ["10.0.0.3"], node: n3, locality: {region: r1, zone: z2}, services: {"ns/h": {}}}
- {uid: other, namespace: ns, workloadIps: ["10.0.0.4"], node: n4, locality: {region: r2, zone: z9}, services: {"ns/h": {}}}
services:
- name: s
  namespace: ns
  hostname: h
  ports: {80: 80}
  loadBalancer: {mode: MODE, routingPreferences: [Region, Zone]}
)";
  auto with_mode = [&](const std::string& mode) {
    std::string y = base;
    y.replace(y.find("MODE"), 4, mode);
    return snapshot_from(y);
  };

  auto failover = with_mode("Failover");
  const Service* s = failover->find_service_by_key("ns/h");
  const Workload* src = failover->find_workload_by_uid("src");
  for (uint64_t r = 0; r < 8; ++r) CHECK(failover->choose_endpoint(*s, 80, src, r)->workload->uid == "near");

  // Source in r1/z3: nobody matches both scopes; the best rank (region only) wins.
  Workload z3 = *src;
  z3.locality.zone = "z3";
  std::map<std::string, int> seen;
  for (uint64_t r = 0; r < 8; ++r) seen[failover->choose_endpoint(*s, 80, &z3, r)->workload->uid]++;
  CHECK(seen.count("other") == 0);
  CHECK(seen["near"] + seen["far"] == 8);

  auto strict = with_mode("Strict");
  const Service* ss = strict->find_service_by_key("ns/h");
  CHECK(strict->choose_endpoint(*ss, 80, strict->find_workload_by_uid("src"), 0)->workload->uid == "near");
  CHECK_FALSE(strict->choose_endpoint(*ss, 80, &z3, 0).has_value());

  // Standard ignores preferences: all three are candidates.
  auto standard = with_mode("Standard");
  const Service* st = standard->find_service_by_key("ns/h");
  seen.clear();
  for (uint64_t r = 0; r < 3; ++r) seen[standard->choose_endpoint(*st, 80, src, r)->workload->uid]++;
  CHECK(seen.size() == 3);
}

TEST_CASE("route_outbound: direct workload and service traffic", "[state][route]") {
  auto snap = snapshot_from(kMesh);
  const Workload& client = *snap->find_workload("", ip("10.0.0.1"));

  SECTION("HBONE pod by IP") {
    auto r = route_outbound(*snap, client, ip("10.0.0.2"), 8080, 0);
    CHECK(r.kind == RouteKind::Hbone);
    CHECK(r.target.to_string() == "10.0.0.2:15008");
    CHECK(r.authority == "10.0.0.2:8080");
    REQUIRE(r.expected_identities.size() == 1);
    CHECK(r.expected_identities[0].uri() == "spiffe://cluster.local/ns/ns/sa/server");
    CHECK(r.destination_service == nullptr);
  }
  SECTION("HBONE pod by IPv6 keeps the family") {
    auto r = route_outbound(*snap, client, ip("fd00::2"), 8080, 0);
    CHECK(r.kind == RouteKind::Hbone);
    CHECK(r.target.to_string() == "[fd00::2]:15008");
    CHECK(r.authority == "[fd00::2]:8080");
  }
  SECTION("service VIP: LB, port mapping, service SANs") {
    auto r = route_outbound(*snap, client, ip("10.96.0.1"), 80, 0);
    CHECK(r.kind == RouteKind::Hbone);
    REQUIRE(r.destination_workload);
    CHECK(r.destination_service->hostname == "server.ns.svc");
    CHECK(r.target.port == 15008);
    CHECK(r.authority == r.target.ip.to_string() + ":8080");
    REQUIRE(r.expected_identities.size() == 2);
    CHECK(r.expected_identities[1].uri() == "spiffe://cluster.local/ns/ns/sa/extra");
  }
  SECTION("TCP workload behind a service") {
    auto r = route_outbound(*snap, client, ip("10.96.0.2"), 80, 0);
    CHECK(r.kind == RouteKind::Tcp);
    CHECK(r.target.to_string() == "10.0.0.5:8080");
    CHECK(r.authority.empty());
  }
  SECTION("unknown destination passes through") {
    auto r = route_outbound(*snap, client, ip("192.0.2.1"), 443, 0);
    CHECK(r.kind == RouteKind::Passthrough);
    CHECK(r.target.to_string() == "192.0.2.1:443");
    CHECK(r.destination_workload == nullptr);
  }
  SECTION("service without endpoints or with an unknown port") {
    CHECK(route_outbound(*snap, client, ip("10.96.0.3"), 80, 0).kind == RouteKind::NoHealthyUpstream);
    CHECK(route_outbound(*snap, client, ip("10.96.0.1"), 81, 0).kind == RouteKind::NoHealthyUpstream);
  }
  SECTION("Passthrough LB mode goes to the original destination") {
    auto r = route_outbound(*snap, client, ip("10.96.0.4"), 443, 0);
    CHECK(r.kind == RouteKind::Passthrough);
    CHECK(r.target.to_string() == "10.96.0.4:443");
    CHECK(r.destination_service != nullptr);
  }
  SECTION("host-network workloads are not matched by IP") {
    CHECK(route_outbound(*snap, client, ip("10.0.0.99"), 80, 0).kind == RouteKind::Passthrough);
  }
}

TEST_CASE("route_outbound: an endpoint known only by hostname is left to on-demand DNS", "[state][route][dns]") {
  auto snap = snapshot_from(R"(
workloads:
- {uid: c, name: c, namespace: ns, workloadIps: ["10.0.0.1"], protocol: HBONE}
- {uid: se-tcp, name: db, namespace: ns, hostname: db.example.com, protocol: TCP,
   services: {"ns/db.example.com": {5432: 15432}}}
- {uid: se-hbone, name: api, namespace: ns, serviceAccount: api, hostname: api.example.com, protocol: HBONE,
   services: {"ns/api.example.com": {443: 8443}}}
services:
- {name: db, namespace: ns, hostname: db.example.com, vips: ["/240.0.0.1"], ports: {5432: 5432}}
- {name: api, namespace: ns, hostname: api.example.com, vips: ["/240.0.0.2"], ports: {443: 443}}
)");
  const Workload& client = *snap->find_workload("", ip("10.0.0.1"));
  SECTION("plain TCP: the target port is the endpoint's, the address comes later") {
    auto r = route_outbound(*snap, client, ip("240.0.0.1"), 5432, 0);
    CHECK(r.kind == RouteKind::Tcp);
    CHECK(r.resolve_hostname == "db.example.com");
    CHECK(r.target.port == 15432);
    REQUIRE(r.destination_workload);
    CHECK(r.destination_workload->uid == "se-tcp");
    apply_resolved(r, ip("192.0.2.7"));
    CHECK(r.target.to_string() == "192.0.2.7:15432");
    CHECK(r.authority.empty());
  }
  SECTION("HBONE: 15008 on the resolved address, authority address:targetPort") {
    auto r = route_outbound(*snap, client, ip("240.0.0.2"), 443, 0);
    CHECK(r.kind == RouteKind::Hbone);
    CHECK(r.resolve_hostname == "api.example.com");
    REQUIRE(r.expected_identities.size() == 1);
    CHECK(r.expected_identities[0].uri() == "spiffe://cluster.local/ns/ns/sa/api");
    apply_resolved(r, ip("fd00::9"));
    CHECK(r.target.to_string() == "[fd00::9]:15008");
    CHECK(r.authority == "[fd00::9]:8443");
  }
  SECTION("a workload with addresses is never resolved") {
    auto r = route_outbound(*snap, client, ip("10.0.0.1"), 80, 0);
    CHECK(r.resolve_hostname.empty());
  }
}

TEST_CASE("route_outbound: waypoints", "[state][route]") {
  auto r = load_local_config(
      (std::filesystem::path(AMBIENT_SOURCE_DIR) / "examples" / "waypoint.yaml")
          .string());
  REQUIRE(r.ok());
  auto snap = Snapshot::from_local_config(std::move(r).value());
  const Workload& client = *snap->find_workload_by_uid("Kubernetes//v1/Pod/shop/client-1");
  const Workload& waypoint = *snap->find_workload_by_uid("Kubernetes//v1/Pod/shop/waypoint-1");

  SECTION("service with a waypoint") {
    auto route = route_outbound(*snap, client, ip("10.96.0.10"), 80, 0);
    CHECK(route.kind == RouteKind::Waypoint);
    CHECK(route.target.to_string() == "10.0.0.100:15008");
    CHECK(route.authority == "10.96.0.10:80");
    REQUIRE(route.expected_identities.size() == 1);
    CHECK(route.expected_identities[0].uri() == "spiffe://cluster.local/ns/shop/sa/waypoint");
    CHECK(route.destination_workload == &waypoint);
    CHECK(route.destination_service->name == "cart");
  }
  SECTION("the waypoint itself goes straight to the pods") {
    auto route = route_outbound(*snap, waypoint, ip("10.96.0.10"), 80, 0);
    CHECK(route.kind == RouteKind::Hbone);
    CHECK(route.target.to_string() == "10.0.0.11:15008");
    CHECK(route.authority == "10.0.0.11:8080");
  }
}

TEST_CASE("route_outbound: workload waypoint and cross-network", "[state][route]") {
  auto snap = snapshot_from(R"(
workloads:
- {uid: client, namespace: ns, workloadIps: ["10.0.0.1"], protocol: HBONE}
- uid: server
  namespace: ns
  serviceAccount: srv
  workloadIps: ["10.0.0.2"]
  protocol: HBONE
  waypoint: {destination: "/10.0.0.50"}
- {uid: wp, namespace: ns, serviceAccount: wp, workloadIps: ["10.0.0.50"], protocol: HBONE}
- {uid: far, namespace: ns, network: west, workloadIps: ["10.9.0.1"], protocol: HBONE, services: {"ns/far": {}}}
services:
- {name: far, namespace: ns, hostname: far, vips: ["/10.96.9.9"], ports: {80: 80}}
)");
  const Workload& client = *snap->find_workload_by_uid("client");
  auto r = route_outbound(*snap, client, ip("10.0.0.2"), 8080, 0);
  CHECK(r.kind == RouteKind::Waypoint);
  CHECK(r.target.to_string() == "10.0.0.50:15008");
  CHECK(r.authority == "10.0.0.2:8080");
  CHECK(r.expected_identities[0].uri() == "spiffe://cluster.local/ns/ns/sa/wp");

  // The waypoint calling the workload is not looped back to itself.
  auto from_wp = route_outbound(*snap, *snap->find_workload_by_uid("wp"), ip("10.0.0.2"), 8080, 0);
  CHECK(from_wp.kind == RouteKind::Hbone);

  auto x = route_outbound(*snap, client, ip("10.96.9.9"), 80, 0);
  CHECK(x.kind == RouteKind::Unroutable);
  CHECK_FALSE(x.error.empty());
}

TEST_CASE("to_json has upstream's config_dump shape", "[state]") {
  auto snap = snapshot_from(kMesh);
  const nlohmann::json j = snap->to_json();
  REQUIRE(j.contains("workloads"));
  REQUIRE(j.contains("services"));
  REQUIRE(j.contains("policies"));
  CHECK(j["workloads"].size() == snap->workloads().size());
  const auto& w = j["workloads"][0];
  CHECK(w["uid"] == "c//v1/Pod/ns/client");
  CHECK(w["workloadIps"][0] == "10.0.0.1");
  CHECK(w["protocol"] == "HBONE");
  CHECK(w["serviceAccount"] == "client");
  CHECK(w["locality"]["zone"] == "z1");
  const auto& s = j["services"][0];
  CHECK(s["vips"][0] == "/10.96.0.1");
  CHECK(s["ports"]["80"] == 8080);
  CHECK(s["endpoints"].size() == 2);
  CHECK(j["policies"][0]["scope"] == "Namespace");
  CHECK(j["policies"][1]["action"] == "Deny");
}

// ---- CIDR VIPs (upstream's cidrVips) ------------------------------------------------------------

namespace {

const char* kCidrMesh = R"(
workloads:
- uid: c//v1/Pod/ns/client
  name: client
  namespace: ns
  workloadIps: ["10.0.0.1"]
  protocol: HBONE
- uid: c//v1/Pod/ns/wide-backend
  name: wide-backend
  namespace: ns
  workloadIps: ["10.0.0.2"]
  protocol: HBONE
  services: {"ns/wide.ns.svc": {}}
- uid: c//v1/Pod/ns/narrow-backend
  name: narrow-backend
  namespace: ns
  workloadIps: ["10.0.0.3"]
  protocol: HBONE
  services: {"ns/narrow.ns.svc": {}}
services:
- name: wide
  namespace: ns
  hostname: wide.ns.svc
  vips: []
  cidrVips: ["/10.50.0.0/16", "/fd00:50::/32", "other/10.60.0.0/16"]
  ports: {80: 8080}
- name: narrow
  namespace: ns
  hostname: narrow.ns.svc
  vips: []
  cidrVips: ["/10.50.7.0/24", "/fd00:50:7::/48"]
  ports: {80: 8080}
- name: exact
  namespace: ns
  hostname: exact.ns.svc
  vips: ["/10.50.7.9"]
  ports: {80: 8080}
)";

}  // namespace

TEST_CASE("find_service: exact VIP, then the longest CIDR VIP of the same network", "[state][cidr]") {
  auto snap = snapshot_from(kCidrMesh);
  auto host = [&](const std::string& net, const char* addr) -> std::string {
    const Service* s = snap->find_service(net, ip(addr));
    return s ? s->hostname : "none";
  };
  // An exact VIP beats a CIDR VIP that also contains it.
  CHECK(host("", "10.50.7.9") == "exact.ns.svc");
  // Longest prefix wins: the /24 inside the /16.
  CHECK(host("", "10.50.7.10") == "narrow.ns.svc");
  CHECK(host("", "10.50.8.1") == "wide.ns.svc");
  CHECK(host("", "10.51.0.1") == "none");
  // IPv6, and an IPv4-mapped destination as a dual-stack socket reports it.
  CHECK(host("", "fd00:50:7::1") == "narrow.ns.svc");
  CHECK(host("", "fd00:50:8::1") == "wide.ns.svc");
  CHECK(host("", "::ffff:10.50.7.10") == "narrow.ns.svc");
  CHECK(host("", "fd01::1") == "none");
  // Another network's CIDR VIP is ignored, and ours are not seen from there.
  CHECK(host("", "10.60.0.1") == "none");
  CHECK(host("other", "10.60.0.1") == "wide.ns.svc");
  CHECK(host("other", "10.50.7.10") == "none");
  // The service keeps only full-width addresses in vips.
  CHECK(snap->find_service_by_key("ns/wide.ns.svc")->vips.empty());
  CHECK(snap->find_service_by_key("ns/wide.ns.svc")->cidr_vips.size() == 3);
}

TEST_CASE("find_service: one CIDR claimed twice goes to the later service, as an exact VIP", "[state][cidr]") {
  auto make = [](const char* name, const char* cidr) {
    Service s;
    s.name = name;
    s.ns = "ns";
    s.hostname = std::string(name) + ".ns.svc";
    s.cidr_vips.push_back(*NetworkCidr::parse(cidr));
    return s;
  };
  auto snap = Snapshot::build({}, {make("first", "/10.70.0.0/16"), make("second", "/10.70.0.0/16")}, {});
  REQUIRE(snap->find_service("", ip("10.70.1.1")) != nullptr);
  CHECK(snap->find_service("", ip("10.70.1.1"))->name == "second");
}

TEST_CASE("route_outbound: a destination inside a CIDR VIP is routed to that service", "[state][route][cidr]") {
  auto snap = snapshot_from(kCidrMesh);
  const Workload& client = *snap->find_workload("", ip("10.0.0.1"));
  auto r = route_outbound(*snap, client, ip("10.50.7.200"), 80, 0);
  CHECK(r.kind == RouteKind::Hbone);
  REQUIRE(r.destination_service != nullptr);
  CHECK(r.destination_service->hostname == "narrow.ns.svc");
  CHECK(r.target.to_string() == "10.0.0.3:15008");
  CHECK(r.authority == "10.0.0.3:8080");
  r = route_outbound(*snap, client, ip("10.50.200.1"), 80, 0);
  CHECK(r.target.to_string() == "10.0.0.2:15008");
  CHECK(route_outbound(*snap, client, ip("10.51.0.1"), 80, 0).kind == RouteKind::Passthrough);
}

TEST_CASE("to_json: cidrVips as \"network/ip/len\", omitted when empty", "[state][cidr]") {
  auto snap = snapshot_from(kCidrMesh);
  const nlohmann::json j = snap->to_json();
  REQUIRE(j["services"].size() == 3);
  const auto& wide = j["services"][0];
  CHECK(wide["vips"] == nlohmann::json::array());
  CHECK(wide["cidrVips"] == nlohmann::json({"/10.50.0.0/16", "/fd00:50::/32", "other/10.60.0.0/16"}));
  CHECK_FALSE(j["services"][2].contains("cidrVips"));
}

// ---- incremental updates (the xDS path) ---------------------------------------------------------

namespace {

// A random workload from small pools, so addresses collide across workloads and networks,
// services gain and lose members, and health and host networking vary.
WorkloadPtr random_workload(std::mt19937& rng, const std::string& uid) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  Workload w;
  w.uid = uid;
  w.name = uid.substr(uid.rfind('/') + 1);
  w.ns = "ns";
  w.network = pick(4) == 0 ? "net2" : "";
  w.tunnel_protocol = pick(2) ? TunnelProtocol::Hbone : TunnelProtocol::None;
  w.network_mode = pick(10) == 0 ? NetworkMode::HostNetwork : NetworkMode::Standard;
  w.status = pick(5) == 0 ? HealthStatus::Unhealthy : HealthStatus::Healthy;
  for (int i = 0, n = 1 + pick(2); i < n; ++i) {
    w.addresses.push_back(*parse_ip("10.0.0." + std::to_string(1 + pick(60))));
  }
  for (int i = 0, n = pick(3); i < n; ++i) {
    PortMap pm;
    pm.set(80, static_cast<uint16_t>(8000 + pick(3)));
    w.services["ns/s" + std::to_string(pick(12)) + ".ns.svc.cluster.local"] = pm;
  }
  return std::make_shared<const Workload>(std::move(w));
}

std::vector<ServicePtr> random_services(std::mt19937& rng) {
  std::vector<ServicePtr> out;
  for (int i = 0; i < 12; ++i) {
    if (rng() % 6 == 0) continue;  // some keys referenced by workloads have no service
    Service s;
    s.name = "s" + std::to_string(i);
    s.ns = "ns";
    s.hostname = s.name + ".ns.svc.cluster.local";
    s.vips.push_back({"", *parse_ip("10.96.0." + std::to_string(i + 1))});
    s.ports.set(80, 0);
    if (rng() % 3 == 0) s.load_balancer = LoadBalancer{{}, LoadBalancerMode::Standard, LoadBalancerHealthPolicy::AllowAll};
    out.push_back(std::make_shared<const Service>(std::move(s)));
  }
  return out;
}

std::vector<WorkloadPtr> values(const std::map<std::string, WorkloadPtr>& m) {
  std::vector<WorkloadPtr> v;
  for (const auto& [k, w] : m) v.push_back(w);
  return v;
}

}  // namespace

TEST_CASE("Snapshot::update after random workload deltas equals a full build", "[state]") {
  std::mt19937 rng(20261202);
  std::map<std::string, WorkloadPtr> ws;
  int next_uid = 0;
  auto new_uid = [&] {
    // Pods and WorkloadEntries, so address claims are ranked.
    const int n = next_uid++;
    return std::string(n % 3 ? "c//Pod/ns/p" : "c//WorkloadEntry/ns/e") + std::to_string(n);
  };
  for (int i = 0; i < 80; ++i) {
    const std::string uid = new_uid();
    ws[uid] = random_workload(rng, uid);
  }
  auto services = random_services(rng);
  SnapshotConstSharedPtr snap = Snapshot::build_shared(values(ws), services, {}, 1, true);

  for (int round = 0; round < 200; ++round) {
    CAPTURE(round);
    std::map<std::string, std::pair<WorkloadPtr, WorkloadPtr>> changes;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 6); k < n; ++k) {
      const unsigned op = rng() % 3;
      if (op == 0 || ws.empty()) {  // add
        const std::string uid = new_uid();
        auto w = random_workload(rng, uid);
        changes[uid] = {nullptr, w};
        ws[uid] = w;
      } else {
        auto it = std::next(ws.begin(), static_cast<long>(rng() % ws.size()));
        auto& c = changes.try_emplace(it->first, it->second, nullptr).first->second;
        if (op == 1) {  // change in place (same uid, new object)
          it->second = random_workload(rng, it->first);
          c.second = it->second;
        } else {  // remove
          c.second = nullptr;
          ws.erase(it);
        }
      }
    }
    if (round % 17 == 0) {
      services = random_services(rng);
    } else if (round % 5 == 1 && !services.empty()) {
      // One service replaced by a new object (the others stay shared), or dropped.
      const size_t i = rng() % services.size();
      if (rng() % 3 == 0) {
        services.erase(services.begin() + static_cast<long>(i));
      } else {
        Service s = *services[i];
        s.load_balancer = s.load_balancer ? std::nullopt
                                          : std::optional<LoadBalancer>(LoadBalancer{
                                                {}, LoadBalancerMode::Standard, LoadBalancerHealthPolicy::AllowAll});
        services[i] = std::make_shared<const Service>(std::move(s));
      }
    }
    std::vector<std::pair<WorkloadPtr, WorkloadPtr>> list;
    for (auto& [uid, c] : changes) {
      if (c.first != c.second) list.push_back(c);
    }
    auto inc = Snapshot::update(*snap, values(ws), services, {}, list, static_cast<uint64_t>(round + 2));
    auto full = Snapshot::build_shared(values(ws), services, {}, static_cast<uint64_t>(round + 2), true);
    REQUIRE(inc->to_json() == full->to_json());
    for (const auto& svc : services) {
      // The same endpoints (to_json compares them by uid; here the objects).
      std::set<const Workload*> a, b;
      for (const auto& e : inc->endpoints(*svc)) a.insert(e.workload);
      for (const auto& e : full->endpoints(*svc)) b.insert(e.workload);
      REQUIRE(a == b);
      REQUIRE(inc->find_service_by_key(svc->key()) == svc.get());
    }
    for (const auto& [uid, w] : ws) REQUIRE(inc->find_workload_by_uid(uid) == full->find_workload_by_uid(uid));
    for (int i = 1; i <= 61; ++i) {
      const IpAddr ip = *parse_ip("10.0.0." + std::to_string(i));
      for (const char* net : {"", "net2"}) {
        CAPTURE(i, net);
        REQUIRE(inc->find_workload(net, ip) == full->find_workload(net, ip));
      }
    }
    snap = inc;  // the next round builds on the incremental one
  }
  // Still referenced by the older generation's shards? Not required; what is required is that
  // removed workloads are gone from the current one.
  for (const auto& w : snap->workloads()) REQUIRE(snap->find_workload_by_uid(w->uid) == w.get());
}
