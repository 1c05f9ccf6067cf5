// Snapshot::to_json: upstream /config_dump's workloads, services and policies, camelCase.
#include "common/state/snapshot.h"

#include <nlohmann/json.hpp>

namespace ztunnel {

namespace {

using nlohmann::json;

json port_map_json(const PortMap& m) {
  json o = json::object();
  for (const auto& [from, to] : m) o[std::to_string(from)] = to;
  return o;
}

json gateway_json(const GatewayAddress& g) {
  return json{{"destination", g.to_string()}, {"hboneMtlsPort", g.hbone_mtls_port}};
}

json workload_json(const Workload& w) {
  json j;
  json ips = json::array();
  for (const auto& ip : w.addresses) ips.push_back(ip.to_string());
  j["workloadIps"] = std::move(ips);
  if (w.waypoint) j["waypoint"] = gateway_json(*w.waypoint);
  if (w.network_gateway) j["networkGateway"] = gateway_json(*w.network_gateway);
  j["protocol"] = to_string(w.tunnel_protocol);
  j["networkMode"] = to_string(w.network_mode);
  j["uid"] = w.uid;
  j["name"] = w.name;
  j["namespace"] = w.ns;
  j["trustDomain"] = w.trust_domain;
  j["serviceAccount"] = w.service_account;
  auto opt = [&](const char* key, const std::string& v) {
    if (!v.empty()) j[key] = v;
  };
  opt("network", w.network);
  opt("workloadName", w.workload_name);
  opt("workloadType", w.workload_type);
  opt("canonicalName", w.canonical_name);
  opt("canonicalRevision", w.canonical_revision);
  opt("hostname", w.hostname);
  opt("node", w.node);
  if (w.native_tunnel) j["nativeTunnel"] = true;
  if (w.application_tunnel) {
    json at{{"protocol", to_string(w.application_tunnel->protocol)}};
    if (w.application_tunnel->port) at["port"] = w.application_tunnel->port;
    j["applicationTunnel"] = std::move(at);
  }
  if (!w.authorization_policies.empty()) j["authorizationPolicies"] = w.authorization_policies;
  j["status"] = to_string(w.status);
  j["clusterId"] = w.cluster_id;
  if (!w.locality.empty()) {
    j["locality"] = json{{"region", w.locality.region}, {"zone", w.locality.zone}, {"subzone", w.locality.subzone}};
  }
  if (!w.services.empty()) {
    json svcs = json::array();
    for (const auto& [key, ports] : w.services) svcs.push_back(key);
    j["services"] = std::move(svcs);
  }
  j["capacity"] = w.capacity;
  return j;
}

json string_match_json(const StringMatch& m) {
  switch (m.kind) {
    case StringMatch::Kind::Exact:
      return json{{"Exact", m.value}};
    case StringMatch::Kind::Prefix:
      return json{{"Prefix", m.value}};
    case StringMatch::Kind::Suffix:
      return json{{"Suffix", m.value}};
    case StringMatch::Kind::Presence:
      return json{{"Presence", json::array()}};
  }
  return json::object();
}

json match_json(const AuthzMatch& m) {
  json j = json::object();
  auto strings = [&](const char* key, const std::vector<StringMatch>& v) {
    if (v.empty()) return;
    json a = json::array();
    for (const auto& s : v) a.push_back(string_match_json(s));
    j[key] = std::move(a);
  };
  auto cidrs = [&](const char* key, const std::vector<Cidr>& v) {
    if (v.empty()) return;
    json a = json::array();
    for (const auto& c : v) a.push_back(c.to_string());
    j[key] = std::move(a);
  };
  auto ports = [&](const char* key, const std::vector<uint16_t>& v) {
    if (!v.empty()) j[key] = v;
  };
  auto sas = [&](const char* key, const std::vector<ServiceAccountMatch>& v) {
    if (v.empty()) return;
    json a = json::array();
    for (const auto& s : v) a.push_back(json{{"namespace", s.ns}, {"serviceAccount", s.service_account}});
    j[key] = std::move(a);
  };
  strings("namespaces", m.namespaces);
  strings("notNamespaces", m.not_namespaces);
  sas("serviceAccounts", m.service_accounts);
  sas("notServiceAccounts", m.not_service_accounts);
  strings("principals", m.principals);
  strings("notPrincipals", m.not_principals);
  cidrs("sourceIps", m.source_ips);
  cidrs("notSourceIps", m.not_source_ips);
  cidrs("destinationIps", m.destination_ips);
  cidrs("notDestinationIps", m.not_destination_ips);
  ports("destinationPorts", m.destination_ports);
  ports("notDestinationPorts", m.not_destination_ports);
  return j;
}

json policy_json(const Authorization& p) {
  json rules = json::array();
  for (const auto& rule : p.rules) {
    json clauses = json::array();
    for (const auto& clause : rule) {
      json matches = json::array();
      for (const auto& m : clause) matches.push_back(match_json(m));
      clauses.push_back(std::move(matches));
    }
    rules.push_back(std::move(clauses));
  }
  return json{{"name", p.name},
              {"namespace", p.ns},
              {"scope", to_string(p.scope)},
              {"action", to_string(p.action)},
              {"rules", std::move(rules)},
              {"dryRun", p.dry_run}};
}

}  // namespace

nlohmann::json Snapshot::to_json() const {
  json ws = json::array();
  for (const auto& w : workloads_) ws.push_back(workload_json(*w));

  json ss = json::array();
  for (size_t i = 0; i < services_.size(); ++i) {
    const Service& s = *services_[i];
    json j;
    j["name"] = s.name;
    j["namespace"] = s.ns;
    j["hostname"] = s.hostname;
    json vips = json::array();
    for (const auto& v : s.vips) vips.push_back(v.to_string());
    j["vips"] = std::move(vips);
    if (!s.cidr_vips.empty()) {  // upstream skips it when empty
      json cidrs = json::array();
      for (const auto& c : s.cidr_vips) cidrs.push_back(c.to_string());
      j["cidrVips"] = std::move(cidrs);
    }
    j["ports"] = port_map_json(s.ports);
    json eps = json::object();
    for (const auto& e : *endpoints_[i]) {
      eps[e.workload->uid] =
          json{{"workloadUid", e.workload->uid}, {"port", port_map_json(*e.port)}, {"status", to_string(e.status)}};
    }
    j["endpoints"] = std::move(eps);
    j["subjectAltNames"] = s.subject_alt_names;
    if (s.waypoint) j["waypoint"] = gateway_json(*s.waypoint);
    if (s.load_balancer) {
      json prefs = json::array();
      for (auto p : s.load_balancer->routing_preferences) prefs.push_back(to_string(p));
      j["loadBalancer"] = json{{"routingPreferences", std::move(prefs)},
                               {"mode", to_string(s.load_balancer->mode)},
                               {"healthPolicy", to_string(s.load_balancer->health_policy)}};
    }
    if (s.ip_families) j["ipFamilies"] = to_string(*s.ip_families);
    j["canonical"] = s.canonical;
    ss.push_back(std::move(j));
  }

  json ps = json::array();
  for (const auto& p : policies_) ps.push_back(policy_json(*p));

  return json{{"workloads", std::move(ws)}, {"services", std::move(ss)}, {"policies", std::move(ps)}};
}

}  // namespace ztunnel
