#include "common/model/xds/xds_convert.h"

#include <optional>
#include <string>

#include "istio/security/authorization.pb.h"
#include "istio/workload/workload.pb.h"

namespace ztunnel {
namespace {

namespace pw = istio::workload;
namespace ps = istio::security;

// Collects the first error; every converter returns false as soon as one is set, so the
// message is always the first (outermost-path) reason.
class Conv {
 public:
  bool fail(const std::string& path, const std::string& what) {
    if (error_.empty()) error_ = path.empty() ? what : path + ": " + what;
    return false;
  }
  const std::string& error() const { return error_; }

  bool ip(const std::string& raw, const std::string& path, IpAddr& out) {
    auto v = ip_from_bytes(raw);
    if (!v) return fail(path, "address must be 4 or 16 bytes, got " + std::to_string(raw.size()));
    out = *v;
    return true;
  }

  bool port(uint32_t v, const std::string& path, uint16_t& out) {
    if (v > 65535) return fail(path, "port " + std::to_string(v) + " out of range (max 65535)");
    out = static_cast<uint16_t>(v);
    return true;
  }

  // A prefix of `raw` (4 or 16 bytes) of `len` bits.
  bool cidr(const std::string& raw, uint32_t len, const std::string& path, Cidr& out) {
    IpAddr addr;
    if (!ip(raw, path, addr)) return false;
    const uint32_t width = raw.size() == 4 ? 32 : 128;
    if (len > width) {
      return fail(path, "prefix length " + std::to_string(len) + " out of range (max " + std::to_string(width) + ")");
    }
    // An IPv4-mapped IPv6 prefix is stored as IPv4 (addresses are canonical in the model).
    if (raw.size() == 16 && addr.is_v4()) {
      if (len < 96) return fail(path, "IPv4-mapped prefix length " + std::to_string(len) + " below 96");
      len -= 96;
    }
    auto c = Cidr::parse(addr.to_string() + "/" + std::to_string(len));
    if (!c) return fail(path, "invalid prefix");
    out = *c;
    return true;
  }

  bool gateway(const pw::GatewayAddress& g, const std::string& path, GatewayAddress& out) {
    switch (g.destination_case()) {
      case pw::GatewayAddress::kHostname: {
        if (g.hostname().hostname().empty()) return fail(path + ".hostname", "hostname is empty");
        out.destination = NamespacedHostname{g.hostname().namespace_(), g.hostname().hostname()};
        break;
      }
      case pw::GatewayAddress::kAddress: {
        NetworkAddress na;
        na.network = g.address().network();
        if (!ip(g.address().address(), path + ".address", na.ip)) return false;
        out.destination = std::move(na);
        break;
      }
      default:
        return fail(path, "no destination (hostname or address)");
    }
    out.hbone_mtls_port = kDefaultHboneMtlsPort;
    if (g.hbone_mtls_port() != 0 && !port(g.hbone_mtls_port(), path + ".hbone_mtls_port", out.hbone_mtls_port)) {
      return false;
    }
    return true;
  }

  bool port_list(const pw::PortList& pl, const std::string& path, PortMap& out) {
    for (int i = 0; i < pl.ports_size(); ++i) {
      const std::string p = path + ".ports[" + std::to_string(i) + "]";
      uint16_t from = 0, to = 0;
      if (!port(pl.ports(i).service_port(), p + ".service_port", from)) return false;
      if (!port(pl.ports(i).target_port(), p + ".target_port", to)) return false;
      out.set(from, to);
    }
    return true;
  }

  bool workload(const pw::Workload& in, Workload& w) {
    if (in.uid().empty()) return fail("", "workload uid is empty");
    w.uid = in.uid();
    w.name = in.name();
    w.ns = in.namespace_();
    w.service_account = in.service_account().empty() ? std::string(kDefaultServiceAccount) : in.service_account();
    w.trust_domain = in.trust_domain().empty() ? std::string(kDefaultTrustDomain) : in.trust_domain();
    w.cluster_id = in.cluster_id().empty() ? std::string("Kubernetes") : in.cluster_id();
    w.hostname = in.hostname();
    w.network = in.network();
    w.node = in.node();
    w.canonical_name = in.canonical_name();
    w.canonical_revision = in.canonical_revision();
    w.workload_name = in.workload_name();
    w.native_tunnel = in.native_tunnel();
    w.capacity = in.has_capacity() ? in.capacity().value() : 1;
    for (int i = 0; i < in.addresses_size(); ++i) {
      IpAddr a;
      if (!ip(in.addresses(i), "addresses[" + std::to_string(i) + "]", a)) return false;
      w.addresses.push_back(a);
    }
    switch (in.tunnel_protocol()) {
      case pw::NONE: w.tunnel_protocol = TunnelProtocol::None; break;
      case pw::HBONE: w.tunnel_protocol = TunnelProtocol::Hbone; break;
      case pw::LEGACY_ISTIO_MTLS: return fail("tunnel_protocol", "LEGACY_ISTIO_MTLS is not supported");
      default: return fail("tunnel_protocol", "unknown value " + std::to_string(in.tunnel_protocol()));
    }
    switch (in.network_mode()) {
      case pw::STANDARD: w.network_mode = NetworkMode::Standard; break;
      case pw::HOST_NETWORK: w.network_mode = NetworkMode::HostNetwork; break;
      default: return fail("network_mode", "unknown value " + std::to_string(in.network_mode()));
    }
    switch (in.status()) {
      case pw::HEALTHY: w.status = HealthStatus::Healthy; break;
      case pw::UNHEALTHY: w.status = HealthStatus::Unhealthy; break;
      default: return fail("status", "unknown value " + std::to_string(in.status()));
    }
    switch (in.workload_type()) {
      case pw::DEPLOYMENT: w.workload_type = "deployment"; break;
      case pw::CRONJOB: w.workload_type = "cronjob"; break;
      case pw::POD: w.workload_type = "pod"; break;
      case pw::JOB: w.workload_type = "job"; break;
      default: return fail("workload_type", "unknown value " + std::to_string(in.workload_type()));
    }
    if (in.has_waypoint()) {
      GatewayAddress g;
      if (!gateway(in.waypoint(), "waypoint", g)) return false;
      w.waypoint = std::move(g);
    }
    if (in.has_network_gateway()) {
      GatewayAddress g;
      if (!gateway(in.network_gateway(), "network_gateway", g)) return false;
      w.network_gateway = std::move(g);
    }
    if (in.has_application_tunnel()) {
      ApplicationTunnel t;
      switch (in.application_tunnel().protocol()) {
        case pw::ApplicationTunnel::NONE: t.protocol = ApplicationTunnel::Protocol::None; break;
        case pw::ApplicationTunnel::PROXY: t.protocol = ApplicationTunnel::Protocol::Proxy; break;
        default:
          return fail("application_tunnel.protocol",
                      "unknown value " + std::to_string(in.application_tunnel().protocol()));
      }
      if (!port(in.application_tunnel().port(), "application_tunnel.port", t.port)) return false;
      w.application_tunnel = t;
    }
    for (const auto& [key, pl] : in.services()) {
      const std::string p = "services[\"" + key + "\"]";
      auto nh = NamespacedHostname::parse(key);
      if (!nh || nh->ns.empty() || nh->hostname.empty()) return fail(p, "key must be \"namespace/hostname\"");
      PortMap pm;
      if (!port_list(pl, p, pm)) return false;
      w.services[key] = std::move(pm);
    }
    w.authorization_policies.assign(in.authorization_policies().begin(), in.authorization_policies().end());
    if (in.has_locality()) {
      w.locality = Locality{in.locality().region(), in.locality().zone(), in.locality().subzone()};
    }
    return true;
  }

  bool service(const pw::Service& in, Service& s) {
    if (in.hostname().empty()) return fail("hostname", "must not be empty");
    s.name = in.name();
    s.ns = in.namespace_();
    s.hostname = in.hostname();
    s.canonical = in.canonical();
    s.subject_alt_names.assign(in.subject_alt_names().begin(), in.subject_alt_names().end());
    for (int i = 0; i < in.addresses_size(); ++i) {
      const std::string p = "addresses[" + std::to_string(i) + "]";
      const auto& a = in.addresses(i);
      // As upstream: a `length` shorter than the address width makes a CIDR VIP; unset or the
      // full width, a plain VIP.
      const uint32_t width = a.address().size() == 4 ? 32 : 128;
      if (a.has_length() && a.length() != width) {
        NetworkCidr nc;
        nc.network = a.network();
        if (!cidr(a.address(), a.length(), p, nc.cidr)) return false;
        s.cidr_vips.push_back(std::move(nc));
        continue;
      }
      NetworkAddress na;
      na.network = a.network();
      if (!ip(a.address(), p, na.ip)) return false;
      s.vips.push_back(std::move(na));
    }
    for (int i = 0; i < in.ports_size(); ++i) {
      const std::string p = "ports[" + std::to_string(i) + "]";
      uint16_t from = 0, to = 0;
      if (!port(in.ports(i).service_port(), p + ".service_port", from)) return false;
      if (!port(in.ports(i).target_port(), p + ".target_port", to)) return false;
      s.ports.set(from, to);
    }
    if (in.has_waypoint()) {
      GatewayAddress g;
      if (!gateway(in.waypoint(), "waypoint", g)) return false;
      s.waypoint = std::move(g);
    }
    if (in.has_load_balancing()) {
      const auto& lbin = in.load_balancing();
      LoadBalancer lb;
      for (int i = 0; i < lbin.routing_preference_size(); ++i) {
        const std::string p = "load_balancing.routing_preference[" + std::to_string(i) + "]";
        switch (lbin.routing_preference(i)) {
          case pw::LoadBalancing::REGION: lb.routing_preferences.push_back(LoadBalancerScope::Region); break;
          case pw::LoadBalancing::ZONE: lb.routing_preferences.push_back(LoadBalancerScope::Zone); break;
          case pw::LoadBalancing::SUBZONE: lb.routing_preferences.push_back(LoadBalancerScope::Subzone); break;
          case pw::LoadBalancing::NODE: lb.routing_preferences.push_back(LoadBalancerScope::Node); break;
          case pw::LoadBalancing::CLUSTER: lb.routing_preferences.push_back(LoadBalancerScope::Cluster); break;
          case pw::LoadBalancing::NETWORK: lb.routing_preferences.push_back(LoadBalancerScope::Network); break;
          default: return fail(p, "unsupported scope " + std::to_string(lbin.routing_preference(i)));
        }
      }
      switch (lbin.mode()) {
        case pw::LoadBalancing::UNSPECIFIED_MODE: lb.mode = LoadBalancerMode::Standard; break;
        case pw::LoadBalancing::STRICT: lb.mode = LoadBalancerMode::Strict; break;
        case pw::LoadBalancing::FAILOVER: lb.mode = LoadBalancerMode::Failover; break;
        case pw::LoadBalancing::PASSTHROUGH: lb.mode = LoadBalancerMode::Passthrough; break;
        default: return fail("load_balancing.mode", "unknown value " + std::to_string(lbin.mode()));
      }
      switch (lbin.health_policy()) {
        case pw::LoadBalancing::ONLY_HEALTHY: lb.health_policy = LoadBalancerHealthPolicy::OnlyHealthy; break;
        case pw::LoadBalancing::ALLOW_ALL: lb.health_policy = LoadBalancerHealthPolicy::AllowAll; break;
        default:
          return fail("load_balancing.health_policy", "unknown value " + std::to_string(lbin.health_policy()));
      }
      s.load_balancer = std::move(lb);
    }
    switch (in.ip_families()) {
      case pw::AUTOMATIC: break;
      case pw::IPV4_ONLY: s.ip_families = IpFamily::IPv4; break;
      case pw::IPV6_ONLY: s.ip_families = IpFamily::IPv6; break;
      case pw::DUAL: s.ip_families = IpFamily::Dual; break;
      default: return fail("ip_families", "unknown value " + std::to_string(in.ip_families()));
    }
    return true;
  }

  bool string_match(const ps::StringMatch& in, const std::string& path, StringMatch& out) {
    switch (in.match_type_case()) {
      case ps::StringMatch::kExact: out = {StringMatch::Kind::Exact, in.exact()}; return true;
      case ps::StringMatch::kPrefix: out = {StringMatch::Kind::Prefix, in.prefix()}; return true;
      case ps::StringMatch::kSuffix: out = {StringMatch::Kind::Suffix, in.suffix()}; return true;
      case ps::StringMatch::kPresence: out = {StringMatch::Kind::Presence, ""}; return true;
      default: return fail(path, "string match has no exact, prefix, suffix or presence");
    }
  }

  template <typename In, typename Out, typename F>
  bool list(const In& in, const std::string& path, std::vector<Out>& out, F&& one) {
    for (int i = 0; i < in.size(); ++i) {
      Out v{};
      if (!one(in.Get(i), path + "[" + std::to_string(i) + "]", v)) return false;
      out.push_back(std::move(v));
    }
    return true;
  }

  bool match(const ps::Match& in, const std::string& path, AuthzMatch& m) {
    auto sm = [this](const ps::StringMatch& v, const std::string& p, StringMatch& o) { return string_match(v, p, o); };
    auto addr = [this](const ps::Address& v, const std::string& p, Cidr& o) {
      return cidr(v.address(), v.length(), p, o);
    };
    auto prt = [this](uint32_t v, const std::string& p, uint16_t& o) { return port(v, p, o); };
    auto sa = [](const ps::ServiceAccountMatch& v, const std::string&, ServiceAccountMatch& o) {
      o = ServiceAccountMatch{v.namespace_(), v.serviceaccount()};
      return true;
    };
    return list(in.namespaces(), path + ".namespaces", m.namespaces, sm) &&
           list(in.not_namespaces(), path + ".not_namespaces", m.not_namespaces, sm) &&
           list(in.principals(), path + ".principals", m.principals, sm) &&
           list(in.not_principals(), path + ".not_principals", m.not_principals, sm) &&
           list(in.source_ips(), path + ".source_ips", m.source_ips, addr) &&
           list(in.not_source_ips(), path + ".not_source_ips", m.not_source_ips, addr) &&
           list(in.destination_ips(), path + ".destination_ips", m.destination_ips, addr) &&
           list(in.not_destination_ips(), path + ".not_destination_ips", m.not_destination_ips, addr) &&
           list(in.destination_ports(), path + ".destination_ports", m.destination_ports, prt) &&
           list(in.not_destination_ports(), path + ".not_destination_ports", m.not_destination_ports, prt) &&
           list(in.service_accounts(), path + ".service_accounts", m.service_accounts, sa) &&
           list(in.not_service_accounts(), path + ".not_service_accounts", m.not_service_accounts, sa);
  }

  bool authorization(const ps::Authorization& in, Authorization& a) {
    if (in.name().empty()) return fail("name", "must not be empty");
    a.name = in.name();
    a.ns = in.namespace_();
    a.dry_run = in.dry_run();
    switch (in.scope()) {
      case ps::GLOBAL: a.scope = AuthzScope::Global; break;
      case ps::NAMESPACE: a.scope = AuthzScope::Namespace; break;
      case ps::WORKLOAD_SELECTOR: a.scope = AuthzScope::WorkloadSelector; break;
      default: return fail("scope", "unknown value " + std::to_string(in.scope()));
    }
    switch (in.action()) {
      case ps::ALLOW: a.action = AuthzAction::Allow; break;
      case ps::DENY: a.action = AuthzAction::Deny; break;
      default: return fail("action", "unknown value " + std::to_string(in.action()));
    }
    for (int r = 0; r < in.rules_size(); ++r) {
      AuthzRule rule;
      const auto& rin = in.rules(r);
      for (int c = 0; c < rin.clauses_size(); ++c) {
        AuthzClause clause;
        const auto& cin = rin.clauses(c);
        for (int k = 0; k < cin.matches_size(); ++k) {
          AuthzMatch m;
          const std::string p = "rules[" + std::to_string(r) + "].clauses[" + std::to_string(c) + "].matches[" +
                                std::to_string(k) + "]";
          if (!match(cin.matches(k), p, m)) return false;
          clause.push_back(std::move(m));
        }
        rule.push_back(std::move(clause));
      }
      a.rules.push_back(std::move(rule));
    }
    return true;
  }

 private:
  std::string error_;
};

common::Error name_mismatch(std::string_view name, std::string_view what, const std::string& key) {
  return common::make_error("resource name '" + std::string(name) + "' does not match the " + std::string(what) +
                            " '" + key + "'");
}

}  // namespace

common::Result<Workload> convert_workload(const istio::workload::Workload& in) {
  Conv c;
  Workload w;
  if (!c.workload(in, w)) return common::make_error(c.error());
  return w;
}

common::Result<Service> convert_service(const istio::workload::Service& in) {
  Conv c;
  Service s;
  if (!c.service(in, s)) return common::make_error(c.error());
  return s;
}

common::Result<AddressValue> convert_address(const istio::workload::Address& a, std::string_view resource_name) {
  switch (a.type_case()) {
    case pw::Address::kWorkload: {
      auto w = convert_workload(a.workload());
      if (!w) return common::make_error("workload: " + w.error());
      if (w->uid != resource_name) return name_mismatch(resource_name, "workload uid", w->uid);
      return AddressValue(std::move(w.value()));
    }
    case pw::Address::kService: {
      auto s = convert_service(a.service());
      if (!s) return common::make_error("service: " + s.error());
      if (s->key() != resource_name) return name_mismatch(resource_name, "service key", s->key());
      return AddressValue(std::move(s.value()));
    }
    default:
      return common::make_error("address has neither a workload nor a service");
  }
}

common::Result<Authorization> convert_authorization(const istio::security::Authorization& in,
                                                    std::string_view resource_name) {
  Conv c;
  Authorization a;
  if (!c.authorization(in, a)) return common::make_error("authorization: " + c.error());
  if (a.key() != resource_name) return name_mismatch(resource_name, "authorization key", a.key());
  return a;
}

common::Result<AddressValue> parse_address_resource(std::string_view resource_name, std::string_view bytes) {
  pw::Address a;
  if (!a.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return common::make_error("cannot parse istio.workload.Address");
  }
  return convert_address(a, resource_name);
}

common::Result<Authorization> parse_authorization_resource(std::string_view resource_name, std::string_view bytes) {
  ps::Authorization a;
  if (!a.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return common::make_error("cannot parse istio.security.Authorization");
  }
  return convert_authorization(a, resource_name);
}

}  // namespace ztunnel
