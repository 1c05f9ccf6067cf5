// common/model/local_config_writer: compiled output parses with ztunnel's parser and is a fixpoint.
#include "fixture.h"

using namespace cptest;

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
  s.cidr_vips = {*ztunnel::NetworkCidr::parse("/10.50.0.0/16"), *ztunnel::NetworkCidr::parse("net1/fd00:50::/32")};
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
  CHECK(s2.cidr_vips == s.cidr_vips);
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
