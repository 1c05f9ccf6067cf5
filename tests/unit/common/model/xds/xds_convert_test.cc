// common/model/xds/xds_convert.h: istio.workload.Address / istio.security.Authorization protobufs ->
// model types. Defaults, every field mapping, and every rejection reason.
#include <catch2/catch.hpp>
#include <optional>
#include <string>

#include "istio/security/authorization.pb.h"
#include "istio/workload/workload.pb.h"
#include "common/model/xds/xds_convert.h"
#include "common/model/xds/xds_resources.h"

using namespace ztunnel;
namespace pw = istio::workload;
namespace ps = istio::security;

namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int v : b) s.push_back(static_cast<char>(v));
  return s;
}

pw::Workload base_workload() {
  pw::Workload w;
  w.set_uid("Kubernetes//Pod/ns/a");
  w.set_name("a");
  w.set_namespace_("ns");
  w.add_addresses(bytes({10, 0, 0, 1}));
  return w;
}

pw::Service base_service() {
  pw::Service s;
  s.set_name("svc");
  s.set_namespace_("ns");
  s.set_hostname("svc.ns.svc.cluster.local");
  return s;
}

template <typename R>
std::string err(const R& r) {
  REQUIRE(!r);
  return r.error();
}

}  // namespace

TEST_CASE("workload defaults", "[xds_convert]") {
  auto r = convert_workload(base_workload());
  REQUIRE(r);
  const Workload& w = r.value();
  CHECK(w.uid == "Kubernetes//Pod/ns/a");
  CHECK(w.name == "a");
  CHECK(w.ns == "ns");
  CHECK(w.service_account == "default");
  CHECK(w.trust_domain == "cluster.local");
  CHECK(w.cluster_id == "Kubernetes");
  CHECK(w.capacity == 1);
  CHECK(w.tunnel_protocol == TunnelProtocol::None);
  CHECK(w.network_mode == NetworkMode::Standard);
  CHECK(w.status == HealthStatus::Healthy);
  CHECK(w.workload_type == "deployment");
  CHECK(!w.waypoint);
  CHECK(!w.network_gateway);
  CHECK(!w.application_tunnel);
  REQUIRE(w.addresses.size() == 1);
  CHECK(w.addresses[0] == *parse_ip("10.0.0.1"));
}

TEST_CASE("workload full mapping", "[xds_convert]") {
  pw::Workload in = base_workload();
  in.add_addresses(bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2}));  // v4-mapped
  in.add_addresses(bytes({0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  in.set_hostname("h.example");
  in.set_network("net1");
  in.set_tunnel_protocol(pw::HBONE);
  in.set_trust_domain("td.example");
  in.set_service_account("sa1");
  in.mutable_waypoint()->mutable_address()->set_address(bytes({10, 0, 0, 9}));
  in.mutable_waypoint()->mutable_address()->set_network("net1");
  in.mutable_network_gateway()->mutable_hostname()->set_namespace_("istio-system");
  in.mutable_network_gateway()->mutable_hostname()->set_hostname("eastwest.example");
  in.mutable_network_gateway()->set_hbone_mtls_port(15009);
  in.set_node("node1");
  in.set_canonical_name("app");
  in.set_canonical_revision("v1");
  in.set_workload_type(pw::POD);
  in.set_workload_name("a-deploy");
  in.set_native_tunnel(true);
  in.mutable_application_tunnel()->set_protocol(pw::ApplicationTunnel::PROXY);
  in.mutable_application_tunnel()->set_port(15088);
  auto& pl = (*in.mutable_services())["ns/svc.ns.svc.cluster.local"];
  auto* p = pl.add_ports();
  p->set_service_port(80);
  p->set_target_port(8080);
  in.add_authorization_policies("ns/pol");
  in.set_status(pw::UNHEALTHY);
  in.set_cluster_id("c2");
  in.mutable_locality()->set_region("r");
  in.mutable_locality()->set_zone("z");
  in.mutable_locality()->set_subzone("s");
  in.set_network_mode(pw::HOST_NETWORK);
  in.mutable_capacity()->set_value(0);

  auto r = convert_workload(in);
  REQUIRE(r);
  const Workload& w = r.value();
  REQUIRE(w.addresses.size() == 3);
  CHECK(w.addresses[1] == *parse_ip("192.168.1.2"));
  CHECK(w.addresses[1].is_v4());  // canonical
  CHECK(w.addresses[2] == *parse_ip("fd00::1"));
  CHECK(w.hostname == "h.example");
  CHECK(w.network == "net1");
  CHECK(w.tunnel_protocol == TunnelProtocol::Hbone);
  CHECK(w.trust_domain == "td.example");
  CHECK(w.service_account == "sa1");
  REQUIRE(w.waypoint);
  REQUIRE(w.waypoint->address());
  CHECK(w.waypoint->address()->network == "net1");
  CHECK(w.waypoint->address()->ip == *parse_ip("10.0.0.9"));
  CHECK(w.waypoint->hbone_mtls_port == 15008);  // 0 -> default
  REQUIRE(w.network_gateway);
  REQUIRE(w.network_gateway->hostname());
  CHECK(w.network_gateway->hostname()->ns == "istio-system");
  CHECK(w.network_gateway->hostname()->hostname == "eastwest.example");
  CHECK(w.network_gateway->hbone_mtls_port == 15009);
  CHECK(w.node == "node1");
  CHECK(w.canonical_name == "app");
  CHECK(w.canonical_revision == "v1");
  CHECK(w.workload_type == "pod");
  CHECK(w.workload_name == "a-deploy");
  CHECK(w.native_tunnel);
  REQUIRE(w.application_tunnel);
  CHECK(w.application_tunnel->protocol == ApplicationTunnel::Protocol::Proxy);
  CHECK(w.application_tunnel->port == 15088);
  REQUIRE(w.services.count("ns/svc.ns.svc.cluster.local"));
  CHECK(w.services.at("ns/svc.ns.svc.cluster.local").find(80) == 8080);
  CHECK(w.authorization_policies == std::vector<std::string>{"ns/pol"});
  CHECK(w.status == HealthStatus::Unhealthy);
  CHECK(w.cluster_id == "c2");
  CHECK(w.locality == Locality{"r", "z", "s"});
  CHECK(w.network_mode == NetworkMode::HostNetwork);
  CHECK(w.capacity == 0);  // explicitly set wins over the default

  for (auto [t, name] : {std::pair{pw::DEPLOYMENT, "deployment"}, {pw::CRONJOB, "cronjob"}, {pw::JOB, "job"}}) {
    pw::Workload x = base_workload();
    x.set_workload_type(t);
    CHECK(convert_workload(x)->workload_type == name);
  }
}

TEST_CASE("workload rejections", "[xds_convert]") {
  {
    pw::Workload w = base_workload();
    w.set_tunnel_protocol(pw::LEGACY_ISTIO_MTLS);
    CHECK(err(convert_workload(w)) == "tunnel_protocol: LEGACY_ISTIO_MTLS is not supported");
  }
  {
    pw::Workload w = base_workload();
    w.set_tunnel_protocol(static_cast<pw::TunnelProtocol>(7));
    CHECK(err(convert_workload(w)) == "tunnel_protocol: unknown value 7");
  }
  {
    pw::Workload w = base_workload();
    w.set_uid("");
    CHECK(err(convert_workload(w)) == "workload uid is empty");
  }
  {
    pw::Workload w = base_workload();
    w.add_addresses(bytes({1, 2, 3}));
    CHECK(err(convert_workload(w)) == "addresses[1]: address must be 4 or 16 bytes, got 3");
  }
  {
    pw::Workload w = base_workload();
    w.set_network_mode(static_cast<pw::NetworkMode>(9));
    CHECK(err(convert_workload(w)) == "network_mode: unknown value 9");
  }
  {
    pw::Workload w = base_workload();
    w.set_status(static_cast<pw::WorkloadStatus>(5));
    CHECK(err(convert_workload(w)) == "status: unknown value 5");
  }
  {
    pw::Workload w = base_workload();
    w.set_workload_type(static_cast<pw::WorkloadType>(8));
    CHECK(err(convert_workload(w)) == "workload_type: unknown value 8");
  }
  {
    pw::Workload w = base_workload();
    w.mutable_waypoint()->set_hbone_mtls_port(15008);  // no destination
    CHECK(err(convert_workload(w)) == "waypoint: no destination (hostname or address)");
  }
  {
    pw::Workload w = base_workload();
    w.mutable_waypoint()->mutable_address()->set_address(bytes({1, 2, 3, 4, 5}));
    CHECK(err(convert_workload(w)) == "waypoint.address: address must be 4 or 16 bytes, got 5");
  }
  {
    pw::Workload w = base_workload();
    w.mutable_network_gateway()->mutable_hostname()->set_namespace_("ns");
    CHECK(err(convert_workload(w)) == "network_gateway.hostname: hostname is empty");
  }
  {
    pw::Workload w = base_workload();
    w.mutable_waypoint()->mutable_address()->set_address(bytes({10, 0, 0, 9}));
    w.mutable_waypoint()->set_hbone_mtls_port(70000);
    CHECK(err(convert_workload(w)) == "waypoint.hbone_mtls_port: port 70000 out of range (max 65535)");
  }
  {
    pw::Workload w = base_workload();
    w.mutable_application_tunnel()->set_port(65536);
    CHECK(err(convert_workload(w)) == "application_tunnel.port: port 65536 out of range (max 65535)");
  }
  {
    pw::Workload w = base_workload();
    w.mutable_application_tunnel()->set_protocol(static_cast<pw::ApplicationTunnel::Protocol>(4));
    CHECK(err(convert_workload(w)) == "application_tunnel.protocol: unknown value 4");
  }
  {
    pw::Workload w = base_workload();
    (*w.mutable_services())["no-slash"];
    CHECK(err(convert_workload(w)) == "services[\"no-slash\"]: key must be \"namespace/hostname\"");
  }
  {
    pw::Workload w = base_workload();
    (*w.mutable_services())["ns/h"].add_ports()->set_target_port(100000);
    CHECK(err(convert_workload(w)) ==
          "services[\"ns/h\"].ports[0].target_port: port 100000 out of range (max 65535)");
  }
}

TEST_CASE("service mapping and defaults", "[xds_convert]") {
  pw::Service in = base_service();
  auto* a = in.add_addresses();
  a->set_network("n");
  a->set_address(bytes({10, 96, 0, 1}));
  auto* a6 = in.add_addresses();
  a6->set_address(bytes({0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}));
  a6->set_length(128);
  auto* p = in.add_ports();
  p->set_service_port(80);
  p->set_target_port(8080);
  p->set_app_protocol(pw::HTTP2);
  auto* p2 = in.add_ports();
  p2->set_service_port(443);  // named target port: 0
  in.add_subject_alt_names("spiffe://td/ns/x/sa/y");
  in.mutable_waypoint()->mutable_hostname()->set_namespace_("ns");
  in.mutable_waypoint()->mutable_hostname()->set_hostname("wp.ns.svc.cluster.local");
  in.set_canonical(true);

  auto r = convert_service(in);
  REQUIRE(r);
  const Service& s = r.value();
  CHECK(s.key() == "ns/svc.ns.svc.cluster.local");
  CHECK(s.name == "svc");
  REQUIRE(s.vips.size() == 2);
  CHECK(s.vips[0].network == "n");
  CHECK(s.vips[0].ip == *parse_ip("10.96.0.1"));
  CHECK(s.vips[1].ip == *parse_ip("fd00::2"));
  CHECK(s.ports.find(80) == 8080);
  CHECK(s.ports.find(443) == 0);
  CHECK(s.subject_alt_names == std::vector<std::string>{"spiffe://td/ns/x/sa/y"});
  REQUIRE(s.waypoint);
  CHECK(s.waypoint->hostname()->hostname == "wp.ns.svc.cluster.local");
  CHECK(s.waypoint->hbone_mtls_port == 15008);
  CHECK(s.canonical);
  CHECK(!s.load_balancer);
  CHECK(!s.ip_families);  // AUTOMATIC

  in.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::NETWORK);
  in.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::REGION);
  in.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::ZONE);
  in.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::SUBZONE);
  in.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::NODE);
  in.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::CLUSTER);
  in.mutable_load_balancing()->set_mode(pw::LoadBalancing::FAILOVER);
  in.mutable_load_balancing()->set_health_policy(pw::LoadBalancing::ALLOW_ALL);
  in.set_ip_families(pw::IPV6_ONLY);
  r = convert_service(in);
  REQUIRE(r);
  REQUIRE(r->load_balancer);
  CHECK(r->load_balancer->routing_preferences ==
        std::vector<LoadBalancerScope>{LoadBalancerScope::Network, LoadBalancerScope::Region, LoadBalancerScope::Zone,
                                       LoadBalancerScope::Subzone, LoadBalancerScope::Node,
                                       LoadBalancerScope::Cluster});
  CHECK(r->load_balancer->mode == LoadBalancerMode::Failover);
  CHECK(r->load_balancer->health_policy == LoadBalancerHealthPolicy::AllowAll);
  CHECK(r->ip_families == IpFamily::IPv6);

  for (auto [m, want] : {std::pair{pw::LoadBalancing::UNSPECIFIED_MODE, LoadBalancerMode::Standard},
                         {pw::LoadBalancing::STRICT, LoadBalancerMode::Strict},
                         {pw::LoadBalancing::PASSTHROUGH, LoadBalancerMode::Passthrough}}) {
    in.mutable_load_balancing()->set_mode(m);
    CHECK(convert_service(in)->load_balancer->mode == want);
  }
  for (auto [f, want] : {std::pair{pw::IPV4_ONLY, IpFamily::IPv4}, {pw::DUAL, IpFamily::Dual}}) {
    in.set_ip_families(f);
    CHECK(convert_service(in)->ip_families == want);
  }
}

TEST_CASE("service addresses with a shorter length become cidrVips", "[xds_convert]") {
  pw::Service in = base_service();
  auto add = [&](const std::string& net, const std::string& addr, std::optional<uint32_t> len) {
    auto* a = in.add_addresses();
    a->set_network(net);
    a->set_address(addr);
    if (len) a->set_length(*len);
  };
  add("", bytes({10, 96, 0, 1}), std::nullopt);  // unset: a VIP
  add("", bytes({10, 96, 0, 2}), 32);            // full width: a VIP
  add("n", bytes({10, 50, 7, 9}), 24);           // a /24: a CIDR VIP, host bits cleared
  add("", bytes({0xfd, 0, 0, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), 32);
  add("", bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0, 0}), 112);  // IPv4-mapped /112 = /16
  add("", bytes({10, 0, 0, 0}), 0);  // an explicit 0 is a /0, as upstream's optional field
  auto r = convert_service(in);
  REQUIRE(r);
  REQUIRE(r->vips.size() == 2);
  CHECK(r->vips[1].ip == *parse_ip("10.96.0.2"));
  REQUIRE(r->cidr_vips.size() == 4);
  CHECK(r->cidr_vips[0].to_string() == "n/10.50.7.0/24");
  CHECK(r->cidr_vips[1].to_string() == "/fd00:50::/32");
  CHECK(r->cidr_vips[2].to_string() == "/10.1.0.0/16");
  CHECK(r->cidr_vips[3].to_string() == "/0.0.0.0/0");
}

TEST_CASE("cidrVips survive the control plane's Service serialization", "[xds_convert]") {
  Service s;
  s.name = "svc";
  s.ns = "ns";
  s.hostname = "svc.ns.svc.cluster.local";
  s.vips = {NetworkAddress{"", *parse_ip("10.96.0.1")}};
  s.cidr_vips = {*NetworkCidr::parse("n/10.50.0.0/16"), *NetworkCidr::parse("/fd00:50::/32")};
  pw::Address a;
  REQUIRE(a.ParseFromString(serialize_service(s)));
  REQUIRE(a.service().addresses_size() == 3);
  CHECK_FALSE(a.service().addresses(0).has_length());  // a full-width VIP carries no length
  CHECK(a.service().addresses(1).length() == 16);
  auto r = convert_service(a.service());
  REQUIRE(r);
  CHECK(r->vips == s.vips);
  CHECK(r->cidr_vips == s.cidr_vips);
}

TEST_CASE("service rejections", "[xds_convert]") {
  {
    pw::Service s = base_service();
    s.set_hostname("");
    CHECK(err(convert_service(s)) == "hostname: must not be empty");
  }
  {
    pw::Service s = base_service();
    s.add_addresses()->set_address(bytes({1, 2}));
    CHECK(err(convert_service(s)) == "addresses[0]: address must be 4 or 16 bytes, got 2");
  }
  {
    pw::Service s = base_service();
    auto* a = s.add_addresses();
    a->set_address(bytes({10, 0, 0, 1}));
    a->set_length(33);
    CHECK(err(convert_service(s)) == "addresses[0]: prefix length 33 out of range (max 32)");
  }
  {
    pw::Service s = base_service();
    s.add_ports()->set_service_port(65536);
    CHECK(err(convert_service(s)) == "ports[0].service_port: port 65536 out of range (max 65535)");
  }
  {
    pw::Service s = base_service();
    s.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::UNSPECIFIED_SCOPE);
    CHECK(err(convert_service(s)) == "load_balancing.routing_preference[0]: unsupported scope 0");
  }
  {
    pw::Service s = base_service();
    s.mutable_load_balancing()->set_mode(static_cast<pw::LoadBalancing::Mode>(9));
    CHECK(err(convert_service(s)) == "load_balancing.mode: unknown value 9");
  }
  {
    pw::Service s = base_service();
    s.mutable_load_balancing()->set_health_policy(static_cast<pw::LoadBalancing::HealthPolicy>(9));
    CHECK(err(convert_service(s)) == "load_balancing.health_policy: unknown value 9");
  }
  {
    pw::Service s = base_service();
    s.set_ip_families(static_cast<pw::IPFamilies>(9));
    CHECK(err(convert_service(s)) == "ip_families: unknown value 9");
  }
  {
    pw::Service s = base_service();
    s.mutable_waypoint();
    CHECK(err(convert_service(s)) == "waypoint: no destination (hostname or address)");
  }
}

TEST_CASE("address: resource name must match the key", "[xds_convert]") {
  pw::Address wa;
  *wa.mutable_workload() = base_workload();
  auto r = convert_address(wa, "Kubernetes//Pod/ns/a");
  REQUIRE(r);
  CHECK(std::holds_alternative<Workload>(r.value()));
  CHECK(err(convert_address(wa, "other")) ==
        "resource name 'other' does not match the workload uid 'Kubernetes//Pod/ns/a'");

  pw::Address sa;
  *sa.mutable_service() = base_service();
  auto s = convert_address(sa, "ns/svc.ns.svc.cluster.local");
  REQUIRE(s);
  CHECK(std::holds_alternative<Service>(s.value()));
  CHECK(err(convert_address(sa, "ns/svc")) ==
        "resource name 'ns/svc' does not match the service key 'ns/svc.ns.svc.cluster.local'");

  CHECK(err(convert_address(pw::Address{}, "x")) == "address has neither a workload nor a service");

  pw::Address bad;
  *bad.mutable_workload() = base_workload();
  bad.mutable_workload()->set_tunnel_protocol(pw::LEGACY_ISTIO_MTLS);
  CHECK(err(convert_address(bad, "Kubernetes//Pod/ns/a")) ==
        "workload: tunnel_protocol: LEGACY_ISTIO_MTLS is not supported");

  // Through the serialized form (what the client hands over).
  auto p = parse_address_resource("Kubernetes//Pod/ns/a", wa.SerializeAsString());
  REQUIRE(p);
  CHECK(std::get<Workload>(p.value()).uid == "Kubernetes//Pod/ns/a");
  CHECK(err(parse_address_resource("x", "\xff\xff\xff")) == "cannot parse istio.workload.Address");
}

TEST_CASE("authorization mapping", "[xds_convert]") {
  ps::Authorization in;
  in.set_name("pol");
  in.set_namespace_("ns");
  in.set_scope(ps::WORKLOAD_SELECTOR);
  in.set_action(ps::DENY);
  in.set_dry_run(true);
  auto* m = in.add_rules()->add_clauses()->add_matches();
  m->add_namespaces()->set_exact("a");
  m->add_not_namespaces()->set_prefix("b");
  m->add_principals()->set_suffix("/sa/x");
  m->add_not_principals()->mutable_presence();
  auto* src = m->add_source_ips();
  src->set_address(bytes({10, 1, 2, 3}));
  src->set_length(8);
  auto* nsrc = m->add_not_source_ips();
  nsrc->set_address(bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 0}));
  nsrc->set_length(112);
  auto* dst = m->add_destination_ips();
  dst->set_address(bytes({0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  dst->set_length(64);
  auto* ndst = m->add_not_destination_ips();
  ndst->set_address(bytes({1, 2, 3, 4}));
  ndst->set_length(32);
  m->add_destination_ports(8080);
  m->add_not_destination_ports(9090);
  auto* sam = m->add_service_accounts();
  sam->set_namespace_("ns");
  sam->set_serviceaccount("sa");
  m->add_not_service_accounts()->set_namespace_("x");
  in.mutable_rules(0)->add_clauses();  // an empty clause stays
  in.add_rules();

  auto r = convert_authorization(in, "ns/pol");
  REQUIRE(r);
  const Authorization& a = r.value();
  CHECK(a.key() == "ns/pol");
  CHECK(a.scope == AuthzScope::WorkloadSelector);
  CHECK(a.action == AuthzAction::Deny);
  CHECK(a.dry_run);
  REQUIRE(a.rules.size() == 2);
  REQUIRE(a.rules[0].size() == 2);
  CHECK(a.rules[0][1].empty());
  CHECK(a.rules[1].empty());
  REQUIRE(a.rules[0][0].size() == 1);
  const AuthzMatch& x = a.rules[0][0][0];
  CHECK(x.namespaces == std::vector<StringMatch>{{StringMatch::Kind::Exact, "a"}});
  CHECK(x.not_namespaces == std::vector<StringMatch>{{StringMatch::Kind::Prefix, "b"}});
  CHECK(x.principals == std::vector<StringMatch>{{StringMatch::Kind::Suffix, "/sa/x"}});
  CHECK(x.not_principals == std::vector<StringMatch>{{StringMatch::Kind::Presence, ""}});
  CHECK(x.source_ips == std::vector<Cidr>{*Cidr::parse("10.0.0.0/8")});  // host bits cleared
  CHECK(x.not_source_ips == std::vector<Cidr>{*Cidr::parse("192.168.0.0/16")});  // v4-mapped
  CHECK(x.destination_ips == std::vector<Cidr>{*Cidr::parse("fd00::/64")});
  CHECK(x.not_destination_ips == std::vector<Cidr>{*Cidr::parse("1.2.3.4/32")});
  CHECK(x.destination_ports == std::vector<uint16_t>{8080});
  CHECK(x.not_destination_ports == std::vector<uint16_t>{9090});
  CHECK(x.service_accounts == std::vector<ServiceAccountMatch>{{"ns", "sa"}});
  CHECK(x.not_service_accounts == std::vector<ServiceAccountMatch>{{"x", ""}});

  ps::Authorization g;
  g.set_name("mesh");
  g.set_scope(ps::GLOBAL);
  auto gr = convert_authorization(g, "/mesh");
  REQUIRE(gr);
  CHECK(gr->scope == AuthzScope::Global);
  CHECK(gr->action == AuthzAction::Allow);
  CHECK(gr->ns.empty());
  CHECK(gr->rules.empty());

  g.set_scope(ps::NAMESPACE);
  auto p = parse_authorization_resource("/mesh", g.SerializeAsString());
  REQUIRE(p);
  CHECK(p->scope == AuthzScope::Namespace);
}

TEST_CASE("authorization rejections", "[xds_convert]") {
  auto base = [] {
    ps::Authorization a;
    a.set_name("pol");
    a.set_namespace_("ns");
    return a;
  };
  CHECK(err(convert_authorization(base(), "ns/other")) ==
        "resource name 'ns/other' does not match the authorization key 'ns/pol'");
  {
    ps::Authorization a = base();
    a.set_name("");
    CHECK(err(convert_authorization(a, "ns/")) == "authorization: name: must not be empty");
  }
  {
    ps::Authorization a = base();
    a.set_scope(static_cast<ps::Scope>(7));
    CHECK(err(convert_authorization(a, "ns/pol")) == "authorization: scope: unknown value 7");
  }
  {
    ps::Authorization a = base();
    a.set_action(static_cast<ps::Action>(2));  // AUDIT does not exist at L4
    CHECK(err(convert_authorization(a, "ns/pol")) == "authorization: action: unknown value 2");
  }
  {
    ps::Authorization a = base();
    a.add_rules()->add_clauses()->add_matches()->add_namespaces();  // oneof unset
    CHECK(err(convert_authorization(a, "ns/pol")) ==
          "authorization: rules[0].clauses[0].matches[0].namespaces[0]: string match has no exact, prefix, "
          "suffix or presence");
  }
  {
    ps::Authorization a = base();
    a.add_rules()->add_clauses()->add_matches()->add_source_ips()->set_address(bytes({1, 2, 3, 4, 5, 6}));
    CHECK(err(convert_authorization(a, "ns/pol")) ==
          "authorization: rules[0].clauses[0].matches[0].source_ips[0]: address must be 4 or 16 bytes, got 6");
  }
  {
    ps::Authorization a = base();
    auto* ip = a.add_rules()->add_clauses()->add_matches()->add_not_destination_ips();
    ip->set_address(bytes({1, 2, 3, 4}));
    ip->set_length(40);
    CHECK(err(convert_authorization(a, "ns/pol")) ==
          "authorization: rules[0].clauses[0].matches[0].not_destination_ips[0]: prefix length 40 out of range "
          "(max 32)");
  }
  {
    ps::Authorization a = base();
    auto* ip = a.add_rules()->add_clauses()->add_matches()->add_destination_ips();
    ip->set_address(bytes({0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    ip->set_length(129);
    CHECK(err(convert_authorization(a, "ns/pol")) ==
          "authorization: rules[0].clauses[0].matches[0].destination_ips[0]: prefix length 129 out of range "
          "(max 128)");
  }
  {
    ps::Authorization a = base();
    auto* ip = a.add_rules()->add_clauses()->add_matches()->add_destination_ips();
    ip->set_address(bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4}));
    ip->set_length(64);
    CHECK(err(convert_authorization(a, "ns/pol")) ==
          "authorization: rules[0].clauses[0].matches[0].destination_ips[0]: IPv4-mapped prefix length 64 below 96");
  }
  {
    ps::Authorization a = base();
    a.add_rules()->add_clauses()->add_matches()->add_not_destination_ports(65536);
    CHECK(err(convert_authorization(a, "ns/pol")) ==
          "authorization: rules[0].clauses[0].matches[0].not_destination_ports[0]: port 65536 out of range (max "
          "65535)");
  }
  CHECK(err(parse_authorization_resource("ns/pol", "\xff\xff")) == "cannot parse istio.security.Authorization");
}
