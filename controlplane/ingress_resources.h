// The ingress gateway's configuration objects as written: networking.istio.io Gateway
// (`selector` picks the gateway pods, `servers` the ports, protocols, hosts and TLS). Read by
// ingress_loader.cc, compiled with the VirtualServices bound to it (`gateways: [ns/name]`) by
// the waypoint compiler's ingress part (docs/ingress.md). Plain values; no behaviour.
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
  std::string tls_mode;            // "" | SIMPLE
  std::string credential_name;     // tls.credentialName (a TLS Secret in the gateway's namespace)
  std::string path;                // "spec.servers[i]" for diagnostics
};

struct IstioGatewayObject {
  std::string name, ns;
  std::string file, object;
  std::map<std::string, std::string> selector;  // pod labels
  std::vector<IstioGatewayServer> servers;
};

}  // namespace controlplane
