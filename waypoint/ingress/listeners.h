// GatewayListeners: the ingress gateway role's downstream listeners (PROXY_TYPE=router,
// docs/ingress.md). Every Listener in the published ConfigSnapshot (istiod's `0.0.0.0_<port>`,
// listener_model.h) gets its port opened: one SO_REUSEPORT acceptor per worker, like the HBONE
// port. A plaintext listener's connections go to Proxy::serve_gateway() with its chain's RDS
// route; a TLS listener's through tls_terminator first (SNI picks the chain, hence the route
// and certificate). A changed listener applies to the next connection (its serving state is an
// atomically replaced snapshot; certificates are re-read then); a removed one closes its port
// (accepted connections finish). A port that cannot be bound, or a TLS listener whose
// certificate files cannot be read, is logged and retried at the next snapshot.
// Threading: construct, reconcile(), close_all() and ports() on the control thread; accept
// loops run on the workers and only touch their own acceptor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/runtime.h"
#include "waypoint/config_source.h"
#include "waypoint/proxy.h"

namespace waypoint::ingress {

class GatewayListeners {
 public:
  // `credential_dir`: where Kubernetes TLS Secrets are mounted (`<dir>/<name>/tls.crt|tls.key`).
  GatewayListeners(common::Runtime& rt, Proxy& proxy, std::string listen_address, uint32_t mark,
                   std::string credential_dir);
  ~GatewayListeners();
  GatewayListeners(const GatewayListeners&) = delete;
  GatewayListeners& operator=(const GatewayListeners&) = delete;

  void reconcile(const ConfigSnapshot& config);
  void close_all();
  std::vector<uint16_t> ports() const;

  struct Port;

 private:
  common::Runtime& rt_;
  Proxy& proxy_;
  std::string listen_address_;
  uint32_t mark_;
  std::string credential_dir_;
  std::map<uint16_t, std::shared_ptr<Port>> open_;
};

}  // namespace waypoint::ingress
