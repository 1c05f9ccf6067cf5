// The ingress gateway's listeners as the data path reads them (from Envoy v3 Listener +
// HttpConnectionManager + DownstreamTlsContext, waypoint/xds/listener_convert.h): istiod's
// gateway listener `0.0.0.0_<port>` with one filter chain per Gateway server. A plain chain
// serves HTTP with its RDS route (`http.<port>`); TLS chains select by SNI (server_names, `*.x`
// wildcards; empty = any) and name the certificate by the SDS secret istiod writes for a
// server's credentialName (`kubernetes://<name>`), read from files (ingress/tls_terminator.h);
// a MUTUAL server's chain also names the CA that client certificates must chain to.
// Plain values; immutable once published in a ConfigSnapshot.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace waypoint {

struct ListenerChain {
  std::vector<std::string> server_names;  // SNI; empty = any name
  std::string route_name;                 // the HCM's RDS route_config_name
  std::string credential_name;            // "" = plaintext chain; else the Secret's name
  // Client certificates (Istio MUTUAL; OPTIONAL_MUTUAL = verified when sent, not required).
  // Invariant: at most one of ca_credential / ca_file is set; require_client_cert implies one is.
  bool require_client_cert = false;
  std::string ca_credential;              // SDS `kubernetes://<name>`: `<name>` ("x-cacert" = x's ca.crt)
  std::string ca_file;                    // SDS `file-root:<path>`: a PEM bundle on the gateway
  std::vector<std::string> client_sans;   // exact SANs a client certificate must carry one of
  bool verifies_clients() const { return !ca_credential.empty() || !ca_file.empty(); }
};

struct GatewayListener {
  std::string name;
  std::string address;  // the listen address istiod writes (0.0.0.0)
  uint16_t port = 0;
  std::vector<ListenerChain> chains;  // all plaintext (exactly one) or all TLS
  bool tls() const { return !chains.empty() && !chains.front().credential_name.empty(); }
};

}  // namespace waypoint
