// Proxy: the ztunnel data plane for one workload (dedicated mode) — listeners 15001
// (outbound capture), 15006 (inbound plaintext) and 15008 (inbound HBONE) in the current
// network namespace, one SO_REUSEPORT acceptor per worker per listener so the kernel spreads
// connections and a connection stays on the worker that accepted it.
//
// Threading: configuration (snapshot) and TLS contexts are immutable objects published by the
// control thread through atomic shared_ptrs; workers do one atomic load per new connection.
// Each worker owns its HBONE pool and its list of inbound HBONE connections (for drain); no
// locks on the per-connection path.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/runtime.h"
#include "common/identity/tls.h"
#include "hbone/tls_glue.h"
#include "ztunnel/config.h"
#include "common/state/snapshot.h"
#include "ztunnel/proxy/traffic_metrics.h"

namespace ztunnel {

// Listener ports (kOutboundPort, kInboundHbonePort, ...) are defined in ztunnel/config.h.

class Netns;
namespace dns {
class DnsProxy;
}

// Which workload a proxy serves and where its sockets live.
struct ProxyTarget {
  WorkloadInfo workload;                // matched against the snapshot (namespace, name, SA)
  std::string uid;                      // pod UID from the node agent ("" in dedicated mode)
  std::shared_ptr<const Netns> netns;   // nullptr = ztunnel's own namespace (dedicated mode)
};

class Proxy {
 public:
  Proxy(common::Runtime& runtime, const Config& config, common::metrics::Registry& registry,
        ProxyTarget target);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Binds every listener on every worker. Fails (naming the port) if one cannot be bound.
  common::Status start();

  // Control thread: publish new config / certificate.
  void set_snapshot(SnapshotConstSharedPtr snapshot);
  common::Status set_credentials(std::shared_ptr<const common::tls::Credentials> creds);
  // The certificate fetch failed and there is no certificate: connections waiting for one
  // fail now with `why`, as do new ones, until set_credentials() succeeds.
  void set_credentials_error(const std::string& why);
  bool has_credentials() const;
  SnapshotConstSharedPtr snapshot() const;

  // Stop accepting, GOAWAY inbound HBONE connections and pooled ones; live tunnels go on.
  void drain();
  // Close everything still open (the termination deadline passed).
  void force_close();
  int64_t active_connections() const;
  const ProxyTarget& target() const;

  struct Shared;
  struct Worker;

 private:
  common::Status start_dns();

  common::Runtime& runtime_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<dns::DnsProxy> dns_;
  std::vector<std::shared_ptr<Worker>> workers_;
};

}  // namespace ztunnel
