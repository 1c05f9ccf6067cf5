#include "controlplane/k8s_loader.h"
#include "controlplane/ratelimit_loader.h"
#include "controlplane/ingress_loader.h"
#include "controlplane/mesh_config.h"
#include "controlplane/telemetry.h"
#include "controlplane/waypoint_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "controlplane/yaml_reader.h"

namespace controlplane {
namespace {

namespace fs = std::filesystem;
using namespace yaml;  // NOLINT: the reader vocabulary (fail, join, index, ...)

// The kinds we read, on top of the generic reader.
class KindReader : public yaml::Reader {
 public:
  PodObject pod(const YAML::Node& doc) {
    PodObject p;
    p.meta = meta(doc, true);
    if (present(doc, "spec")) {
      const YAML::Node spec = child(doc, "spec");
      expect_map(spec, "spec");
      opt_str(spec, "spec", "serviceAccountName", p.service_account);
      if (p.service_account.empty()) p.service_account = std::string(ztunnel::kDefaultServiceAccount);
      if (!valid_dns_subdomain(p.service_account)) {
        fail("spec.serviceAccountName", "'" + p.service_account + "' is not a valid name");
      }
      opt_str(spec, "spec", "nodeName", p.node_name);
      if (present(spec, "hostNetwork")) {
        p.host_network = boolean(child(spec, "hostNetwork"), "spec.hostNetwork");
      }
      if (present(spec, "containers")) {
        const YAML::Node cs = child(spec, "containers");
        expect_seq(cs, "spec.containers");
        for (size_t i = 0; i < cs.size(); ++i) {
          const std::string cp = index("spec.containers", i);
          expect_map(cs[i], cp);
          if (!present(cs[i], "ports")) continue;
          const YAML::Node ports = child(cs[i], "ports");
          const std::string pp = join(cp, "ports");
          expect_seq(ports, pp);
          for (size_t k = 0; k < ports.size(); ++k) {
            const std::string kp = index(pp, k);
            expect_map(ports[k], kp);
            ContainerPort port;
            opt_str(ports[k], kp, "name", port.name);
            if (!present(ports[k], "containerPort")) fail(join(kp, "containerPort"), "missing required field");
            port.port = this->port(child(ports[k], "containerPort"), join(kp, "containerPort"));
            p.ports.push_back(std::move(port));
          }
        }
      }
    }
    if (present(doc, "status")) {
      const YAML::Node st = child(doc, "status");
      expect_map(st, "status");
      if (present(st, "podIPs")) {
        const YAML::Node ips = child(st, "podIPs");
        expect_seq(ips, "status.podIPs");
        for (size_t i = 0; i < ips.size(); ++i) {
          const std::string ip_path = index("status.podIPs", i);
          expect_map(ips[i], ip_path);
          if (!present(ips[i], "ip")) fail(join(ip_path, "ip"), "missing required field");
          const auto addr = ip(child(ips[i], "ip"), join(ip_path, "ip"));
          if (std::find(p.ips.begin(), p.ips.end(), addr) == p.ips.end()) p.ips.push_back(addr);
        }
      }
      if (present(st, "podIP")) {
        const auto addr = ip(child(st, "podIP"), "status.podIP");
        // podIPs[0] is podIP by contract; keep podIP first if they disagree in order.
        auto it = std::find(p.ips.begin(), p.ips.end(), addr);
        if (it != p.ips.end()) p.ips.erase(it);
        p.ips.insert(p.ips.begin(), addr);
      }
      opt_str(st, "status", "phase", p.phase);
      if (present(st, "conditions")) {
        const YAML::Node conds = child(st, "conditions");
        expect_seq(conds, "status.conditions");
        for (size_t i = 0; i < conds.size(); ++i) {
          const std::string c = index("status.conditions", i);
          expect_map(conds[i], c);
          std::string type, status;
          opt_str(conds[i], c, "type", type);
          opt_str(conds[i], c, "status", status);
          if (type == "Ready" && status == "False") p.ready = false;
        }
      }
    }
    return p;
  }

  WorkloadEntryObject workload_entry(const YAML::Node& doc) {
    WorkloadEntryObject w;
    w.meta = meta(doc, true);
    w.labels = w.meta.labels;
    if (!present(doc, "spec")) fail("spec", "missing required field");
    const YAML::Node spec = child(doc, "spec");
    expect_map(spec, "spec");
    std::string address;
    opt_str(spec, "spec", "address", address);
    if (!address.empty()) {
      if (auto ip = ztunnel::parse_ip(address)) {
        w.address = *ip;
      } else if (valid_dns_subdomain(address)) {
        w.hostname = address;
      } else {
        fail("spec.address", "'" + address + "' is neither an IP address nor a DNS name");
      }
    }
    if (present(spec, "labels")) {
      for (auto& [k, v] : string_map(child(spec, "labels"), "spec.labels")) w.labels[k] = v;
    }
    opt_str(spec, "spec", "serviceAccount", w.service_account);
    if (w.service_account.empty()) w.service_account = std::string(ztunnel::kDefaultServiceAccount);
    if (!valid_dns_subdomain(w.service_account)) {
      fail("spec.serviceAccount", "'" + w.service_account + "' is not a valid name");
    }
    opt_str(spec, "spec", "network", w.network);
    // Networks are the first part of "network/ip" keys, so they can never contain '/'.
    if (w.network.find('/') != std::string::npos) fail("spec.network", "must not contain '/'");
    if (present(spec, "ports")) {
      const YAML::Node ports = child(spec, "ports");
      expect_map(ports, "spec.ports");
      for (const auto& kv : ports) {
        const std::string name = str(kv.first, "spec.ports");
        w.ports[name] = port(kv.second, "spec.ports[" + name + "]");
      }
    }
    if (present(spec, "weight")) {
      w.weight = static_cast<uint32_t>(integer(child(spec, "weight"), "spec.weight", 0, 0xFFFFFFFFu));
    }
    if (present(spec, "locality")) {
      // "region/zone/subzone", as Istio writes it.
      const std::string loc = str(child(spec, "locality"), "spec.locality");
      std::vector<std::string> parts;
      std::string cur;
      for (char c : loc) {
        if (c == '/') {
          parts.push_back(cur);
          cur.clear();
        } else {
          cur += c;
        }
      }
      parts.push_back(cur);
      if (parts.size() > 3) fail("spec.locality", "expected 'region/zone/subzone', got '" + loc + "'");
      w.locality.region = parts[0];
      if (parts.size() > 1) w.locality.zone = parts[1];
      if (parts.size() > 2) w.locality.subzone = parts[2];
    }
    return w;
  }

  ServiceObject service(const YAML::Node& doc) {
    ServiceObject s;
    s.meta = meta(doc, true);
    if (!present(doc, "spec")) return s;
    const YAML::Node spec = child(doc, "spec");
    expect_map(spec, "spec");
    std::string type;
    opt_str(spec, "spec", "type", type);
    s.external_name = type == "ExternalName";
    if (present(spec, "selector")) s.selector = string_map(child(spec, "selector"), "spec.selector");
    if (present(spec, "ports")) {
      const YAML::Node ports = child(spec, "ports");
      expect_seq(ports, "spec.ports");
      std::set<uint16_t> seen;
      for (size_t i = 0; i < ports.size(); ++i) {
        const std::string pp = index("spec.ports", i);
        expect_map(ports[i], pp);
        std::string protocol = "TCP";
        opt_str(ports[i], pp, "protocol", protocol);
        if (protocol != "TCP" && protocol != "UDP" && protocol != "SCTP") {
          fail(join(pp, "protocol"), "expected TCP, UDP or SCTP, got '" + protocol + "'");
        }
        ServicePort sp;
        opt_str(ports[i], pp, "name", sp.name);
        if (!present(ports[i], "port")) fail(join(pp, "port"), "missing required field");
        sp.port = port(child(ports[i], "port"), join(pp, "port"));
        if (protocol != "TCP") continue;  // ztunnel carries TCP only
        if (!seen.insert(sp.port).second) fail(join(pp, "port"), "duplicate port " + std::to_string(sp.port));
        sp.target_port = sp.port;
        if (present(ports[i], "targetPort")) {
          const std::string tp_path = join(pp, "targetPort");
          const std::string tp = str(child(ports[i], "targetPort"), tp_path);
          const bool numeric =
              !tp.empty() && std::all_of(tp.begin(), tp.end(), [](char c) { return c >= '0' && c <= '9'; });
          if (numeric) {
            sp.target_port = port(child(ports[i], "targetPort"), tp_path);
          } else {
            // IANA service name: what a container port may be named.
            const bool ok_name = tp.size() <= 15 && std::all_of(tp.begin(), tp.end(), [](char c) {
                                   return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                                 });
            if (tp.empty() || !ok_name) fail(tp_path, "invalid port name '" + tp + "'");
            sp.target_port = 0;
            sp.target_port_name = tp;
          }
        }
        s.ports.push_back(std::move(sp));
      }
    }
    // clusterIPs (dual stack) supersedes clusterIP; "None" = headless, "" = not assigned.
    std::vector<std::string> ips;
    if (present(spec, "clusterIPs")) {
      ips = str_list(child(spec, "clusterIPs"), "spec.clusterIPs");
    } else if (present(spec, "clusterIP")) {
      ips.push_back(str(child(spec, "clusterIP"), "spec.clusterIP"));
    }
    for (size_t i = 0; i < ips.size(); ++i) {
      if (ips[i] == "None" || ips[i].empty()) continue;
      const std::string p = present(spec, "clusterIPs") ? index("spec.clusterIPs", i) : "spec.clusterIP";
      auto ip = ztunnel::parse_ip(ips[i]);
      if (!ip) fail(p, "invalid IP address '" + ips[i] + "'");
      s.cluster_ips.push_back(*ip);
    }
    return s;
  }

  // discovery.k8s.io/v1 EndpointSlice. A bad address fails the object (as the API server would
  // refuse it); a port without a number ("all ports", not used for Services) is left out.
  EndpointSliceObject endpoint_slice(const YAML::Node& doc) {
    EndpointSliceObject e;
    e.meta = meta(doc, true);
    if (auto it = e.meta.labels.find(std::string(kServiceNameLabel)); it != e.meta.labels.end()) {
      e.service_name = it->second;
    }
    if (!present(doc, "addressType")) fail("addressType", "missing required field");
    e.address_type = str(child(doc, "addressType"), "addressType");
    if (e.address_type != "IPv4" && e.address_type != "IPv6" && e.address_type != "FQDN") {
      fail("addressType", "expected IPv4, IPv6 or FQDN, got '" + e.address_type + "'");
    }
    if (present(doc, "ports") && !child(doc, "ports").IsNull()) {
      const YAML::Node ports = child(doc, "ports");
      expect_seq(ports, "ports");
      for (size_t i = 0; i < ports.size(); ++i) {
        const std::string pp = index("ports", i);
        expect_map(ports[i], pp);
        std::string protocol = "TCP";
        opt_str(ports[i], pp, "protocol", protocol);
        EndpointSlicePort sp;
        opt_str(ports[i], pp, "name", sp.name);
        if (!present(ports[i], "port") || child(ports[i], "port").IsNull()) continue;
        sp.port = port(child(ports[i], "port"), join(pp, "port"));
        if (protocol == "TCP") e.ports.push_back(std::move(sp));  // ztunnel carries TCP only
      }
    }
    if (present(doc, "endpoints") && !child(doc, "endpoints").IsNull()) {
      const YAML::Node eps = child(doc, "endpoints");
      expect_seq(eps, "endpoints");
      for (size_t i = 0; i < eps.size(); ++i) {
        EndpointSliceEndpoint ep;
        ep.path = index("endpoints", i);
        expect_map(eps[i], ep.path);
        if (!present(eps[i], "addresses")) fail(join(ep.path, "addresses"), "missing required field");
        const std::string ap = join(ep.path, "addresses");
        const auto addrs = str_list(child(eps[i], "addresses"), ap);
        if (addrs.empty()) fail(ap, "must have at least one address");
        if (e.address_type != "FQDN") {
          for (size_t j = 0; j < addrs.size(); ++j) {
            auto ip = ztunnel::parse_ip(addrs[j]);
            if (!ip) fail(index(ap, j), "invalid IP address '" + addrs[j] + "'");
            ep.addresses.push_back(*ip);
          }
        }
        if (present(eps[i], "conditions")) {
          const std::string cp = join(ep.path, "conditions");
          const YAML::Node cond = child(eps[i], "conditions");
          expect_map(cond, cp);
          if (present(cond, "ready") && !child(cond, "ready").IsNull()) {
            ep.ready = boolean(child(cond, "ready"), join(cp, "ready"));
          }
        }
        if (present(eps[i], "targetRef") && !child(eps[i], "targetRef").IsNull()) {
          const std::string tp = join(ep.path, "targetRef");
          const YAML::Node ref = child(eps[i], "targetRef");
          expect_map(ref, tp);
          std::string kind;
          opt_str(ref, tp, "kind", kind);
          if (kind == "Pod") {
            opt_str(ref, tp, "name", ep.pod_name);
            opt_str(ref, tp, "namespace", ep.pod_ns);
            if (ep.pod_ns.empty()) ep.pod_ns = e.meta.ns;
          }
        }
        e.endpoints.push_back(std::move(ep));
      }
    }
    return e;
  }

  GatewayObject gateway(const YAML::Node& doc) {
    GatewayObject g;
    g.meta = meta(doc, true);
    if (!present(doc, "spec")) fail("spec", "missing required field");
    const YAML::Node spec = child(doc, "spec");
    expect_map(spec, "spec");
    opt_str(spec, "spec", "gatewayClassName", g.class_name);
    if (g.class_name.empty()) fail("spec.gatewayClassName", "missing required field");
    if (g.class_name == kIngressGatewayClass) g.listeners = read_k8s_gateway_listeners(*this, spec, g.meta);
    if (present(spec, "listeners")) {
      const YAML::Node ls = child(spec, "listeners");
      expect_seq(ls, "spec.listeners");
      for (size_t i = 0; i < ls.size(); ++i) {
        const std::string lp = index("spec.listeners", i);
        expect_map(ls[i], lp);
        std::string protocol;
        opt_str(ls[i], lp, "protocol", protocol);
        if (protocol == "HBONE" && present(ls[i], "port")) {
          g.hbone_port = port(child(ls[i], "port"), join(lp, "port"));
        }
      }
    }
    if (present(doc, "status")) {
      const YAML::Node st = child(doc, "status");
      expect_map(st, "status");
      if (present(st, "addresses")) {
        const YAML::Node as = child(st, "addresses");
        expect_seq(as, "status.addresses");
        for (size_t i = 0; i < as.size(); ++i) {
          const std::string ap = index("status.addresses", i);
          expect_map(as[i], ap);
          std::string type = "IPAddress";
          opt_str(as[i], ap, "type", type);
          if (type != "IPAddress" || !present(as[i], "value")) continue;
          g.addresses.push_back(ip(child(as[i], "value"), join(ap, "value")));
        }
      }
    }
    return g;
  }

  void target_refs(const YAML::Node& spec, std::vector<PolicyTargetRef>& out) {
    auto one = [&](const YAML::Node& n, const std::string& p) {
      expect_strict_map(n, p, {"group", "kind", "name", "namespace"});
      PolicyTargetRef t;
      t.path = p;
      opt_str(n, p, "group", t.group);
      opt_str(n, p, "kind", t.kind);
      opt_str(n, p, "name", t.name);
      opt_str(n, p, "namespace", t.ns);
      if (t.kind.empty()) fail(join(p, "kind"), "missing required field");
      if (t.name.empty()) fail(join(p, "name"), "missing required field");
      out.push_back(std::move(t));
    };
    if (present(spec, "targetRef")) one(child(spec, "targetRef"), "spec.targetRef");
    read_list(spec, "spec", "targetRefs", one);
  }

  // Strict like AuthorizationPolicy: a misspelt key would silently accept tokens it should not.
  RequestAuthenticationObject request_authentication(const YAML::Node& doc) {
    RequestAuthenticationObject a;
    a.meta = meta(doc, true);
    if (!present(doc, "spec")) return a;
    const YAML::Node spec = child(doc, "spec");
    expect_strict_map(spec, "spec", {"selector", "targetRef", "targetRefs", "jwtRules"});
    a.has_selector = present(spec, "selector");
    target_refs(spec, a.target_refs);
    read_list(spec, "spec", "jwtRules", [&](const YAML::Node& n, const std::string& p) {
      expect_strict_map(n, p,
                        {"issuer", "audiences", "jwksUri", "jwks", "fromHeaders", "fromParams", "fromCookies",
                         "outputPayloadToHeader", "forwardOriginalToken", "outputClaimToHeaders", "timeout"});
      for (const char* unsupported : {"fromCookies", "outputClaimToHeaders"})
        if (present(n, unsupported)) fail(join(p, unsupported), "not supported by this control plane");
      JwtRuleSpec r;
      r.path = p;
      opt_str(n, p, "issuer", r.issuer);
      if (r.issuer.empty()) fail(join(p, "issuer"), "missing required field");
      if (present(n, "audiences")) r.audiences = str_list(child(n, "audiences"), join(p, "audiences"));
      opt_str(n, p, "jwksUri", r.jwks_uri);
      opt_str(n, p, "jwks", r.jwks);
      read_list(n, p, "fromHeaders", [&](const YAML::Node& h, const std::string& hp) {
        expect_strict_map(h, hp, {"name", "prefix"});
        std::string name, prefix;
        opt_str(h, hp, "name", name);
        opt_str(h, hp, "prefix", prefix);
        if (name.empty()) fail(join(hp, "name"), "missing required field");
        r.from_headers.emplace_back(name, prefix);
      });
      if (present(n, "fromParams")) r.from_params = str_list(child(n, "fromParams"), join(p, "fromParams"));
      opt_str(n, p, "outputPayloadToHeader", r.output_payload_to_header);
      if (present(n, "forwardOriginalToken"))
        r.forward_original_token = boolean(child(n, "forwardOriginalToken"), join(p, "forwardOriginalToken"));
      a.jwt_rules.push_back(std::move(r));
    });
    return a;
  }

  // The spec is read strictly: in a policy a misspelt key changes who gets in.
  AuthorizationPolicyObject authorization_policy(const YAML::Node& doc) {
    AuthorizationPolicyObject a;
    a.meta = meta(doc, true);
    if (!present(doc, "spec")) return a;  // empty spec: ALLOW with no rules (denies all)
    const YAML::Node spec = child(doc, "spec");
    expect_strict_map(spec, "spec", {"selector", "targetRef", "targetRefs", "action", "provider", "rules"});
    if (present(spec, "selector")) {
      const YAML::Node sel = child(spec, "selector");
      expect_strict_map(sel, "spec.selector", {"matchLabels"});
      a.selector =
          present(sel, "matchLabels") ? string_map(child(sel, "matchLabels"), "spec.selector.matchLabels") : Labels{};
    }
    a.has_target_ref = present(spec, "targetRef") || present(spec, "targetRefs");
    target_refs(spec, a.target_refs);
    if (present(spec, "provider")) {
      const YAML::Node prov = child(spec, "provider");
      expect_strict_map(prov, "spec.provider", {"name"});
      opt_str(prov, "spec.provider", "name", a.provider);
    }
    if (present(spec, "action")) {
      a.action = str(child(spec, "action"), "spec.action");
      if (a.action != "ALLOW" && a.action != "DENY" && a.action != "AUDIT" && a.action != "CUSTOM") {
        fail("spec.action", "expected ALLOW, DENY, AUDIT or CUSTOM, got '" + a.action + "'");
      }
    }
    if (!present(spec, "rules")) return a;
    const YAML::Node rules = child(spec, "rules");
    expect_seq(rules, "spec.rules");
    for (size_t i = 0; i < rules.size(); ++i) {
      const std::string rp = index("spec.rules", i);
      PolicyRule rule;
      // `- {}` is a rule that matches everything; null reads the same way.
      if (!rules[i].IsNull()) {
        expect_strict_map(rules[i], rp, {"from", "to", "when"});
        read_list(rules[i], rp, "from", [&](const YAML::Node& n, const std::string& p) {
          expect_strict_map(n, p, {"source"});
          if (!present(n, "source")) fail(join(p, "source"), "missing required field");
          PolicySource src;
          src.fields = string_lists(child(n, "source"), join(p, "source"),
                                    {"principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
                                     "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks",
                                     "notRemoteIpBlocks", "serviceAccounts", "notServiceAccounts"});
          rule.from.push_back(std::move(src));
        });
        read_list(rules[i], rp, "to", [&](const YAML::Node& n, const std::string& p) {
          expect_strict_map(n, p, {"operation"});
          if (!present(n, "operation")) fail(join(p, "operation"), "missing required field");
          PolicyOperation op;
          op.fields =
              string_lists(child(n, "operation"), join(p, "operation"),
                           {"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"});
          rule.to.push_back(std::move(op));
        });
        read_list(rules[i], rp, "when", [&](const YAML::Node& n, const std::string& p) {
          expect_strict_map(n, p, {"key", "values", "notValues"});
          PolicyCondition c;
          opt_str(n, p, "key", c.key);
          if (c.key.empty()) fail(join(p, "key"), "missing required field");
          if (present(n, "values")) c.values = str_list(child(n, "values"), join(p, "values"));
          if (present(n, "notValues")) {
            c.not_values = str_list(child(n, "notValues"), join(p, "notValues"));
          }
          if (c.values.empty() && c.not_values.empty()) {
            fail(p, "one of values or notValues must be set");
          }
          rule.when.push_back(std::move(c));
        });
      }
      a.rules.push_back(std::move(rule));
    }
    return a;
  }

 private:
  // A source/operation: a strict map of string lists. Must not be empty (Istio rejects an
  // empty source or operation; it would otherwise read as "match anything").
  std::map<std::string, std::vector<std::string>> string_lists(const YAML::Node& n, const std::string& path,
                                                               std::initializer_list<std::string_view> keys) {
    expect_strict_map(n, path, keys);
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& kv : n) {
      const std::string key = kv.first.Scalar();
      if (kv.second.IsNull()) continue;
      auto values = str_list(kv.second, join(path, key));
      for (size_t i = 0; i < values.size(); ++i) {
        if (values[i].empty()) fail(index(join(path, key), i), "empty value");
      }
      if (!values.empty()) out[key] = std::move(values);
    }
    if (out.empty()) fail(path, "must set at least one field");
    return out;
  }
};

// "Kind ns/name" from a document, as best we can before validating it; "" when unnamed.
std::string describe(const YAML::Node& doc, const std::string& kind, bool namespaced) {
  if (!doc.IsMap()) return "";
  const YAML::Node md = Reader::child(doc, "metadata");
  if (!md.IsMap()) return "";
  const YAML::Node name = Reader::child(md, "name");
  if (!name.IsScalar() || name.Scalar().empty() || name.Scalar().size() > 253) return "";
  std::string ns;
  if (namespaced) {
    const YAML::Node n = Reader::child(md, "namespace");
    ns = (n.IsScalar() && !n.Scalar().empty() && n.Scalar().size() <= 63) ? n.Scalar() : "default";
    ns += "/";
  }
  std::string out = kind + " " + ns + name.Scalar();
  return valid_utf8(out) ? out : "";
}

// API group of an apiVersion ("security.istio.io/v1" -> "security.istio.io", "v1" -> "").
std::string_view api_group(std::string_view api_version) {
  const auto slash = api_version.find('/');
  return slash == std::string_view::npos ? std::string_view() : api_version.substr(0, slash);
}

struct Kind {
  std::string_view group;
  std::string_view kind;
  bool namespaced;
};
constexpr Kind kKinds[] = {
    {"", "Namespace", false},
    {"", "ServiceAccount", true},
    {"", "Pod", true},
    {"", "Service", true},
    {"discovery.k8s.io", "EndpointSlice", true},
    {"networking.istio.io", "WorkloadEntry", true},
    {"gateway.networking.k8s.io", "Gateway", true},
    {"security.istio.io", "AuthorizationPolicy", true},
    {"security.istio.io", "RequestAuthentication", true},
    {"networking.istio.io", "VirtualService", true},
    {"networking.istio.io", "DestinationRule", true},
    {"networking.istio.io", "Gateway", true},
    {"gateway.networking.k8s.io", "HTTPRoute", true},
    {"gateway.networking.k8s.io", "GRPCRoute", true},
    {kRateLimitPolicyGroup, "RateLimitPolicy", true},
    {"networking.istio.io", "EnvoyFilter", true},
    {"", "ConfigMap", true},  // only istio-system/istio (MeshConfig): mesh_config.h
    {kTelemetryGroup, "Telemetry", true},  // tracing: telemetry.h
};

class DocumentParser {
 public:
  DocumentParser(const std::string& file, ResourceSet& out, Diagnostics& diags)
      : file_(file), out_(out), diags_(diags) {}

  // One parsed YAML document (or one item of a List). `label` names it when unnamed.
  // `budget` is shared by the items of a List so a List of aliases cannot multiply the
  // per-document node limit.
  void object(const YAML::Node& doc, const std::string& label, int depth = 0, KindReader* budget = nullptr) {
    KindReader own;
    KindReader& r = budget ? *budget : own;
    if (doc.IsNull() || !doc.IsDefined()) return;  // empty document (e.g. trailing ---)
    if (!doc.IsMap()) {
      error(label, "", "expected a Kubernetes object (a map), got " + std::string(type_name(doc)));
      return;
    }
    const YAML::Node kind_node = Reader::child(doc, "kind");
    const YAML::Node api_node = Reader::child(doc, "apiVersion");
    if (!kind_node.IsScalar() || kind_node.Scalar().empty()) {
      error(label, "kind", "missing or not a string");
      return;
    }
    if (!api_node.IsScalar() || api_node.Scalar().empty()) {
      error(label, "apiVersion", "missing or not a string");
      return;
    }
    const std::string kind = kind_node.Scalar();
    const std::string api = api_node.Scalar();
    if (!valid_utf8(kind) || !valid_utf8(api)) {
      error(label, "kind", "invalid UTF-8");
      return;
    }

    if (kind == "List" && api_group(api).empty()) {
      const YAML::Node items = Reader::child(doc, "items");
      if (!items.IsDefined() || items.IsNull()) return;
      if (!items.IsSequence()) {
        error(label, "items", "expected a list, got " + std::string(type_name(items)));
        return;
      }
      if (depth > 0) {
        error(label, "items", "nested List");
        return;
      }
      for (size_t i = 0; i < items.size(); ++i) {
        object(items[i], label + " items[" + std::to_string(i) + "]", depth + 1, &r);
      }
      return;
    }

    const Kind* known = nullptr;
    for (const Kind& k : kKinds) {
      if (k.kind == kind && k.group == api_group(api)) known = &k;
    }
    std::string name = describe(doc, kind, known ? known->namespaced : true);
    if (name.empty()) name = label + " (" + kind + ")";
    if (!known) {
      diags_.push_back({Severity::Info, file_, name, "", "kind " + kind + " (" + api + ") is not used; ignored"});
      return;
    }

    const SourceRef src{file_, name};
    try {
      if (kind == "Namespace") {
        out_.namespaces.push_back({r.meta(doc, false), src});
      } else if (kind == "ServiceAccount") {
        out_.service_accounts.push_back({r.meta(doc, true), src});
      } else if (kind == "Pod") {
        auto p = r.pod(doc);
        p.src = src;
        out_.pods.push_back(std::move(p));
      } else if (kind == "Service") {
        auto s = r.service(doc);
        s.src = src;
        out_.services.push_back(std::move(s));
      } else if (kind == "EndpointSlice") {
        auto e = r.endpoint_slice(doc);
        e.src = src;
        out_.endpoint_slices.push_back(std::move(e));
      } else if (kind == "WorkloadEntry") {
        auto w = r.workload_entry(doc);
        w.src = src;
        out_.workload_entries.push_back(std::move(w));
      } else if (kind == "Gateway" && known->group == "networking.istio.io") {  // ingress_loader.h
        auto g = read_istio_gateway(r, doc, r.meta(doc, true));
        g.file = src.file, g.object = src.object;
        out_.l7.istio_gateways.push_back(std::move(g));
      } else if (kind == "Gateway") {
        auto g = r.gateway(doc);
        g.src = src;
        out_.gateways.push_back(std::move(g));
      } else if (kind == "AuthorizationPolicy") {
        auto a = r.authorization_policy(doc);
        a.src = src;
        out_.policies.push_back(std::move(a));
      } else if (kind == "RequestAuthentication") {
        auto a = r.request_authentication(doc);
        a.src = src;
        out_.request_authns.push_back(std::move(a));
      } else if (kind == "VirtualService") {  // waypoint routing: waypoint_loader.h
        auto v = read_virtual_service(r, doc, r.meta(doc, true));
        v.file = src.file, v.object = src.object;
        out_.l7.virtual_services.push_back(std::move(v));
      } else if (kind == "DestinationRule") {
        auto d = read_destination_rule(r, doc, r.meta(doc, true));
        d.file = src.file, d.object = src.object;
        out_.l7.destination_rules.push_back(std::move(d));
      } else if (kind == "HTTPRoute" || kind == "GRPCRoute") {
        auto g = read_gateway_route(r, doc, r.meta(doc, true), kind);
        g.file = src.file, g.object = src.object;
        out_.l7.gateway_routes.push_back(std::move(g));
      } else if (kind == "ConfigMap") {  // MeshConfig: mesh_config.h
        mesh_config(r, doc, src);
      } else if (kind == "Telemetry") {  // telemetry.h
        auto t = read_telemetry(r, doc, r.meta(doc, true));
        t.file = src.file, t.object = src.object;
        out_.telemetries.push_back(std::move(t));
      } else if (kind == "RateLimitPolicy" || kind == "EnvoyFilter") {  // ratelimit_loader.h
        auto p = kind == "RateLimitPolicy" ? std::optional(read_rate_limit_policy(r, doc, r.meta(doc, true)))
                                           : read_envoy_filter_rate_limits(r, doc, r.meta(doc, true));
        if (!p) {
          diags_.push_back({Severity::Warning, file_, name, "spec.configPatches",
                            "EnvoyFilter has no rate limit patch; not applied (waypoints take no other Envoy config)"});
        } else {
          p->file = src.file, p->object = src.object;
          for (const auto& w : p->warnings) diags_.push_back({Severity::Warning, file_, name, "", w});
          out_.rate_limits.push_back(std::move(*p));
        }
      }
    } catch (const FieldError& e) {
      diags_.push_back({Severity::Error, file_, name, e.field, e.message + "; object ignored"});
    } catch (const YAML::Exception& e) {
      diags_.push_back({Severity::Error, file_, name, "", std::string("YAML: ") + e.what() + "; object ignored"});
    }
  }

 private:
  // istiod reads MeshConfig from the ConfigMap `istio` in its namespace, key `mesh` (YAML text).
  // Any other ConfigMap is application data: ignored, as istiod ignores it.
  void mesh_config(Reader& r, const YAML::Node& doc, const SourceRef& src) {
    const ObjectMeta meta = r.meta(doc, true);
    if (meta.name != kMeshConfigMapName || meta.ns != kSystemNamespace) {
      diags_.push_back({Severity::Info, file_, src.object, "",
                        "ConfigMap is not the mesh config (istio-system/istio); ignored"});
      return;
    }
    const YAML::Node data = Reader::child(doc, "data");
    std::string text;
    if (Reader::present(doc, "data")) {
      r.expect_map(data, "data");
      r.opt_str(data, "data", "mesh", text);
    }
    std::vector<std::pair<std::string, std::string>> errors;
    MeshConfigObject m = read_mesh_config(r, text, "data.mesh", errors);
    for (auto& [field, message] : errors) diags_.push_back({Severity::Error, file_, src.object, field, message});
    m.file = src.file, m.object = src.object;
    if (out_.mesh) {
      diags_.push_back({Severity::Error, file_, src.object, "",
                        "a second mesh config (the first is in " + out_.mesh->file + "); ignored"});
      return;
    }
    out_.mesh = std::move(m);
  }

  void error(const std::string& object, const std::string& field, std::string message) {
    diags_.push_back({Severity::Error, file_, object, field, std::move(message) + "; object ignored"});
  }

  const std::string& file_;
  ResourceSet& out_;
  Diagnostics& diags_;
};

// Splits a YAML stream at "---" document markers so that a syntax error in one document
// loses only that document (yaml-cpp's LoadAll gives up on the whole stream). Returns
// (first line number, text) per document.
std::vector<std::pair<size_t, std::string>> split_documents(std::string_view text) {
  std::vector<std::pair<size_t, std::string>> docs;
  std::string cur;
  size_t cur_line = 1, line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t eol = text.find('\n', pos);
    const size_t end = eol == std::string_view::npos ? text.size() : eol;
    std::string_view line = text.substr(pos, end - pos);
    if (eol == std::string_view::npos && line.empty()) break;  // text ended with a newline
    ++line_no;
    const bool marker =
        line.substr(0, 3) == "---" && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    if (marker) {
      docs.emplace_back(cur_line, std::move(cur));
      cur.clear();
      cur_line = line_no;
      // Content after the marker on the same line belongs to the new document.
      std::string_view rest = line.substr(3);
      cur.append(rest).append("\n");
    } else {
      cur.append(line).append("\n");
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  docs.emplace_back(cur_line, std::move(cur));
  return docs;
}

template <typename T>
void dedupe(std::vector<T>& items, std::string_view kind, Diagnostics& diags) {
  std::map<std::pair<std::string, std::string>, std::string> seen;  // -> file of the first
  std::vector<T> kept;
  kept.reserve(items.size());
  for (auto& item : items) {
    auto key = std::make_pair(item.meta.ns, item.meta.name);
    auto [it, inserted] = seen.emplace(key, item.src.file);
    if (!inserted) {
      diags.push_back({Severity::Error, item.src.file, item.src.object, "metadata.name",
                       "duplicate " + std::string(kind) + " (first defined in " + it->second + "); object ignored"});
      continue;
    }
    kept.push_back(std::move(item));
  }
  items = std::move(kept);
}

// The L7 routing objects (waypoint_resources.h) carry name/ns/file/object directly. HTTPRoute
// and GRPCRoute share a vector; their kind is part of the key.
template <typename T>
void dedupe_l7(std::vector<T>& items, Diagnostics& diags) {
  std::map<std::string, std::string> seen;  // kind ns/name -> file of the first
  std::vector<T> kept;
  kept.reserve(items.size());
  for (auto& item : items) {
    auto [it, inserted] = seen.emplace(item.object, item.file);
    if (!inserted) {
      diags.push_back({Severity::Error, item.file, item.object, "metadata.name",
                       "duplicate " + item.object.substr(0, item.object.find(' ')) + " (first defined in " + it->second +
                           "); object ignored"});
      continue;
    }
    kept.push_back(std::move(item));
  }
  items = std::move(kept);
}

}  // namespace

void parse_manifests(std::string_view text, const std::string& file, ResourceSet& out, Diagnostics& diags) {
  if (text.size() > kMaxManifestBytes) {
    diags.push_back(
        {Severity::Error, file, "", "", "larger than " + std::to_string(kMaxManifestBytes) + " bytes; file ignored"});
    return;
  }
  DocumentParser parser(file, out, diags);
  size_t doc_no = 0;
  for (auto& [line, body] : split_documents(text)) {
    ++doc_no;
    const std::string label = "document " + std::to_string(doc_no) + " (line " + std::to_string(line) + ")";
    YAML::Node doc;
    try {
      doc = YAML::Load(body);
    } catch (const YAML::Exception& e) {
      std::string msg = "invalid YAML";
      if (!e.mark.is_null()) {
        msg += " at line " + std::to_string(line + static_cast<size_t>(e.mark.line)) + ", column " +
               std::to_string(e.mark.column + 1);
      }
      diags.push_back({Severity::Error, file, label, "", msg + ": " + e.msg + "; document ignored"});
      continue;
    } catch (const std::exception& e) {
      diags.push_back({Severity::Error, file, label, "", std::string("invalid YAML: ") + e.what()});
      continue;
    }
    try {
      parser.object(doc, label);
    } catch (const std::exception& e) {
      // Defensive: the readers convert their own failures; anything else (bad_alloc on a
      // pathological document, a yaml-cpp conversion) still loses only this document.
      diags.push_back({Severity::Error, file, label, "", std::string("unreadable: ") + e.what()});
    }
  }
}

common::Result<std::vector<std::string>> manifest_files(const std::string& dir,
                                                        const std::vector<std::string>& exclude) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return common::make_error(dir + ": cannot list directory: " + ec.message());
  std::set<fs::path> excluded;
  for (const auto& e : exclude) {
    std::error_code ec2;
    excluded.insert(fs::weakly_canonical(e, ec2));
  }
  std::vector<std::string> files;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return common::make_error(dir + ": cannot list directory: " + ec.message());
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    if (name.empty() || name[0] == '.') continue;
    const std::string ext = p.extension().string();
    if (ext != ".yaml" && ext != ".yml" && ext != ".json") continue;
    std::error_code ec2;
    if (!it->is_regular_file(ec2)) continue;
    if (excluded.count(fs::weakly_canonical(p, ec2))) continue;
    files.push_back(p.string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

common::Result<ResourceSet> load_directory(const std::string& dir, Diagnostics& diags,
                                           const std::vector<std::string>& exclude) {
  auto files = manifest_files(dir, exclude);
  if (!files) return common::make_error(files.error());
  ResourceSet out;
  for (const std::string& file : *files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      diags.push_back({Severity::Error, file, "", "", "cannot open file; file ignored"});
      continue;
    }
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (!ec && size > kMaxManifestBytes) {
      diags.push_back(
          {Severity::Error, file, "", "", "larger than " + std::to_string(kMaxManifestBytes) + " bytes; file ignored"});
      continue;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
      diags.push_back({Severity::Error, file, "", "", "read error; file ignored"});
      continue;
    }
    parse_manifests(buf.str(), file, out, diags);
  }
  remove_duplicates(out, diags);
  return out;
}

void remove_duplicates(ResourceSet& set, Diagnostics& diags) {
  dedupe(set.namespaces, "Namespace", diags);
  dedupe(set.service_accounts, "ServiceAccount", diags);
  dedupe(set.pods, "Pod", diags);
  dedupe(set.workload_entries, "WorkloadEntry", diags);
  dedupe(set.services, "Service", diags);
  dedupe(set.endpoint_slices, "EndpointSlice", diags);
  dedupe(set.gateways, "Gateway", diags);
  dedupe(set.policies, "AuthorizationPolicy", diags);
  dedupe(set.request_authns, "RequestAuthentication", diags);
  dedupe_l7(set.l7.virtual_services, diags);
  dedupe_l7(set.l7.destination_rules, diags);
  dedupe_l7(set.l7.gateway_routes, diags);
  dedupe_l7(set.l7.istio_gateways, diags);
  dedupe_l7(set.rate_limits, diags);
  dedupe_l7(set.telemetries, diags);
}

}  // namespace controlplane
