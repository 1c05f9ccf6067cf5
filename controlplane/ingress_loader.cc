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
      r.expect_strict_map(tls, tp, {"mode", "credentialName", "httpsRedirect"});
      r.opt_str(tls, tp, "mode", s.tls_mode);
      r.opt_str(tls, tp, "credentialName", s.credential_name);
      if (Reader::present(tls, "httpsRedirect")) fail(join(tp, "httpsRedirect"), "not supported by this gateway");
    }
    if (s.protocol == "HTTPS") {
      if (s.tls_mode != "SIMPLE")
        fail(join(path, "tls.mode"), "HTTPS servers need mode SIMPLE (the only mode supported)");
      if (s.credential_name.empty()) fail(join(path, "tls.credentialName"), "missing required field for HTTPS");
    } else if (!s.tls_mode.empty() || !s.credential_name.empty()) {
      fail(join(path, "tls"), "TLS settings on an HTTP server");
    }
    g.servers.push_back(std::move(s));
  });
  if (g.servers.empty()) fail("spec.servers", "at least one server is required");
  return g;
}

}  // namespace controlplane
