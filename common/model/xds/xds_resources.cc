#include "common/model/xds/xds_resources.h"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdint>
#include <cstdio>
#include <string_view>
#include <unordered_map>

#include "istio/security/authorization.pb.h"
#include "istio/workload/workload.pb.h"

namespace ztunnel {
namespace {

namespace iw = istio::workload;
namespace is = istio::security;

std::string ip_bytes(const ztunnel::IpAddr& ip) {
  if (ip.is_v4()) {
    const auto b = ip.to_v4().to_bytes();
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  const auto b = ip.to_v6().to_bytes();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void fill_network_address(const ztunnel::NetworkAddress& in, iw::NetworkAddress* out) {
  out->set_network(in.network);
  out->set_address(ip_bytes(in.ip));
}

void fill_gateway(const ztunnel::GatewayAddress& in, iw::GatewayAddress* out) {
  if (const auto* a = in.address()) {
    fill_network_address(*a, out->mutable_address());
  } else if (const auto* h = in.hostname()) {
    out->mutable_hostname()->set_namespace_(h->ns);
    out->mutable_hostname()->set_hostname(h->hostname);
  }
  out->set_hbone_mtls_port(in.hbone_mtls_port);
}

iw::WorkloadType workload_type(const std::string& t) {
  // Upstream ztunnel reads these four; an empty or unknown type is DEPLOYMENT (the zero value),
  // exactly what istiod would send for it.
  if (t == "cronjob") return iw::CRONJOB;
  if (t == "pod") return iw::POD;
  if (t == "job") return iw::JOB;
  return iw::DEPLOYMENT;
}

void fill_ports(const ztunnel::PortMap& ports, google::protobuf::RepeatedPtrField<iw::Port>* out) {
  for (const auto& [service_port, target_port] : ports) {
    iw::Port* p = out->Add();
    p->set_service_port(service_port);
    p->set_target_port(target_port);
  }
}

void fill_workload(const ztunnel::Workload& w, iw::Workload* out) {
  out->set_uid(w.uid);
  out->set_name(w.name);
  out->set_namespace_(w.ns);
  for (const auto& ip : w.addresses) out->add_addresses(ip_bytes(ip));
  out->set_hostname(w.hostname);
  out->set_network(w.network);
  out->set_tunnel_protocol(w.tunnel_protocol == ztunnel::TunnelProtocol::Hbone ? iw::HBONE : iw::NONE);
  out->set_trust_domain(w.trust_domain);
  out->set_service_account(w.service_account);
  if (w.waypoint) fill_gateway(*w.waypoint, out->mutable_waypoint());
  if (w.network_gateway) fill_gateway(*w.network_gateway, out->mutable_network_gateway());
  out->set_node(w.node);
  out->set_canonical_name(w.canonical_name);
  out->set_canonical_revision(w.canonical_revision);
  out->set_workload_type(workload_type(w.workload_type));
  out->set_workload_name(w.workload_name);
  out->set_native_tunnel(w.native_tunnel);
  if (w.application_tunnel) {
    auto* t = out->mutable_application_tunnel();
    t->set_protocol(w.application_tunnel->protocol == ztunnel::ApplicationTunnel::Protocol::Proxy
                        ? iw::ApplicationTunnel::PROXY
                        : iw::ApplicationTunnel::NONE);
    t->set_port(w.application_tunnel->port);
  }
  auto* services = out->mutable_services();
  for (const auto& [key, ports] : w.services) fill_ports(ports, (*services)[key].mutable_ports());
  for (const auto& p : w.authorization_policies) out->add_authorization_policies(p);
  out->set_status(w.status == ztunnel::HealthStatus::Healthy ? iw::HEALTHY : iw::UNHEALTHY);
  out->set_cluster_id(w.cluster_id);
  if (!w.locality.empty()) {
    out->mutable_locality()->set_region(w.locality.region);
    out->mutable_locality()->set_zone(w.locality.zone);
    out->mutable_locality()->set_subzone(w.locality.subzone);
  }
  out->set_network_mode(w.network_mode == ztunnel::NetworkMode::HostNetwork ? iw::HOST_NETWORK : iw::STANDARD);
  // Absent means 1 to ztunnel; istiod sets it only for a real weight, and so do we.
  if (w.capacity != 1) out->mutable_capacity()->set_value(w.capacity);
}

iw::LoadBalancing::Scope lb_scope(ztunnel::LoadBalancerScope s) {
  switch (s) {
    case ztunnel::LoadBalancerScope::Region: return iw::LoadBalancing::REGION;
    case ztunnel::LoadBalancerScope::Zone: return iw::LoadBalancing::ZONE;
    case ztunnel::LoadBalancerScope::Subzone: return iw::LoadBalancing::SUBZONE;
    case ztunnel::LoadBalancerScope::Node: return iw::LoadBalancing::NODE;
    case ztunnel::LoadBalancerScope::Cluster: return iw::LoadBalancing::CLUSTER;
    case ztunnel::LoadBalancerScope::Network: return iw::LoadBalancing::NETWORK;
  }
  return iw::LoadBalancing::UNSPECIFIED_SCOPE;
}

iw::LoadBalancing::Mode lb_mode(ztunnel::LoadBalancerMode m) {
  switch (m) {
    case ztunnel::LoadBalancerMode::Standard: return iw::LoadBalancing::UNSPECIFIED_MODE;
    case ztunnel::LoadBalancerMode::Strict: return iw::LoadBalancing::STRICT;
    case ztunnel::LoadBalancerMode::Failover: return iw::LoadBalancing::FAILOVER;
    case ztunnel::LoadBalancerMode::Passthrough: return iw::LoadBalancing::PASSTHROUGH;
  }
  return iw::LoadBalancing::UNSPECIFIED_MODE;
}

iw::IPFamilies ip_families(ztunnel::IpFamily f) {
  switch (f) {
    case ztunnel::IpFamily::Dual: return iw::DUAL;
    case ztunnel::IpFamily::IPv4: return iw::IPV4_ONLY;
    case ztunnel::IpFamily::IPv6: return iw::IPV6_ONLY;
  }
  return iw::AUTOMATIC;
}

void fill_service(const ztunnel::Service& s, iw::Service* out) {
  out->set_name(s.name);
  out->set_namespace_(s.ns);
  out->set_hostname(s.hostname);
  for (const auto& v : s.vips) fill_network_address(v, out->add_addresses());
  for (const auto& c : s.cidr_vips) {
    auto* a = out->add_addresses();
    a->set_network(c.network);
    a->set_address(ip_bytes(c.cidr.addr));
    a->set_length(c.cidr.prefix_len);
  }
  fill_ports(s.ports, out->mutable_ports());
  for (const auto& san : s.subject_alt_names) out->add_subject_alt_names(san);
  if (s.waypoint) fill_gateway(*s.waypoint, out->mutable_waypoint());
  if (s.load_balancer) {
    auto* lb = out->mutable_load_balancing();
    for (auto scope : s.load_balancer->routing_preferences) lb->add_routing_preference(lb_scope(scope));
    lb->set_mode(lb_mode(s.load_balancer->mode));
    lb->set_health_policy(s.load_balancer->health_policy == ztunnel::LoadBalancerHealthPolicy::AllowAll
                              ? iw::LoadBalancing::ALLOW_ALL
                              : iw::LoadBalancing::ONLY_HEALTHY);
  }
  if (s.ip_families) out->set_ip_families(ip_families(*s.ip_families));
  out->set_canonical(s.canonical);
  // Service::endpoints has no xDS field: over xDS, endpoints are the workloads whose
  // `services` map names this service (the compiler never produces explicit endpoints).
}

void fill_string_matches(const std::vector<ztunnel::StringMatch>& in,
                         google::protobuf::RepeatedPtrField<is::StringMatch>* out) {
  for (const auto& m : in) {
    is::StringMatch* o = out->Add();
    switch (m.kind) {
      case ztunnel::StringMatch::Kind::Exact: o->set_exact(m.value); break;
      case ztunnel::StringMatch::Kind::Prefix: o->set_prefix(m.value); break;
      case ztunnel::StringMatch::Kind::Suffix: o->set_suffix(m.value); break;
      case ztunnel::StringMatch::Kind::Presence: o->mutable_presence(); break;
    }
  }
}

void fill_cidrs(const std::vector<ztunnel::Cidr>& in, google::protobuf::RepeatedPtrField<is::Address>* out) {
  for (const auto& c : in) {
    is::Address* a = out->Add();
    a->set_address(ip_bytes(c.addr));
    a->set_length(c.prefix_len);
  }
}

void fill_ports(const std::vector<uint16_t>& in, google::protobuf::RepeatedField<uint32_t>* out) {
  for (uint16_t p : in) out->Add(p);
}

void fill_accounts(const std::vector<ztunnel::ServiceAccountMatch>& in,
                   google::protobuf::RepeatedPtrField<is::ServiceAccountMatch>* out) {
  for (const auto& sa : in) {
    is::ServiceAccountMatch* o = out->Add();
    o->set_namespace_(sa.ns);
    o->set_serviceaccount(sa.service_account);
  }
}

void fill_match(const ztunnel::AuthzMatch& m, is::Match* out) {
  fill_string_matches(m.namespaces, out->mutable_namespaces());
  fill_string_matches(m.not_namespaces, out->mutable_not_namespaces());
  fill_string_matches(m.principals, out->mutable_principals());
  fill_string_matches(m.not_principals, out->mutable_not_principals());
  fill_cidrs(m.source_ips, out->mutable_source_ips());
  fill_cidrs(m.not_source_ips, out->mutable_not_source_ips());
  fill_cidrs(m.destination_ips, out->mutable_destination_ips());
  fill_cidrs(m.not_destination_ips, out->mutable_not_destination_ips());
  fill_ports(m.destination_ports, out->mutable_destination_ports());
  fill_ports(m.not_destination_ports, out->mutable_not_destination_ports());
  fill_accounts(m.service_accounts, out->mutable_service_accounts());
  fill_accounts(m.not_service_accounts, out->mutable_not_service_accounts());
}

void fill_authorization(const ztunnel::Authorization& a, is::Authorization* out) {
  out->set_name(a.name);
  out->set_namespace_(a.ns);
  switch (a.scope) {
    case ztunnel::AuthzScope::Global: out->set_scope(is::GLOBAL); break;
    case ztunnel::AuthzScope::Namespace: out->set_scope(is::NAMESPACE); break;
    case ztunnel::AuthzScope::WorkloadSelector: out->set_scope(is::WORKLOAD_SELECTOR); break;
  }
  out->set_action(a.action == ztunnel::AuthzAction::Deny ? is::DENY : is::ALLOW);
  for (const auto& rule : a.rules) {
    is::Rule* r = out->add_rules();
    for (const auto& clause : rule) {
      is::Clause* c = r->add_clauses();
      for (const auto& match : clause) fill_match(match, c->add_matches());
    }
  }
  out->set_dry_run(a.dry_run);
}

// Deterministic: map entries in key order, so the bytes (and the version) depend only on the
// content.
std::string serialize_deterministic(const google::protobuf::MessageLite& m) {
  std::string out;
  out.reserve(m.ByteSizeLong());
  {
    google::protobuf::io::StringOutputStream sos(&out);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    m.SerializeWithCachedSizes(&cos);
  }
  return out;
}

XdsResource make_resource(std::string_view type_url, std::string&& value) {
  XdsResource r;
  r.version = fnv1a_hex(value);
  google::protobuf::Any any;
  any.set_type_url(std::string(type_url));
  any.set_value(std::move(value));
  r.any = any.SerializeAsString();
  return r;
}

}  // namespace

std::string fnv1a_hex(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string serialize_workload(const ztunnel::Workload& w) {
  iw::Address a;
  fill_workload(w, a.mutable_workload());
  return serialize_deterministic(a);
}

std::string serialize_service(const ztunnel::Service& s) {
  iw::Address a;
  fill_service(s, a.mutable_service());
  return serialize_deterministic(a);
}

std::string serialize_authorization(const ztunnel::Authorization& a) {
  is::Authorization m;
  fill_authorization(a, &m);
  return serialize_deterministic(m);
}

XdsResources to_xds_resources(const ztunnel::LocalConfig& config, const ztunnel::LocalConfig& previous,
                              const XdsResourceMap& previous_addresses) {
  std::unordered_map<std::string_view, const ztunnel::Workload*> old_workloads;
  old_workloads.reserve(previous.workloads.size());
  for (const auto& w : previous.workloads) old_workloads.emplace(w.uid, &w);
  std::unordered_map<std::string, const ztunnel::Service*> old_services;
  old_services.reserve(previous.services.size());
  for (const auto& s : previous.services) old_services.emplace(s.key(), &s);

  // Names arrive in ascending order (compiled workloads, then services, each sorted), so the
  // old map is walked with a forward cursor and the new one is appended to with a hint: linear
  // instead of a log-n search of long, shared-prefix keys per resource. Out-of-order names
  // still work (lower_bound; an unhinted insert), only slower.
  auto cursor = previous_addresses.begin();
  std::string last_name;  // a copy: service keys are temporaries
  auto previous_resource = [&](const std::string& name) -> const XdsResource* {
    if (name < last_name) cursor = previous_addresses.lower_bound(name);
    last_name.assign(name);
    while (cursor != previous_addresses.end() && cursor->first < name) ++cursor;
    return cursor != previous_addresses.end() && cursor->first == name ? &cursor->second : nullptr;
  };
  // The old resource for `name`, when the object it was made from equals `now`.
  auto reuse = [&](const std::string& name, const auto& index, const auto& key, const auto& now) -> const XdsResource* {
    auto it = index.find(key);
    if (it == index.end() || !(*it->second == now)) return nullptr;
    return previous_resource(name);
  };

  XdsResources out;
  for (const auto& w : config.workloads) {
    if (const XdsResource* r = reuse(w.uid, old_workloads, std::string_view(w.uid), w)) {
      out.addresses.insert_or_assign(out.addresses.end(), w.uid, *r);
    } else {
      out.addresses.insert_or_assign(out.addresses.end(), w.uid, make_resource(kAddressTypeUrl, serialize_workload(w)));
    }
  }
  for (const auto& s : config.services) {
    std::string key = s.key();
    if (const XdsResource* r = reuse(key, old_services, key, s)) {
      out.addresses.insert_or_assign(out.addresses.end(), std::move(key), *r);
    } else {
      out.addresses.insert_or_assign(out.addresses.end(), std::move(key),
                                     make_resource(kAddressTypeUrl, serialize_service(s)));
    }
  }
  for (const auto& p : config.policies) {  // few, and their model has no equality: always serialized
    out.authorizations.insert_or_assign(p.key(), make_resource(kAuthorizationTypeUrl, serialize_authorization(p)));
  }
  return out;
}

XdsResources to_xds_resources(const ztunnel::LocalConfig& config) {
  XdsResources out;
  for (const auto& w : config.workloads) {
    out.addresses.insert_or_assign(w.uid, make_resource(kAddressTypeUrl, serialize_workload(w)));
  }
  for (const auto& s : config.services) {
    out.addresses.insert_or_assign(s.key(), make_resource(kAddressTypeUrl, serialize_service(s)));
  }
  for (const auto& p : config.policies) {
    out.authorizations.insert_or_assign(p.key(), make_resource(kAuthorizationTypeUrl, serialize_authorization(p)));
  }
  return out;
}

}  // namespace ztunnel
