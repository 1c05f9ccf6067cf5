// Proxy: the ztunnel data plane for one workload (dedicated mode) — listeners 15001
// (outbound capture), 15006 (inbound plaintext) and 15008 (inbound HBONE) in the current
// network namespace, one SO_REUSEPORT acceptor per worker per listener so the kernel spreads
// connections and a connection stays on the worker that accepted it.
//
// Threading: configuration (snapshot) and TLS contexts are immutable objects published by the
// control thread through atomic shared_ptrs; workers do one atomic load per new connection.
// Each worker owns its HBONE pool, its list of inbound HBONE connections (for drain) and its
// copy of the local workload resolved in the current snapshot; no locks on the
// per-connection path. Connections that arrive before the first certificate wait for a
// signal from set_credentials()/set_credentials_error()/drain(), not a poll.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
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
class OnDemand;
namespace dns {
class DnsProxy;
}

// Which workload a proxy serves and where its sockets live.
struct ProxyTarget {
  WorkloadInfo workload;                // matched against the snapshot (namespace, name, SA)
  std::string uid;                      // pod UID from the node agent ("" in dedicated mode)
  std::shared_ptr<const Netns> netns;   // nullptr = ztunnel's own namespace (dedicated mode)
};

// Test seam: what a single-host test without root cannot get from the kernel (fixed ports,
// SO_ORIGINAL_DST from the in-pod REDIRECT, pod IPs to dial). The defaults are production's
// behaviour; production code never sets it. Set before start().
struct ProxySeams {
  std::optional<IpAddr> listen_ip;  // default: the wildcard address (dual stack per IPV6_ENABLED)
  // 0 = an ephemeral port, the same on every worker (see Proxy::bound_port).
  uint16_t outbound_port = kOutboundPort;
  uint16_t inbound_plaintext_port = kInboundPlaintextPort;
  uint16_t inbound_hbone_port = kInboundHbonePort;
  // Where a captured connection was going (default SO_ORIGINAL_DST); nullopt = unknown.
  std::function<std::optional<SocketAddr>(int fd)> original_dst;
  // Where a connection the proxy opens to `addr` really goes (default: `addr`).
  std::function<SocketAddr(const SocketAddr& addr)> dial_address;
  // Nameservers for on-demand DNS of hostname workloads (default: ztunnel's /etc/resolv.conf).
  std::optional<std::vector<SocketAddr>> dns_servers;
};

// One relayed connection as upstream's /config_dump lists it (workloadState.connections).
struct ConnectionView {
  bool inbound = false;
  std::string src;           // "ip:port" of the client
  std::string original_dst;  // where the client was going (outbound: the captured destination)
  std::string actual_dst;    // where we connected (HBONE: podIP:15008; inbound: the app)
  std::string protocol;      // "HBONE" | "TCP"
};

class Proxy {
 public:
  Proxy(common::Runtime& runtime, const Config& config, common::metrics::Registry& registry,
        ProxyTarget target);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  void set_seams(ProxySeams seams);
  // XDS_ON_DEMAND: an outbound destination unknown to the snapshot is demanded here and the
  // connection waits (bounded, OnDemand::kWait) for the answer before it is routed. Before start().
  void set_on_demand(std::shared_ptr<OnDemand> on_demand);
  // Binds every listener on every worker. Fails (naming the port) if one cannot be bound.
  common::Status start();
  // The port listener `port` (kOutboundPort, ...) is bound to: `port` itself unless a seam
  // moved it. 0 before start().
  uint16_t bound_port(uint16_t port) const;

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
  // Close everything still open (the termination deadline passed). Control thread, never a
  // worker's: returns once every worker has closed its connections and its byte-report loop
  // has flushed one last time and ended, so nothing of this proxy runs on after shutdown
  // proceeds. A worker that does not answer within `budget` (a stopped runtime) is left out.
  void force_close(std::chrono::milliseconds budget = std::chrono::seconds(1));
  // Byte-report loops running now, over all workers (0 once force_close() has returned).
  int report_loops_running() const;
  // After a CRL update: close the live HBONE connections (inbound and pooled outbound) whose
  // peer certificate chain the new CRLs revoke, counting each in
  // istio_crl_policy_rejections_total; their tunnels end with CERT_REVOKED.
  void close_revoked_peers();
  int64_t active_connections() const;
  // Control thread (admin): the connections being relayed now, collected from each worker by
  // a posted task. Waits at most `budget` in total; a worker that does not answer in time is
  // left out (a busy worker must not hang the admin endpoint).
  std::vector<ConnectionView> connections(std::chrono::milliseconds budget = std::chrono::milliseconds(500)) const;
  const ProxyTarget& target() const;

  struct Shared;
  struct Worker;

 private:
  common::Status start_dns();
  // After a certificate change: waiting connections re-check now (on their workers).
  void wake_certificate_waiters();

  common::Runtime& runtime_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<dns::DnsProxy> dns_;
  std::vector<std::shared_ptr<Worker>> workers_;
  uint16_t bound_ports_[3] = {0, 0, 0};  // outbound, inbound plaintext, inbound HBONE
};

}  // namespace ztunnel
