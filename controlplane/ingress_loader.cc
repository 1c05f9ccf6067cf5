#include "controlplane/ingress_loader.h"

#include <algorithm>
#include <cctype>

namespace controlplane {

using yaml::fail;
using yaml::index;
using yaml::join;
using yaml::Reader;

IstioGatewayObject read_istio_gateway(Reader& r, const YAML::Node& doc, const ObjectMeta& meta) {
  IstioGatewayObject g;
  g.name = meta.name;
  g.ns = meta.ns;
  if (!Reader::present(doc, "spec")) fail("spec", "missing required field");
  const YAML::Node spec = Reader::child(doc, "spec");
  r.expect_strict_map(spec, "spec", {"selector", "servers"});
  if (Reader::present(spec, "selector")) g.selector = r.string_map(Reader::child(spec, "selector"), "spec.selector");
  r.read_list(spec, "spec", "servers", [&](const YAML::Node& n, const std::string& path) {
    IstioGatewayServer s;
    s.path = path;
    r.expect_strict_map(n, path, {"port", "hosts", "tls", "name", "bind", "defaultEndpoint"});
    if (Reader::present(n, "bind")) fail(join(path, "bind"), "not supported by this gateway");
    if (Reader::present(n, "defaultEndpoint")) fail(join(path, "defaultEndpoint"), "not supported by this gateway");
    if (!Reader::present(n, "port")) fail(join(path, "port"), "missing required field");
    const YAML::Node port = Reader::child(n, "port");
    const std::string pp = join(path, "port");
    r.expect_strict_map(port, pp, {"number", "name", "protocol", "targetPort"});
    if (!Reader::present(port, "number")) fail(join(pp, "number"), "missing required field");
    s.port = r.port(Reader::child(port, "number"), join(pp, "number"));
    r.opt_str(port, pp, "name", s.port_name);
    r.opt_str(port, pp, "protocol", s.protocol);
    std::transform(s.protocol.begin(), s.protocol.end(), s.protocol.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (s.protocol != "HTTP" && s.protocol != "HTTPS")
      fail(join(pp, "protocol"), "'" + s.protocol + "' is not supported (HTTP or HTTPS)");
    if (!Reader::present(n, "hosts")) fail(join(path, "hosts"), "missing required field");
    s.hosts = r.str_list(Reader::child(n, "hosts"), join(path, "hosts"));
    if (s.hosts.empty()) fail(join(path, "hosts"), "at least one host is required");
    for (size_t i = 0; i < s.hosts.size(); ++i) {
      if (s.hosts[i].empty()) fail(index(join(path, "hosts"), i), "empty host");
    }
    if (Reader::present(n, "tls")) {
      const YAML::Node tls = Reader::child(n, "tls");
      const std::string tp = join(path, "tls");
      r.expect_strict_map(tls, tp, {"mode", "credentialName", "httpsRedirect", "caCertificates", "subjectAltNames"});
      r.opt_str(tls, tp, "mode", s.tls_mode);
      r.opt_str(tls, tp, "credentialName", s.credential_name);
      r.opt_str(tls, tp, "caCertificates", s.ca_certificates);
      if (Reader::present(tls, "subjectAltNames"))
        s.subject_alt_names = r.str_list(Reader::child(tls, "subjectAltNames"), join(tp, "subjectAltNames"));
      for (size_t i = 0; i < s.subject_alt_names.size(); ++i) {
        if (s.subject_alt_names[i].empty()) fail(index(join(tp, "subjectAltNames"), i), "empty name");
      }
      if (Reader::present(tls, "httpsRedirect"))
        s.https_redirect = r.boolean(Reader::child(tls, "httpsRedirect"), join(tp, "httpsRedirect"));
    }
    if (s.protocol == "HTTPS") {
      if (s.tls_mode != "SIMPLE" && s.tls_mode != "MUTUAL" && s.tls_mode != "OPTIONAL_MUTUAL")
        fail(join(path, "tls.mode"), "HTTPS servers need mode SIMPLE, MUTUAL or OPTIONAL_MUTUAL");
      if (s.credential_name.empty()) fail(join(path, "tls.credentialName"), "missing required field for HTTPS");
      const bool mutual = s.tls_mode != "SIMPLE";
      if (!mutual && !s.ca_certificates.empty())
        fail(join(path, "tls.caCertificates"), "only for mode MUTUAL or OPTIONAL_MUTUAL");
      if (!mutual && !s.subject_alt_names.empty())
        fail(join(path, "tls.subjectAltNames"), "only for mode MUTUAL or OPTIONAL_MUTUAL");
      if (!s.ca_certificates.empty() && s.ca_certificates[0] != '/')
        fail(join(path, "tls.caCertificates"), "an absolute path on the gateway is required");
    } else if (!s.tls_mode.empty() || !s.credential_name.empty() || !s.ca_certificates.empty() ||
               !s.subject_alt_names.empty()) {
      fail(join(path, "tls"), "TLS settings on an HTTP server (only httpsRedirect)");
    }
    g.servers.push_back(std::move(s));
  });
  if (g.servers.empty()) fail("spec.servers", "at least one server is required");
  return g;
}

std::vector<K8sGatewayListener> read_k8s_gateway_listeners(Reader& r, const YAML::Node& spec, const ObjectMeta& meta) {
  r.expect_strict_map(spec, "spec", {"gatewayClassName", "listeners", "addresses", "infrastructure"});
  if (Reader::present(spec, "addresses")) fail("spec.addresses", "not supported by this gateway");
  std::vector<K8sGatewayListener> out;
  r.read_list(spec, "spec", "listeners", [&](const YAML::Node& n, const std::string& path) {
    K8sGatewayListener l;
    l.path = path;
    r.expect_strict_map(n, path, {"name", "hostname", "port", "protocol", "tls", "allowedRoutes"});
    r.opt_str(n, path, "name", l.name);
    if (l.name.empty()) fail(join(path, "name"), "missing required field");
    for (const auto& other : out) {
      if (other.name == l.name) fail(join(path, "name"), "duplicate listener name '" + l.name + "'");
    }
    if (!Reader::present(n, "port")) fail(join(path, "port"), "missing required field");
    l.port = r.port(Reader::child(n, "port"), join(path, "port"));
    r.opt_str(n, path, "protocol", l.protocol);
    if (l.protocol != "HTTP" && l.protocol != "HTTPS")
      fail(join(path, "protocol"), "'" + l.protocol + "' is not supported (HTTP or HTTPS)");
    r.opt_str(n, path, "hostname", l.hostname);
    std::transform(l.hostname.begin(), l.hostname.end(), l.hostname.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!l.hostname.empty()) {
      const std::string_view bare =
          l.hostname.starts_with("*.") ? std::string_view(l.hostname).substr(2) : std::string_view(l.hostname);
      if (!yaml::valid_dns_subdomain(bare)) fail(join(path, "hostname"), "not a hostname or *.suffix");
    }
    if (Reader::present(n, "tls")) {
      const YAML::Node tls = Reader::child(n, "tls");
      const std::string tp = join(path, "tls");
      if (l.protocol != "HTTPS") fail(tp, "TLS settings on an HTTP listener");
      r.expect_strict_map(tls, tp, {"mode", "certificateRefs", "options", "frontendValidation"});
      if (Reader::present(tls, "frontendValidation"))
        fail(join(tp, "frontendValidation"), "mutual TLS is not supported yet");
      std::string mode = "Terminate";
      r.opt_str(tls, tp, "mode", mode);
      if (mode != "Terminate") fail(join(tp, "mode"), "'" + mode + "' is not supported (Terminate only)");
      size_t refs = 0;
      r.read_list(tls, tp, "certificateRefs", [&](const YAML::Node& c, const std::string& cp) {
        r.expect_strict_map(c, cp, {"group", "kind", "name", "namespace"});
        if (refs++ > 0) fail(cp, "only one certificateRef is supported");
        std::string group, kind = "Secret", ns = meta.ns;
        r.opt_str(c, cp, "group", group);
        r.opt_str(c, cp, "kind", kind);
        r.opt_str(c, cp, "namespace", ns);
        if (!(group.empty() || group == "core") || kind != "Secret")
          fail(cp, "only core Secrets are supported, got " + kind + (group.empty() ? "" : "." + group));
        if (ns != meta.ns)
          fail(join(cp, "namespace"), "a Secret in another namespace (ReferenceGrant) is not supported");
        r.opt_str(c, cp, "name", l.credential_name);
        if (l.credential_name.empty()) fail(join(cp, "name"), "missing required field");
      });
    }
    if (l.protocol == "HTTPS" && l.credential_name.empty())
      fail(join(path, "tls.certificateRefs"), "missing required field for HTTPS");
    if (Reader::present(n, "allowedRoutes")) {
      const YAML::Node ar = Reader::child(n, "allowedRoutes");
      const std::string ap = join(path, "allowedRoutes");
      r.expect_strict_map(ar, ap, {"namespaces", "kinds"});
      if (Reader::present(ar, "kinds")) {
        r.read_list(ar, ap, "kinds", [&](const YAML::Node& k, const std::string& kp) {
          r.expect_strict_map(k, kp, {"group", "kind"});
          std::string kind;
          r.opt_str(k, kp, "kind", kind);
          if (kind != "HTTPRoute" && kind != "GRPCRoute")
            fail(join(kp, "kind"), "'" + kind + "' is not supported (HTTPRoute or GRPCRoute)");
          l.route_kinds.push_back(kind);
        });
      }
      if (Reader::present(ar, "namespaces")) {
        const YAML::Node ns = Reader::child(ar, "namespaces");
        const std::string np = join(ap, "namespaces");
        r.expect_strict_map(ns, np, {"from", "selector"});
        std::string from = "Same";
        r.opt_str(ns, np, "from", from);
        if (from == "Selector" || Reader::present(ns, "selector"))
          fail(join(np, "from"), "Selector is not supported; use Same or All");
        if (from != "Same" && from != "All") fail(join(np, "from"), "unknown value '" + from + "' (Same or All)");
        l.routes_from_all = from == "All";
      }
    }
    out.push_back(std::move(l));
  });
  return out;  // none: compiled to nothing, with a Warning (waypoint_compiler.cc)
}

}  // namespace controlplane
