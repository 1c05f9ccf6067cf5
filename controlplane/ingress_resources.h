// The ingress gateway's configuration objects as written: networking.istio.io Gateway
// (`selector` picks the gateway pods, `servers` the ports, protocols, hosts and TLS), and the
// listeners of a gateway.networking.k8s.io Gateway of class `istio` (K8sGatewayListener, held
// by GatewayObject in k8s_resources.h). Read by ingress_loader.cc, compiled with the
// VirtualServices bound to it (`gateways: [ns/name]`) or the HTTPRoutes whose parentRefs name
// it by the waypoint compiler's ingress part (docs/ingress.md). Plain values; no behaviour.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace controlplane {

struct IstioGatewayServer {
  uint16_t port = 0;               // port.number
  std::string port_name;           // port.name
  std::string protocol;            // HTTP | HTTPS (upper-cased)
  std::vector<std::string> hosts;  // "[ns/]host", "*", "*.suffix"
  std::string tls_mode;            // "" | SIMPLE | MUTUAL | OPTIONAL_MUTUAL
  std::string credential_name;     // tls.credentialName (a TLS Secret in the gateway's namespace)
  // MUTUAL / OPTIONAL_MUTUAL: the client CA is tls.caCertificates (an absolute path on the
  // gateway) or else the Secret's ca.crt (istiod's `<credentialName>-cacert`); subjectAltNames
  // restrict the accepted client certificates (exact names).
  std::string ca_certificates;
  std::vector<std::string> subject_alt_names;
  bool https_redirect = false;     // tls.httpsRedirect: its virtual hosts answer 301 to https
  std::string path;                // "spec.servers[i]" for diagnostics
};

// One listener of a Kubernetes Gateway (class istio). Invariant (checked by the reader): HTTPS
// listeners terminate TLS with exactly one Secret in the Gateway's namespace.
struct K8sGatewayListener {
  std::string name;  // listeners[i].name (sectionName in parentRefs)
  uint16_t port = 0;
  std::string protocol;          // HTTP | HTTPS
  std::string hostname;          // "" = any; "host" or "*.suffix"
  std::string credential_name;   // HTTPS: tls.certificateRefs[0].name (a TLS Secret)
  bool routes_from_all = false;  // allowedRoutes.namespaces.from: All (default Same)
  // allowedRoutes.kinds (HTTPRoute, GRPCRoute); empty = both, the default for HTTP/HTTPS.
  std::vector<std::string> route_kinds;
  std::string path;              // "spec.listeners[i]" for diagnostics
};

struct IstioGatewayObject {
  std::string name, ns;
  std::string file, object;
  std::map<std::string, std::string> selector;  // pod labels
  std::vector<IstioGatewayServer> servers;
};

}  // namespace controlplane
