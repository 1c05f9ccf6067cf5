#include "common/model/local_config_writer.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

namespace ztunnel {
namespace {

using ztunnel::AuthzMatch;
using ztunnel::StringMatch;

// Free-form strings are always double-quoted: a namespace called "true" or "123" or a hostname
// starting with '*' must stay a string for any YAML reader, not just ours.
void quoted(YAML::Emitter& e, const std::string& s) {
  e << YAML::DoubleQuoted << s;
}

void key_str(YAML::Emitter& e, const char* key, const std::string& value) {
  e << YAML::Key << key << YAML::Value;
  quoted(e, value);
}

void empty_seq(YAML::Emitter& e) {
  e << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
}

void port_map(YAML::Emitter& e, const ztunnel::PortMap& ports) {
  if (ports.empty()) {
    e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    return;
  }
  e << YAML::BeginMap;
  for (const auto& [from, to] : ports) e << YAML::Key << from << YAML::Value << to;
  e << YAML::EndMap;
}

void gateway(YAML::Emitter& e, const char* key, const ztunnel::GatewayAddress& gw) {
  e << YAML::Key << key << YAML::Value << YAML::BeginMap;
  key_str(e, "destination", gw.to_string());
  e << YAML::Key << "hboneMtlsPort" << YAML::Value << gw.hbone_mtls_port;
  e << YAML::EndMap;
}

void workload(YAML::Emitter& e, const ztunnel::Workload& w) {
  e << YAML::BeginMap;
  key_str(e, "uid", w.uid);
  key_str(e, "name", w.name);
  key_str(e, "namespace", w.ns);
  key_str(e, "serviceAccount", w.service_account);
  key_str(e, "trustDomain", w.trust_domain);
  e << YAML::Key << "workloadIps" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& ip : w.addresses) quoted(e, ip.to_string());
  e << YAML::EndSeq;
  if (!w.hostname.empty()) key_str(e, "hostname", w.hostname);
  e << YAML::Key << "protocol" << YAML::Value << std::string(to_string(w.tunnel_protocol));
  e << YAML::Key << "networkMode" << YAML::Value << std::string(to_string(w.network_mode));
  key_str(e, "node", w.node);
  key_str(e, "network", w.network);
  key_str(e, "clusterId", w.cluster_id);
  key_str(e, "canonicalName", w.canonical_name);
  key_str(e, "canonicalRevision", w.canonical_revision);
  key_str(e, "workloadName", w.workload_name);
  key_str(e, "workloadType", w.workload_type);
  e << YAML::Key << "status" << YAML::Value << std::string(to_string(w.status));
  if (!w.locality.empty()) {
    e << YAML::Key << "locality" << YAML::Value << YAML::BeginMap;
    key_str(e, "region", w.locality.region);
    key_str(e, "zone", w.locality.zone);
    key_str(e, "subzone", w.locality.subzone);
    e << YAML::EndMap;
  }
  e << YAML::Key << "capacity" << YAML::Value << w.capacity;
  if (w.native_tunnel) e << YAML::Key << "nativeTunnel" << YAML::Value << true;
  if (w.waypoint) gateway(e, "waypoint", *w.waypoint);
  if (w.network_gateway) gateway(e, "networkGateway", *w.network_gateway);
  if (w.application_tunnel) {
    e << YAML::Key << "applicationTunnel" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "protocol" << YAML::Value << std::string(to_string(w.application_tunnel->protocol));
    e << YAML::Key << "port" << YAML::Value << w.application_tunnel->port;
    e << YAML::EndMap;
  }
  e << YAML::Key << "authorizationPolicies" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& p : w.authorization_policies) quoted(e, p);
  e << YAML::EndSeq;
  e << YAML::Key << "services" << YAML::Value;
  if (w.services.empty()) {
    e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
  } else {
    e << YAML::BeginMap;
    for (const auto& [key, ports] : w.services) {
      e << YAML::Key;
      quoted(e, key);
      e << YAML::Value;
      port_map(e, ports);
    }
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
}

void service(YAML::Emitter& e, const ztunnel::Service& s) {
  e << YAML::BeginMap;
  key_str(e, "name", s.name);
  key_str(e, "namespace", s.ns);
  key_str(e, "hostname", s.hostname);
  e << YAML::Key << "vips" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& v : s.vips) quoted(e, v.to_string());
  e << YAML::EndSeq;
  if (!s.cidr_vips.empty()) {
    e << YAML::Key << "cidrVips" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& c : s.cidr_vips) quoted(e, c.to_string());
    e << YAML::EndSeq;
  }
  e << YAML::Key << "ports" << YAML::Value;
  port_map(e, s.ports);
  if (!s.subject_alt_names.empty()) {
    e << YAML::Key << "subjectAltNames" << YAML::Value << YAML::BeginSeq;
    for (const auto& san : s.subject_alt_names) quoted(e, san);
    e << YAML::EndSeq;
  }
  if (s.waypoint) gateway(e, "waypoint", *s.waypoint);
  if (s.load_balancer) {
    e << YAML::Key << "loadBalancer" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "routingPreferences" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (auto p : s.load_balancer->routing_preferences) e << std::string(to_string(p));
    e << YAML::EndSeq;
    e << YAML::Key << "mode" << YAML::Value << std::string(to_string(s.load_balancer->mode));
    e << YAML::Key << "healthPolicy" << YAML::Value << std::string(to_string(s.load_balancer->health_policy));
    e << YAML::EndMap;
  }
  if (s.ip_families) {
    e << YAML::Key << "ipFamilies" << YAML::Value << std::string(to_string(*s.ip_families));
  }
  if (s.canonical) e << YAML::Key << "canonical" << YAML::Value << true;
  if (!s.endpoints.empty()) {
    e << YAML::Key << "endpoints" << YAML::Value << YAML::BeginMap;
    for (const auto& ep : s.endpoints) {
      e << YAML::Key;
      quoted(e, ep.workload_uid);
      e << YAML::Value << YAML::BeginMap;
      key_str(e, "workloadUid", ep.workload_uid);
      e << YAML::Key << "port" << YAML::Value;
      port_map(e, ep.port);
      e << YAML::Key << "status" << YAML::Value << std::string(to_string(ep.status));
      e << YAML::EndMap;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
}

void string_matches(YAML::Emitter& e, const char* key, const std::vector<StringMatch>& v) {
  if (v.empty()) return;
  e << YAML::Key << key << YAML::Value << YAML::BeginSeq;
  for (const auto& m : v) {
    e << YAML::Flow << YAML::BeginMap;
    switch (m.kind) {
      case StringMatch::Kind::Exact:
        key_str(e, "Exact", m.value);
        break;
      case StringMatch::Kind::Prefix:
        key_str(e, "Prefix", m.value);
        break;
      case StringMatch::Kind::Suffix:
        key_str(e, "Suffix", m.value);
        break;
      case StringMatch::Kind::Presence:
        e << YAML::Key << "Presence" << YAML::Value;
        empty_seq(e);
        break;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
}

void cidrs(YAML::Emitter& e, const char* key, const std::vector<ztunnel::Cidr>& v) {
  if (v.empty()) return;
  e << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& c : v) quoted(e, c.to_string());
  e << YAML::EndSeq;
}

void ports(YAML::Emitter& e, const char* key, const std::vector<uint16_t>& v) {
  if (v.empty()) return;
  e << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (auto p : v) e << p;
  e << YAML::EndSeq;
}

void service_accounts(YAML::Emitter& e, const char* key, const std::vector<ztunnel::ServiceAccountMatch>& v) {
  if (v.empty()) return;
  e << YAML::Key << key << YAML::Value << YAML::BeginSeq;
  for (const auto& sa : v) {
    e << YAML::Flow << YAML::BeginMap;
    key_str(e, "namespace", sa.ns);
    key_str(e, "serviceAccount", sa.service_account);
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
}

void match(YAML::Emitter& e, const AuthzMatch& m) {
  if (m.empty()) {
    e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    return;
  }
  e << YAML::BeginMap;
  string_matches(e, "namespaces", m.namespaces);
  string_matches(e, "notNamespaces", m.not_namespaces);
  service_accounts(e, "serviceAccounts", m.service_accounts);
  service_accounts(e, "notServiceAccounts", m.not_service_accounts);
  string_matches(e, "principals", m.principals);
  string_matches(e, "notPrincipals", m.not_principals);
  cidrs(e, "sourceIps", m.source_ips);
  cidrs(e, "notSourceIps", m.not_source_ips);
  cidrs(e, "destinationIps", m.destination_ips);
  cidrs(e, "notDestinationIps", m.not_destination_ips);
  ports(e, "destinationPorts", m.destination_ports);
  ports(e, "notDestinationPorts", m.not_destination_ports);
  e << YAML::EndMap;
}

void policy(YAML::Emitter& e, const ztunnel::Authorization& a) {
  e << YAML::BeginMap;
  key_str(e, "name", a.name);
  key_str(e, "namespace", a.ns);
  e << YAML::Key << "scope" << YAML::Value << std::string(to_string(a.scope));
  e << YAML::Key << "action" << YAML::Value << std::string(to_string(a.action));
  if (a.dry_run) e << YAML::Key << "dryRun" << YAML::Value << true;
  // rules (OR) -> clauses (AND) -> matches (OR).
  e << YAML::Key << "rules" << YAML::Value;
  if (a.rules.empty()) {
    empty_seq(e);
  } else {
    e << YAML::BeginSeq;
    for (const auto& rule : a.rules) {
      if (rule.empty()) {
        empty_seq(e);  // no clauses: matches every connection
        continue;
      }
      e << YAML::BeginSeq;
      for (const auto& clause : rule) {
        if (clause.empty()) {
          empty_seq(e);
          continue;
        }
        e << YAML::BeginSeq;
        for (const auto& m : clause) match(e, m);
        e << YAML::EndSeq;
      }
      e << YAML::EndSeq;
    }
    e << YAML::EndSeq;
  }
  e << YAML::EndMap;
}

template <typename T, typename F>
void section(YAML::Emitter& e, const char* key, const std::vector<T>& items, F&& one) {
  e << YAML::Key << key << YAML::Value;
  if (items.empty()) {
    empty_seq(e);
    return;
  }
  e << YAML::BeginSeq;
  for (const auto& item : items) one(e, item);
  e << YAML::EndSeq;
}

}  // namespace

std::string to_local_xds_yaml(const ztunnel::LocalConfig& config, std::string_view header) {
  YAML::Emitter e;
  e.SetIndent(2);
  e << YAML::BeginMap;
  section(e, "workloads", config.workloads, workload);
  section(e, "services", config.services, service);
  section(e, "policies", config.policies, policy);
  e << YAML::EndMap;

  std::string out;
  size_t pos = 0;
  while (pos < header.size()) {
    const size_t eol = header.find('\n', pos);
    const size_t end = eol == std::string_view::npos ? header.size() : eol;
    out.append("# ").append(header.substr(pos, end - pos)).append("\n");
    pos = end + 1;
  }
  out.append(e.c_str());
  out.append("\n");
  return out;
}

}  // namespace ztunnel
