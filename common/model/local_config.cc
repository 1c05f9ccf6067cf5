#include "common/model/local_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>

#include "common/yaml_path.h"

namespace ztunnel {
namespace {

// Internal only: thrown deep inside the recursive descent and turned into a Result at the
// entry point, which keeps every field reader a one-liner. Never crosses the API.
struct FieldError {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, std::string_view what) {
  throw FieldError{(path.empty() ? std::string("<root>") : path) + ": " + std::string(what)};
}

// Bounds the work done per document: YAML aliases let a tiny file reference the same subtree
// exponentially often, and we walk every reference.
class Budget {
 public:
  void visit(const std::string& path) {
    if (++visited_ > kMaxNodes) fail(path, "document too large (too many nodes)");
  }

 private:
  static constexpr size_t kMaxNodes = 1'000'000;
  size_t visited_ = 0;
};

using common::yaml::index;
using common::yaml::join;
using common::yaml::type_name;
using common::yaml::valid_utf8;

class Reader {
 public:
  explicit Reader(Budget& budget) : budget_(budget) {}

  // Ensures `n` is a map whose keys are all scalars from `allowed`.
  void expect_map(const YAML::Node& n, const std::string& path,
                  std::initializer_list<std::string_view> allowed) {
    budget_.visit(path);
    if (!n.IsMap()) fail(path, "expected a map, got " + std::string(type_name(n)));
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) fail(path, "map keys must be strings");
      const std::string& key = kv.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        fail(join(path, key), "unknown field");
      }
    }
  }

  void expect_seq(const YAML::Node& n, const std::string& path) {
    budget_.visit(path);
    if (!n.IsSequence()) fail(path, "expected a list, got " + std::string(type_name(n)));
  }

  static bool present(const YAML::Node& map, std::string_view key) {
    const YAML::Node v = map[std::string(key)];
    return v.IsDefined() && !v.IsNull();
  }

  std::string str(const YAML::Node& n, const std::string& path) {
    budget_.visit(path);
    if (!n.IsScalar()) fail(path, "expected a string, got " + std::string(type_name(n)));
    if (!valid_utf8(n.Scalar())) fail(path, "invalid UTF-8");
    return n.Scalar();
  }

  // Optional string field; absent or null leaves `out` untouched.
  void opt_str(const YAML::Node& map, const std::string& path, std::string_view key,
               std::string& out) {
    if (present(map, key)) out = str(map[std::string(key)], join(path, key));
  }

  std::string req_str(const YAML::Node& map, const std::string& path, std::string_view key) {
    if (!present(map, key)) fail(join(path, key), "missing required field");
    return str(map[std::string(key)], join(path, key));
  }

  template <typename T>
  T uint(const YAML::Node& n, const std::string& path, T max = std::numeric_limits<T>::max()) {
    const std::string s = str(n, path);
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max) {
      fail(path, "expected an integer in [0, " + std::to_string(max) + "], got '" + s + "'");
    }
    return static_cast<T>(v);
  }

  uint16_t port(const YAML::Node& n, const std::string& path) { return uint<uint16_t>(n, path); }

  bool boolean(const YAML::Node& n, const std::string& path) {
    std::string s = str(n, path);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "true") return true;
    if (s == "false") return false;
    fail(path, "expected true or false, got '" + n.Scalar() + "'");
  }

  template <typename E>
  E enumeration(const YAML::Node& n, const std::string& path,
                std::initializer_list<std::pair<std::string_view, E>> values) {
    const std::string s = str(n, path);
    std::string names;
    for (const auto& [name, v] : values) {
      if (s == name) return v;
      if (!names.empty()) names += ", ";
      names += name;
    }
    fail(path, "unknown value '" + s + "' (expected one of: " + names + ")");
  }

  std::vector<std::string> str_list(const YAML::Node& n, const std::string& path) {
    expect_seq(n, path);
    std::vector<std::string> out;
    for (size_t i = 0; i < n.size(); ++i) out.push_back(str(n[i], index(path, i)));
    return out;
  }

  IpAddr ip(const YAML::Node& n, const std::string& path) {
    const std::string s = str(n, path);
    auto v = parse_ip(s);
    if (!v) fail(path, "invalid IP address '" + s + "'");
    return *v;
  }

  Cidr cidr(const YAML::Node& n, const std::string& path) {
    const std::string s = str(n, path);
    auto v = Cidr::parse(s);
    if (!v) fail(path, "invalid CIDR '" + s + "'");
    return *v;
  }

  // {80: 8080, 443: 8443}
  PortMap port_map(const YAML::Node& n, const std::string& path) {
    budget_.visit(path);
    if (!n.IsMap()) fail(path, "expected a map of port: port, got " + std::string(type_name(n)));
    PortMap out;
    for (const auto& kv : n) {
      const std::string kpath = path + "[" + (kv.first.IsScalar() ? kv.first.Scalar() : "?") + "]";
      const uint16_t from = port(kv.first, kpath);
      if (out.find(from)) fail(kpath, "duplicate port");
      out.set(from, port(kv.second, kpath));
    }
    return out;
  }

  GatewayAddress gateway(const YAML::Node& n, const std::string& path) {
    expect_map(n, path, {"destination", "hboneMtlsPort"});
    GatewayAddress gw;
    const std::string dest = req_str(n, path, "destination");
    // Upstream's untagged enum: "network/ip" when the part after '/' is an IP, otherwise
    // "namespace/hostname".
    if (auto na = NetworkAddress::parse(dest)) {
      gw.destination = *na;
    } else if (auto nh = NamespacedHostname::parse(dest); nh && !nh->hostname.empty()) {
      gw.destination = *nh;
    } else {
      fail(join(path, "destination"),
           "expected 'network/ip' or 'namespace/hostname', got '" + dest + "'");
    }
    if (present(n, "hboneMtlsPort")) {
      gw.hbone_mtls_port = port(n["hboneMtlsPort"], join(path, "hboneMtlsPort"));
    }
    return gw;
  }

  Workload workload(const YAML::Node& n, const std::string& path) {
    expect_map(n, path,
               {"uid", "name", "namespace", "serviceAccount", "trustDomain", "workloadIps",
                "protocol", "node", "network", "waypoint", "networkGateway", "networkMode",
                "workloadName", "workloadType", "canonicalName", "canonicalRevision", "hostname",
                "nativeTunnel", "applicationTunnel", "authorizationPolicies", "status",
                "clusterId", "locality", "capacity", "services"});
    Workload w;
    w.ns = req_str(n, path, "namespace");
    opt_str(n, path, "uid", w.uid);
    opt_str(n, path, "name", w.name);
    opt_str(n, path, "serviceAccount", w.service_account);
    opt_str(n, path, "trustDomain", w.trust_domain);
    opt_str(n, path, "node", w.node);
    opt_str(n, path, "network", w.network);
    opt_str(n, path, "workloadName", w.workload_name);
    opt_str(n, path, "workloadType", w.workload_type);
    opt_str(n, path, "canonicalName", w.canonical_name);
    opt_str(n, path, "canonicalRevision", w.canonical_revision);
    opt_str(n, path, "hostname", w.hostname);
    opt_str(n, path, "clusterId", w.cluster_id);
    // Same defaulting as upstream's xDS conversion: an empty value is never an identity part.
    if (w.service_account.empty()) w.service_account = kDefaultServiceAccount;
    if (w.trust_domain.empty()) w.trust_domain = kDefaultTrustDomain;
    if (w.cluster_id.empty()) w.cluster_id = "Kubernetes";
    if (w.uid.empty()) {
      // Without a uid two workloads would collide in the uid index; synthesise the form
      // istiod uses for pods.
      w.uid = w.cluster_id + "//Pod/" + w.ns + "/" + w.name;
    }

    if (present(n, "workloadIps")) {
      const std::string p = join(path, "workloadIps");
      const YAML::Node ips = n["workloadIps"];
      expect_seq(ips, p);
      for (size_t i = 0; i < ips.size(); ++i) w.addresses.push_back(ip(ips[i], index(p, i)));
    }
    if (present(n, "protocol")) {
      w.tunnel_protocol = enumeration<TunnelProtocol>(
          n["protocol"], join(path, "protocol"),
          {{"TCP", TunnelProtocol::None}, {"HBONE", TunnelProtocol::Hbone}});
    }
    if (present(n, "networkMode")) {
      w.network_mode = enumeration<NetworkMode>(
          n["networkMode"], join(path, "networkMode"),
          {{"Standard", NetworkMode::Standard}, {"HostNetwork", NetworkMode::HostNetwork}});
    }
    if (present(n, "status")) {
      w.status = enumeration<HealthStatus>(
          n["status"], join(path, "status"),
          {{"Healthy", HealthStatus::Healthy}, {"Unhealthy", HealthStatus::Unhealthy}});
    }
    if (present(n, "waypoint")) w.waypoint = gateway(n["waypoint"], join(path, "waypoint"));
    if (present(n, "networkGateway")) {
      w.network_gateway = gateway(n["networkGateway"], join(path, "networkGateway"));
    }
    if (present(n, "nativeTunnel")) {
      w.native_tunnel = boolean(n["nativeTunnel"], join(path, "nativeTunnel"));
    }
    if (present(n, "applicationTunnel")) {
      const std::string p = join(path, "applicationTunnel");
      const YAML::Node at = n["applicationTunnel"];
      expect_map(at, p, {"protocol", "port"});
      ApplicationTunnel tunnel;
      if (present(at, "protocol")) {
        tunnel.protocol = enumeration<ApplicationTunnel::Protocol>(
            at["protocol"], join(p, "protocol"),
            {{"NONE", ApplicationTunnel::Protocol::None},
             {"PROXY", ApplicationTunnel::Protocol::Proxy}});
      }
      if (present(at, "port")) tunnel.port = port(at["port"], join(p, "port"));
      w.application_tunnel = tunnel;
    }
    if (present(n, "authorizationPolicies")) {
      w.authorization_policies =
          str_list(n["authorizationPolicies"], join(path, "authorizationPolicies"));
    }
    if (present(n, "locality")) {
      const std::string p = join(path, "locality");
      const YAML::Node loc = n["locality"];
      expect_map(loc, p, {"region", "zone", "subzone"});
      opt_str(loc, p, "region", w.locality.region);
      opt_str(loc, p, "zone", w.locality.zone);
      opt_str(loc, p, "subzone", w.locality.subzone);
    }
    if (present(n, "capacity")) w.capacity = uint<uint32_t>(n["capacity"], join(path, "capacity"));
    if (present(n, "services")) {
      const std::string p = join(path, "services");
      const YAML::Node svcs = n["services"];
      budget_.visit(p);
      if (!svcs.IsMap()) fail(p, "expected a map of \"namespace/hostname\": {port: port}");
      for (const auto& kv : svcs) {
        const std::string key = str(kv.first, p);
        const std::string kp = p + "[\"" + key + "\"]";
        auto nh = NamespacedHostname::parse(key);
        if (!nh || nh->ns.empty() || nh->hostname.empty()) {
          fail(kp, "service key must be \"namespace/hostname\"");
        }
        w.services[key] = kv.second.IsNull() ? PortMap{} : port_map(kv.second, kp);
      }
    }
    return w;
  }

  Service service(const YAML::Node& n, const std::string& path) {
    expect_map(n, path,
               {"name", "namespace", "hostname", "vips", "cidrVips", "ports", "endpoints", "subjectAltNames",
                "waypoint", "loadBalancer", "ipFamilies", "canonical"});
    Service s;
    s.name = req_str(n, path, "name");
    s.ns = req_str(n, path, "namespace");
    s.hostname = req_str(n, path, "hostname");
    if (s.hostname.empty()) fail(join(path, "hostname"), "must not be empty");
    if (present(n, "vips")) {
      const std::string p = join(path, "vips");
      const YAML::Node vips = n["vips"];
      expect_seq(vips, p);
      for (size_t i = 0; i < vips.size(); ++i) {
        const std::string text = str(vips[i], index(p, i));
        auto na = NetworkAddress::parse(text);
        if (!na) fail(index(p, i), "expected 'network/ip' (e.g. '/10.0.0.1'), got '" + text + "'");
        s.vips.push_back(std::move(*na));
      }
    }
    if (present(n, "cidrVips")) {
      const std::string p = join(path, "cidrVips");
      const YAML::Node cidrs = n["cidrVips"];
      expect_seq(cidrs, p);
      for (size_t i = 0; i < cidrs.size(); ++i) {
        const std::string text = str(cidrs[i], index(p, i));
        auto nc = NetworkCidr::parse(text);
        if (!nc) fail(index(p, i), "expected 'network/ip/length' (e.g. '/10.0.0.0/24'), got '" + text + "'");
        s.cidr_vips.push_back(std::move(*nc));
      }
    }
    if (present(n, "ports")) s.ports = port_map(n["ports"], join(path, "ports"));
    if (present(n, "subjectAltNames")) {
      s.subject_alt_names = str_list(n["subjectAltNames"], join(path, "subjectAltNames"));
    }
    if (present(n, "waypoint")) s.waypoint = gateway(n["waypoint"], join(path, "waypoint"));
    if (present(n, "canonical")) s.canonical = boolean(n["canonical"], join(path, "canonical"));
    if (present(n, "ipFamilies")) {
      s.ip_families = enumeration<IpFamily>(
          n["ipFamilies"], join(path, "ipFamilies"),
          {{"Dual", IpFamily::Dual}, {"IPv4", IpFamily::IPv4}, {"IPv6", IpFamily::IPv6}});
    }
    if (present(n, "loadBalancer")) {
      const std::string p = join(path, "loadBalancer");
      const YAML::Node lbn = n["loadBalancer"];
      expect_map(lbn, p, {"routingPreferences", "mode", "healthPolicy"});
      LoadBalancer lb;
      if (present(lbn, "routingPreferences")) {
        const std::string rp = join(p, "routingPreferences");
        const YAML::Node prefs = lbn["routingPreferences"];
        expect_seq(prefs, rp);
        for (size_t i = 0; i < prefs.size(); ++i) {
          lb.routing_preferences.push_back(enumeration<LoadBalancerScope>(
              prefs[i], index(rp, i),
              {{"Region", LoadBalancerScope::Region},
               {"Zone", LoadBalancerScope::Zone},
               {"Subzone", LoadBalancerScope::Subzone},
               {"Node", LoadBalancerScope::Node},
               {"Cluster", LoadBalancerScope::Cluster},
               {"Network", LoadBalancerScope::Network}}));
        }
      }
      if (present(lbn, "mode")) {
        lb.mode = enumeration<LoadBalancerMode>(lbn["mode"], join(p, "mode"),
                                                {{"Standard", LoadBalancerMode::Standard},
                                                 {"Strict", LoadBalancerMode::Strict},
                                                 {"Failover", LoadBalancerMode::Failover},
                                                 {"Passthrough", LoadBalancerMode::Passthrough}});
      }
      if (present(lbn, "healthPolicy")) {
        lb.health_policy = enumeration<LoadBalancerHealthPolicy>(
            lbn["healthPolicy"], join(p, "healthPolicy"),
            {{"OnlyHealthy", LoadBalancerHealthPolicy::OnlyHealthy},
             {"AllowAll", LoadBalancerHealthPolicy::AllowAll}});
      }
      s.load_balancer = std::move(lb);
    }
    if (present(n, "endpoints")) {
      // Upstream's EndpointSet: workload uid -> {workloadUid, port, status}.
      const std::string p = join(path, "endpoints");
      const YAML::Node eps = n["endpoints"];
      budget_.visit(p);
      if (!eps.IsMap()) fail(p, "expected a map of workload uid -> endpoint");
      for (const auto& kv : eps) {
        const std::string uid = str(kv.first, p);
        const std::string ep_path = p + "[\"" + uid + "\"]";
        expect_map(kv.second, ep_path, {"workloadUid", "port", "status"});
        Endpoint ep;
        ep.workload_uid = uid;
        opt_str(kv.second, ep_path, "workloadUid", ep.workload_uid);
        if (present(kv.second, "port")) {
          ep.port = port_map(kv.second["port"], join(ep_path, "port"));
        }
        if (present(kv.second, "status")) {
          ep.status = enumeration<HealthStatus>(
              kv.second["status"], join(ep_path, "status"),
              {{"Healthy", HealthStatus::Healthy}, {"Unhealthy", HealthStatus::Unhealthy}});
        }
        s.endpoints.push_back(std::move(ep));
      }
    }
    return s;
  }

  // {Exact: "x"} | {Prefix: "x"} | {Suffix: "x"} | {Presence: []} (serde's externally tagged
  // enum; Presence is an empty tuple variant, so [] — we also accept {} and null).
  StringMatch string_match(const YAML::Node& n, const std::string& path) {
    expect_map(n, path, {"Exact", "Prefix", "Suffix", "Presence"});
    if (n.size() != 1) fail(path, "expected exactly one of Exact, Prefix, Suffix, Presence");
    const auto kv = *n.begin();
    const std::string kind = kv.first.Scalar();
    const std::string p = join(path, kind);
    StringMatch m;
    if (kind == "Presence") {
      const YAML::Node v = kv.second;
      if (!(v.IsNull() || ((v.IsSequence() || v.IsMap()) && v.size() == 0))) {
        fail(p, "Presence takes no value (use [])");
      }
      m.kind = StringMatch::Kind::Presence;
      return m;
    }
    m.value = str(kv.second, p);
    m.kind = kind == "Exact"    ? StringMatch::Kind::Exact
             : kind == "Prefix" ? StringMatch::Kind::Prefix
                                : StringMatch::Kind::Suffix;
    return m;
  }

  template <typename T, typename F>
  void list_of(const YAML::Node& map, const std::string& path, std::string_view key,
               std::vector<T>& out, F&& parse_one) {
    if (!present(map, key)) return;
    const std::string p = join(path, key);
    const YAML::Node seq = map[std::string(key)];
    expect_seq(seq, p);
    for (size_t i = 0; i < seq.size(); ++i) out.push_back(parse_one(seq[i], index(p, i)));
  }

  AuthzMatch match(const YAML::Node& n, const std::string& path) {
    expect_map(n, path,
               {"namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
                "principals", "notPrincipals", "sourceIps", "notSourceIps", "destinationIps",
                "notDestinationIps", "destinationPorts", "notDestinationPorts"});
    AuthzMatch m;
    auto sm = [this](const YAML::Node& v, const std::string& p) { return string_match(v, p); };
    auto cidr_f = [this](const YAML::Node& v, const std::string& p) { return cidr(v, p); };
    auto port_f = [this](const YAML::Node& v, const std::string& p) { return port(v, p); };
    auto sa_f = [this](const YAML::Node& v, const std::string& p) {
      expect_map(v, p, {"namespace", "serviceAccount"});
      return ServiceAccountMatch{req_str(v, p, "namespace"), req_str(v, p, "serviceAccount")};
    };
    list_of(n, path, "namespaces", m.namespaces, sm);
    list_of(n, path, "notNamespaces", m.not_namespaces, sm);
    list_of(n, path, "principals", m.principals, sm);
    list_of(n, path, "notPrincipals", m.not_principals, sm);
    list_of(n, path, "serviceAccounts", m.service_accounts, sa_f);
    list_of(n, path, "notServiceAccounts", m.not_service_accounts, sa_f);
    list_of(n, path, "sourceIps", m.source_ips, cidr_f);
    list_of(n, path, "notSourceIps", m.not_source_ips, cidr_f);
    list_of(n, path, "destinationIps", m.destination_ips, cidr_f);
    list_of(n, path, "notDestinationIps", m.not_destination_ips, cidr_f);
    list_of(n, path, "destinationPorts", m.destination_ports, port_f);
    list_of(n, path, "notDestinationPorts", m.not_destination_ports, port_f);
    return m;
  }

  Authorization policy(const YAML::Node& n, const std::string& path) {
    expect_map(n, path, {"name", "namespace", "scope", "action", "rules", "dryRun"});
    Authorization a;
    a.name = req_str(n, path, "name");
    opt_str(n, path, "namespace", a.ns);
    if (!present(n, "scope")) fail(join(path, "scope"), "missing required field");
    a.scope = enumeration<AuthzScope>(n["scope"], join(path, "scope"),
                                      {{"Global", AuthzScope::Global},
                                       {"Namespace", AuthzScope::Namespace},
                                       {"WorkloadSelector", AuthzScope::WorkloadSelector}});
    if (!present(n, "action")) fail(join(path, "action"), "missing required field");
    a.action = enumeration<AuthzAction>(n["action"], join(path, "action"),
                                        {{"Allow", AuthzAction::Allow}, {"Deny", AuthzAction::Deny}});
    if (present(n, "dryRun")) a.dry_run = boolean(n["dryRun"], join(path, "dryRun"));
    // rules: list (OR) of clauses-lists (AND) of match-lists (OR).
    auto clause_f = [this](const YAML::Node& c, const std::string& cp) {
      AuthzClause clause;
      expect_seq(c, cp);
      for (size_t k = 0; k < c.size(); ++k) clause.push_back(match(c[k], index(cp, k)));
      return clause;
    };
    auto rule_f = [&](const YAML::Node& r, const std::string& rp) {
      AuthzRule rule;
      expect_seq(r, rp);
      for (size_t j = 0; j < r.size(); ++j) rule.push_back(clause_f(r[j], index(rp, j)));
      return rule;
    };
    list_of(n, path, "rules", a.rules, rule_f);
    return a;
  }

  LocalConfig document(const YAML::Node& root) {
    LocalConfig cfg;
    if (!root.IsDefined() || root.IsNull()) return cfg;  // empty file = empty config
    expect_map(root, "", {"workloads", "services", "policies"});
    auto wl_f = [this](const YAML::Node& v, const std::string& p) { return workload(v, p); };
    auto svc_f = [this](const YAML::Node& v, const std::string& p) { return service(v, p); };
    auto pol_f = [this](const YAML::Node& v, const std::string& p) { return policy(v, p); };
    list_of(root, "", "workloads", cfg.workloads, wl_f);
    list_of(root, "", "services", cfg.services, svc_f);
    list_of(root, "", "policies", cfg.policies, pol_f);

    // Duplicate keys in one static file are always a mistake; upstream silently keeps the
    // last one, which hides typos in copy-pasted entries.
    std::set<std::string> seen;
    for (size_t i = 0; i < cfg.workloads.size(); ++i) {
      if (!seen.insert(cfg.workloads[i].uid).second) {
        fail(index("workloads", i) + ".uid", "duplicate workload uid '" + cfg.workloads[i].uid + "'");
      }
    }
    seen.clear();
    for (size_t i = 0; i < cfg.services.size(); ++i) {
      if (!seen.insert(cfg.services[i].key()).second) {
        fail(index("services", i), "duplicate service '" + cfg.services[i].key() + "'");
      }
    }
    seen.clear();
    for (size_t i = 0; i < cfg.policies.size(); ++i) {
      if (!seen.insert(cfg.policies[i].key()).second) {
        fail(index("policies", i), "duplicate policy '" + cfg.policies[i].key() + "'");
      }
    }
    return cfg;
  }

 private:
  Budget& budget_;
};

}  // namespace

common::Result<LocalConfig> parse_local_config(std::string_view yaml) {
  if (yaml.size() > kMaxLocalConfigBytes) {
    return common::make_error("local config: larger than " +
                              std::to_string(kMaxLocalConfigBytes) + " bytes");
  }
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    Budget budget;
    Reader reader(budget);
    return reader.document(root);
  } catch (const FieldError& e) {
    return common::make_error(e.message);
  } catch (const YAML::Exception& e) {
    return common::make_error("invalid YAML: " + std::string(e.what()));
  } catch (const std::exception& e) {
    return common::make_error("local config: " + std::string(e.what()));
  }
}

common::Result<LocalConfig> load_local_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return common::make_error(path + ": cannot open file");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return common::make_error(path + ": read error");
  auto r = parse_local_config(buf.str());
  if (!r) return common::make_error(path + ": " + r.error());
  return r;
}

}  // namespace ztunnel
