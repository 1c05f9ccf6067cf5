#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "common/model/local_config.h"

using namespace ztunnel;

namespace {

std::string examples_dir() {
  return (std::filesystem::path(AMBIENT_SOURCE_DIR) / "examples").string();
}

// Parses and expects an error mentioning every fragment in `fragments`.
void expect_error(const std::string& yaml, std::initializer_list<std::string> fragments) {
  auto r = parse_local_config(yaml);
  INFO(yaml);
  REQUIRE_FALSE(r.ok());
  for (const auto& f : fragments) {
    INFO("error: " << r.error());
    CHECK(r.error().find(f) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("parses the upstream-shaped localhost example", "[local_config]") {
  auto r = load_local_config(examples_dir() + "/localhost.yaml");
  INFO((r.ok() ? "" : r.error()));
  REQUIRE(r.ok());
  const LocalConfig& cfg = *r;
  REQUIRE(cfg.workloads.size() == 2);
  const Workload& w = cfg.workloads[0];
  CHECK(w.uid == "cluster1//v1/Pod/default/local");
  CHECK(w.ns == "default");
  CHECK(w.tunnel_protocol == TunnelProtocol::Hbone);
  CHECK(cfg.workloads[1].tunnel_protocol == TunnelProtocol::None);
  REQUIRE(w.addresses.size() == 1);
  CHECK(w.addresses[0] == *parse_ip("127.0.0.1"));
  REQUIRE(w.services.count("default/echo.local") == 1);
  CHECK(w.services.at("default/echo.local").find(80) == std::optional<uint16_t>(8080));

  REQUIRE(cfg.services.size() == 1);
  const Service& s = cfg.services[0];
  CHECK(s.key() == "default/echo.local");
  REQUIRE(s.vips.size() == 1);
  CHECK(s.vips[0].network.empty());
  CHECK(s.vips[0].ip == *parse_ip("127.10.0.1"));
  CHECK(s.ports.find(80) == std::optional<uint16_t>(8080));
  CHECK(s.subject_alt_names == std::vector<std::string>{"spiffe://cluster.local/ns/default/sa/default"});

  REQUIRE(cfg.policies.size() == 1);
  const Authorization& p = cfg.policies[0];
  CHECK(p.key() == "default/deny-9999");
  CHECK(p.scope == AuthzScope::Namespace);
  CHECK(p.action == AuthzAction::Allow);
  REQUIRE(p.rules.size() == 1);
  REQUIRE(p.rules[0].size() == 1);
  REQUIRE(p.rules[0][0].size() == 1);
  CHECK(p.rules[0][0][0].not_destination_ports == std::vector<uint16_t>{9999});
}

TEST_CASE("parses the waypoint example", "[local_config]") {
  auto r = load_local_config(examples_dir() + "/waypoint.yaml");
  INFO((r.ok() ? "" : r.error()));
  REQUIRE(r.ok());
  const Service& cart = r->services[0];
  REQUIRE(cart.waypoint);
  REQUIRE(cart.waypoint->hostname());
  CHECK(cart.waypoint->hostname()->ns == "shop");
  CHECK(cart.waypoint->hostname()->hostname == "waypoint.shop.svc.cluster.local");
  CHECK(cart.waypoint->hbone_mtls_port == 15008);
  const Workload& cart1 = r->workloads[1];
  CHECK(cart1.locality.region == "eu-west");
  CHECK(cart1.locality.zone == "eu-west-1a");
  CHECK(cart1.authorization_policies == std::vector<std::string>{"shop/cart-from-waypoint"});
  const Workload& wp = r->workloads[2];
  REQUIRE(wp.application_tunnel);
  CHECK(wp.application_tunnel->protocol == ApplicationTunnel::Protocol::Proxy);
  const Authorization& deny = r->policies[1];
  CHECK(deny.ns.empty());
  CHECK(deny.scope == AuthzScope::Global);
  CHECK(deny.dry_run);
  CHECK(deny.rules[0][0][0].source_ips[0].to_string() == "192.168.0.0/16");
}

TEST_CASE("applies upstream defaults", "[local_config]") {
  auto r = parse_local_config(R"(
workloads:
- name: a
  namespace: ns1
  workloadIps: ["10.0.0.1"]
)");
  REQUIRE(r.ok());
  const Workload& w = r->workloads[0];
  CHECK(w.service_account == "default");
  CHECK(w.trust_domain == "cluster.local");
  CHECK(w.capacity == 1);
  CHECK(w.status == HealthStatus::Healthy);
  CHECK(w.tunnel_protocol == TunnelProtocol::None);
  CHECK(w.cluster_id == "Kubernetes");
  CHECK(w.uid == "Kubernetes//Pod/ns1/a");
  CHECK(w.identity().uri() == "spiffe://cluster.local/ns/ns1/sa/default");
}

TEST_CASE("empty documents are an empty config", "[local_config]") {
  auto r = parse_local_config("");
  REQUIRE(r.ok());
  CHECK(r->workloads.empty());
  auto r2 = parse_local_config("workloads: []\n");
  REQUIRE(r2.ok());
  CHECK(r2->workloads.empty());
}

TEST_CASE("unknown keys are rejected with their path", "[local_config]") {
  expect_error(R"(
workloads:
- name: a
  namespace: ns
- name: b
  namespace: ns
  serviceAcount: oops
)",
               {"workloads[1].serviceAcount: unknown field"});
  expect_error("workload: []\n", {"workload: unknown field"});
  expect_error(R"(
services:
- name: s
  namespace: ns
  hostname: h
  loadBalancer: {mode: Strict, routingPreference: [Zone]}
)",
               {"services[0].loadBalancer.routingPreference: unknown field"});
  expect_error(R"(
policies:
- name: p
  namespace: ns
  scope: Namespace
  action: Allow
  rules:
  - - - principals: [{exact: "cluster.local/ns/a/sa/b"}]
)",
               {"policies[0].rules[0][0][0].principals[0].exact: unknown field"});
  expect_error(R"(
policies:
- name: p
  namespace: ns
  scope: Namespace
  action: Allow
  rules:
  - - - notDestinationPort: [1]
)",
               {"policies[0].rules[0][0][0].notDestinationPort: unknown field"});
}

TEST_CASE("type and value errors name the field", "[local_config]") {
  expect_error("workloads:\n- namespace: ns\n  capacity: lots\n", {"workloads[0].capacity"});
  expect_error("workloads:\n- namespace: ns\n  protocol: UDP\n",
               {"workloads[0].protocol", "UDP", "HBONE"});
  expect_error("workloads:\n- namespace: ns\n  workloadIps: [\"10.0.0.300\"]\n",
               {"workloads[0].workloadIps[0]", "10.0.0.300"});
  expect_error("workloads:\n- namespace: ns\n  workloadIps: \"10.0.0.1\"\n",
               {"workloads[0].workloadIps", "expected a list"});
  expect_error("workloads:\n- name: a\n", {"workloads[0].namespace", "missing"});
  expect_error("workloads:\n- namespace: ns\n  services: {\"nohost\": {80: 80}}\n",
               {"workloads[0].services[\"nohost\"]"});
  expect_error("workloads:\n- namespace: ns\n  services: {\"ns/h\": {80: 70000}}\n",
               {"workloads[0].services[\"ns/h\"][80]"});
  expect_error("services:\n- {name: s, namespace: ns, hostname: h, vips: [\"10.0.0.1\"]}\n",
               {"services[0].vips[0]", "network/ip"});
  expect_error("services:\n- {name: s, namespace: ns, hostname: h, cidrVips: [\"/10.0.0.0\"]}\n",
               {"services[0].cidrVips[0]", "network/ip/length"});
  expect_error("services:\n- {name: s, namespace: ns, hostname: h, cidrVips: [\"/10.0.0.0/33\"]}\n",
               {"services[0].cidrVips[0]", "10.0.0.0/33"});
  expect_error("services:\n- {name: s, namespace: ns, hostname: h, ports: {http: 80}}\n",
               {"services[0].ports[http]"});
  expect_error(
      "policies:\n- {name: p, namespace: ns, scope: Namespace, action: Audit, rules: []}\n",
      {"policies[0].action", "Audit"});
  expect_error("policies:\n- {name: p, namespace: ns, action: Allow}\n",
               {"policies[0].scope", "missing"});
  expect_error(
      "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[{sourceIps: [\"10.0.0.0/33\"]}]]]}\n",
      {"policies[0].rules[0][0][0].sourceIps[0]", "CIDR"});
  expect_error(
      "policies:\n- {name: p, scope: Global, action: Deny, dryRun: maybe}\n",
      {"policies[0].dryRun"});
  expect_error("- a\n- b\n", {"<root>", "expected a map"});
  expect_error("workloads: [\n", {"invalid YAML"});
}

TEST_CASE("string match spellings follow upstream", "[local_config]") {
  auto r = parse_local_config(R"(
policies:
- name: p
  namespace: ns
  scope: Namespace
  action: Deny
  rules:
  - - - principals:
          - Exact: cluster.local/ns/a/sa/b
          - Prefix: cluster.local/ns/c/
          - Suffix: /sa/d
          - Presence: []
        namespaces:
          - Presence: {}
        serviceAccounts:
          - {namespace: a, serviceAccount: b}
        destinationIps: ["10.0.0.1", "fd00::/8"]
)");
  INFO((r.ok() ? "" : r.error()));
  REQUIRE(r.ok());
  const AuthzMatch& m = r->policies[0].rules[0][0][0];
  REQUIRE(m.principals.size() == 4);
  CHECK(m.principals[0].kind == StringMatch::Kind::Exact);
  CHECK(m.principals[0].value == "cluster.local/ns/a/sa/b");
  CHECK(m.principals[1].kind == StringMatch::Kind::Prefix);
  CHECK(m.principals[2].kind == StringMatch::Kind::Suffix);
  CHECK(m.principals[3].kind == StringMatch::Kind::Presence);
  CHECK(m.namespaces[0].kind == StringMatch::Kind::Presence);
  CHECK(m.service_accounts[0] == ServiceAccountMatch{"a", "b"});
  CHECK(m.destination_ips[0].to_string() == "10.0.0.1/32");
  CHECK(m.destination_ips[1].to_string() == "fd00::/8");

  expect_error(R"(
policies:
- {name: p, scope: Global, action: Deny, rules: [[[{principals: [{Exact: a, Prefix: b}]}]]]}
)",
               {"policies[0].rules[0][0][0].principals[0]", "exactly one"});
}

TEST_CASE("gateway destinations: network/ip or namespace/hostname", "[local_config]") {
  auto r = parse_local_config(R"(
workloads:
- namespace: ns
  name: a
  waypoint: {destination: "net1/10.0.0.5", hboneMtlsPort: 15009}
- namespace: ns
  name: b
  waypoint: {destination: "ns/wp.ns.svc.cluster.local"}
)");
  REQUIRE(r.ok());
  REQUIRE(r->workloads[0].waypoint->address());
  CHECK(r->workloads[0].waypoint->address()->network == "net1");
  CHECK(r->workloads[0].waypoint->hbone_mtls_port == 15009);
  REQUIRE(r->workloads[1].waypoint->hostname());
  CHECK(r->workloads[1].waypoint->hbone_mtls_port == 15008);
  expect_error("workloads:\n- {namespace: ns, waypoint: {destination: nope}}\n",
               {"workloads[0].waypoint.destination"});
}

TEST_CASE("duplicates are rejected", "[local_config]") {
  expect_error(R"(
workloads:
- {uid: x, namespace: ns}
- {uid: x, namespace: ns}
)",
               {"workloads[1].uid", "duplicate"});
  expect_error(R"(
services:
- {name: a, namespace: ns, hostname: h}
- {name: b, namespace: ns, hostname: h}
)",
               {"services[1]", "duplicate"});
}

TEST_CASE("alias bombs are bounded", "[local_config]") {
  // One rules tree of 30x30x30 matches, referenced by many policies through an alias: tiny
  // text, tens of millions of nodes if walked without a budget.
  auto repeat = [](const std::string& first, const std::string& alias, int n) {
    std::string out = "[" + first;
    for (int i = 1; i < n; ++i) out += ", " + alias;
    return out + "]";
  };
  const std::string match = "&M {destinationPorts: [1, 2, 3]}";
  const std::string clause = "&CL " + repeat(match, "*M", 30);
  const std::string rule = "&RU " + repeat(clause, "*CL", 30);
  const std::string rules = "&R " + repeat(rule, "*RU", 30);
  std::string y = "policies:\n- {name: p0, scope: Global, action: Deny, rules: " + rules + "}\n";
  for (int i = 1; i < 200; ++i) {
    y += "- {name: p" + std::to_string(i) + ", scope: Global, action: Deny, rules: *R}\n";
  }
  auto r = parse_local_config(y);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("too many nodes") != std::string::npos);
}

TEST_CASE("load_local_config reports missing files", "[local_config]") {
  auto r = load_local_config("/nonexistent/dir/config.yaml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("/nonexistent/dir/config.yaml") != std::string::npos);
}

TEST_CASE("strings must be valid UTF-8", "[local_config]") {
  expect_error("workloads:\n- namespace: \"ns\xff\"\n", {"workloads[0].namespace", "UTF-8"});
  expect_error("workloads:\n- namespace: \"\xc0\xaf\"\n", {"UTF-8"});  // overlong '/'
  auto ok = parse_local_config("workloads:\n- {namespace: ns, name: \"caf\xc3\xa9\"}\n");
  REQUIRE(ok.ok());
  CHECK(ok->workloads[0].name == "caf\xc3\xa9");
}

TEST_CASE("service cidrVips: \"network/ip/length\", host bits cleared", "[local_config]") {
  auto r = parse_local_config(R"(
services:
- name: s
  namespace: ns
  hostname: s.ns.svc
  vips: ["/10.96.0.1"]
  cidrVips: ["/10.50.7.9/24", "net2/fd00:50::/32"]
)");
  INFO((r.ok() ? "" : r.error()));
  REQUIRE(r.ok());
  const Service& s = r.value().services.at(0);
  REQUIRE(s.vips.size() == 1);
  REQUIRE(s.cidr_vips.size() == 2);
  CHECK(s.cidr_vips[0].network.empty());
  CHECK(s.cidr_vips[0].to_string() == "/10.50.7.0/24");
  CHECK(s.cidr_vips[1].network == "net2");
  CHECK(s.cidr_vips[1].cidr.prefix_len == 32);
  CHECK(s.cidr_vips[1].to_string() == "net2/fd00:50::/32");
}
