// Internal state shared by the proxy's files (proxy.cc, listeners.cc, outbound.cc, inbound.cc).
// Not part of the public API. Threading as described in proxy.h.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>

#include "hbone/connection.h"
#include "hbone/copy.h"
#include "hbone/pool.h"
#include "hbone/server.h"
#include "hbone/settings.h"
#include "common/rbac/authz.h"
#include "ztunnel/proxy/connection_result.h"
#include "ztunnel/proxy/port_guard.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/proxy/proxy_error.h"
#include "ztunnel/state/on_demand.h"
#include "ztunnel/state/route.h"
#include "ztunnel/proxy/task_failure.h"

namespace ztunnel {
namespace dns {
class HostLookup;
}

// A connection the in-pod rules REDIRECTed to one of our listeners: who called, and where it
// was going (SO_ORIGINAL_DST). nullopt (logged, naming `listener`) when that cannot be read.
struct Captured {
  boost::asio::ip::tcp::endpoint local;
  IpAddr client_ip;
  std::string src_addr;
  IpAddr dst_ip;
  uint16_t dst_port = 0;
  std::string dst_addr;
};
// `seams` supplies the original destination in tests.
std::optional<Captured> captured(boost::asio::ip::tcp::socket& sock, const char* listener, const ProxySeams& seams);

struct Proxy::Shared {
  Config cfg;
  ProxyTarget target;
  std::function<int(int)> socket_factory;  // sockets in the workload's namespace
  TrafficMetrics metrics;
  TaskFailures task_failures;
  ProxySeams seams;  // set before start(), read-only after
  std::shared_ptr<OnDemand> on_demand;  // XDS_ON_DEMAND only; set before start()
  hbone::Settings server_settings;
  hbone::Settings client_settings;
  std::atomic<std::shared_ptr<const Snapshot>> snapshot;
  std::atomic<std::shared_ptr<const hbone::TlsContexts>> tls;
  std::atomic<std::shared_ptr<const std::string>> tls_error;  // set while fetches fail with no certificate
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active{0};
  std::atomic<int> report_loops{0};  // byte-report loops whose coroutine has not completed
  bool orig_src = false;  // connect to local apps from the client's own IP
  PortGuard port_guard;   // ztunnel's own ports: never a target of inbound traffic

  Shared(const Config& c, common::metrics::Registry& r, ProxyTarget t);
  common::metrics::Registry& registry;

  // The workload this proxy serves, looked up in `snap` (a scan: workers use their cache).
  const Workload* local_workload(const Snapshot& snap) const;
  // Where the proxy's own connection to `addr` goes (the dial_address seam).
  SocketAddr dial_address(const SocketAddr& addr) const { return seams.dial_address ? seams.dial_address(addr) : addr; }
};

struct Proxy::Worker : std::enable_shared_from_this<Proxy::Worker> {
  boost::asio::io_context& io;
  std::shared_ptr<Proxy::Shared> shared;
  std::shared_ptr<hbone::Pool> pool;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors;
  std::list<std::weak_ptr<hbone::Connection>> inbound;  // for drain
  std::list<std::weak_ptr<boost::asio::ip::tcp::socket>> sockets;  // every proxied client socket
  size_t prune_sockets_at = 64;
  size_t prune_inbound_at = 64;

  // Live inbound connections and what they were authorized as, so a policy change can close
  // the ones it now denies (upstream's late rejection).
  struct Authorized {
    ConnectionInfo info;
    std::weak_ptr<hbone::Stream> stream;          // HBONE inbound
    std::weak_ptr<boost::asio::ip::tcp::socket> client;  // plaintext inbound
    std::weak_ptr<boost::asio::ip::tcp::socket> app;
    std::optional<ProxyError>* late_rejection = nullptr;  // set when a policy change closes it (owner's frame)
  };
  std::list<Authorized> authorized;
  // Keeps `a` in `authorized` for the handle's lifetime (the relay's).
  struct Remembered {
    std::list<Authorized>& list;
    std::list<Authorized>::iterator it;
    Remembered(std::list<Authorized>& l, std::list<Authorized>::iterator i) : list(l), it(i) {}
    ~Remembered() { list.erase(it); }
    Remembered(const Remembered&) = delete;
    Remembered& operator=(const Remembered&) = delete;
  };
  Remembered remember(Authorized a) { return Remembered{authorized, authorized.insert(authorized.end(), std::move(a))}; }

  // Relayed connections as /config_dump's workloadState "connections" shows them. A plain
  // list on this worker (no lock): Proxy::connections() reads it by posting to the worker.
  std::list<ConnectionView> live;
  struct Listed {
    std::list<ConnectionView>& list;
    std::list<ConnectionView>::iterator it;
    Listed(std::list<ConnectionView>& l, std::list<ConnectionView>::iterator i) : list(l), it(i) {}
    ~Listed() { list.erase(it); }
    Listed(const Listed&) = delete;
    Listed& operator=(const Listed&) = delete;
  };
  Listed list_live(ConnectionView c) { return Listed{live, live.insert(live.end(), std::move(c))}; }

  // Relays whose istio_tcp_*_bytes_total move while they run: every kByteReportInterval this
  // worker's flush loop hands each one's running totals to its ConnectionResult. The copy only
  // adds to plain fields and the loop runs on the same thread, so the data path pays no atomic
  // per chunk; the loop runs only while some relay is metered (idle proxies have no timer).
  // The loop is the worker's: `report_timer` paces it, `reporting` says it runs, and
  // force_close() cancels it (stop_reporting) and is told when it has ended, after one last
  // flush; Proxy::force_close() waits for that. Its exceptions are counted as Task::ByteReport
  // like the proxy's other spawned coroutines.
  struct Metered {
    hbone::CopyResult* copy;
    hbone::Stream* stream;  // HBONE relays: bytes delivered straight to the socket
    ConnectionResult* result;
    bool to_dst_is_to_stream;  // outbound and plaintext inbound; HBONE inbound is the reverse
  };
  std::list<Metered> metered;
  bool reporting = false;          // report_bytes_loop() is running
  // Spawned loops not yet completed: a loop's frame ends (clearing `reporting`, so a new relay
  // can start the next loop) before its completion handler runs, which is the loop's real end.
  int report_loops_alive = 0;
  bool reporting_stopped = false;  // shutdown: no loop starts again
  boost::asio::steady_timer report_timer;
  std::function<void()> reporting_done;  // stop_reporting()'s caller, told when the loop has ended
  struct MeterHandle {
    std::list<Metered>& list;
    std::list<Metered>::iterator it;
    MeterHandle(std::list<Metered>& l, std::list<Metered>::iterator i) : list(l), it(i) {}
    ~MeterHandle() { list.erase(it); }
    MeterHandle(const MeterHandle&) = delete;
    MeterHandle& operator=(const MeterHandle&) = delete;
  };
  // Meters `m` for the handle's lifetime (the copy's; `m`'s pointers must outlive it).
  MeterHandle meter(Metered m);
  void report_bytes();
  boost::asio::awaitable<void> report_bytes_loop();
  // Shutdown: the loop flushes once more and ends; none starts after this. `done` runs on this
  // worker once no loop runs (at once if none does).
  void stop_reporting(std::function<void()> done);
  void recheck_policies(const std::shared_ptr<const Snapshot>& snap);
  void close_revoked_peers();

  // Outbound HBONE relays, so a CRL update that closes their pooled connection can attribute
  // their end to CERT_REVOKED (upstream) rather than to the relay error it causes.
  struct OutboundTunnel {
    std::weak_ptr<hbone::Stream> stream;
    std::optional<ProxyError>* revoked;  // the relay's outcome slot (owner's frame)
  };
  std::list<OutboundTunnel> outbound_tunnels;
  struct TunnelHandle {
    std::list<OutboundTunnel>& list;
    std::list<OutboundTunnel>::iterator it;
    TunnelHandle(std::list<OutboundTunnel>& l, std::list<OutboundTunnel>::iterator i) : list(l), it(i) {}
    ~TunnelHandle() { list.erase(it); }
    TunnelHandle(const TunnelHandle&) = delete;
    TunnelHandle& operator=(const TunnelHandle&) = delete;
  };
  TunnelHandle remember_tunnel(OutboundTunnel t) {
    return TunnelHandle{outbound_tunnels, outbound_tunnels.insert(outbound_tunnels.end(), std::move(t))};
  }
  // Sets CERT_REVOKED on the outbound relays riding a connection whose server chain the
  // installed CRLs now revoke (called just before the pool closes those connections).
  void mark_revoked_tunnels();

  // On-demand DNS for hostname-only workloads (outbound.cc), created on first use from
  // ProxySeams::dns_servers or ztunnel's /etc/resolv.conf. Per worker: its cache needs no lock.
  std::shared_ptr<dns::HostLookup> host_lookup;
  dns::HostLookup& lookup();

  Worker(boost::asio::io_context& io_, std::shared_ptr<Proxy::Shared> s);

  // The local workload in `snap`, resolved on the first call after a snapshot change and
  // remembered for the rest of that snapshot's life (keyed by its control block, so a new
  // snapshot at a recycled address is still seen as new). Null if it is not in `snap`.
  const Workload* local_workload(const SnapshotConstSharedPtr& snap);
  std::weak_ptr<const Snapshot> local_snapshot;
  const Workload* local = nullptr;

  // Coroutines waiting in await_tls() for a certificate; wake_certificate_waiters() cancels
  // their timers so they re-check at once.
  std::list<boost::asio::steady_timer*> certificate_waiters;
  void wake_certificate_waiters();

  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acc, uint16_t port);

  // Outbound (outbound.cc): capture -> route -> open upstream -> relay.
  struct OutboundRequest;
  struct Upstream;
  boost::asio::awaitable<void> handle_outbound(boost::asio::ip::tcp::socket sock);
  ProxyResult<OutboundRequest> route(const Snapshot& snap, const Workload* source, const Captured& cap);
  // Resolves the route's hostname when it has one (counts istio_on_demand_dns_total); a
  // failure is an early deny, as upstream's build_request error.
  boost::asio::awaitable<ProxyResult<bool>> resolve_on_demand(OutboundRequest& req, const Captured& cap);
  // XDS_ON_DEMAND: demands `ip` (alias network/ip) and waits at most OnDemand::kWait for the
  // answer. The snapshot that answered it, or null (known absent, or no answer in time).
  boost::asio::awaitable<SnapshotConstSharedPtr> demand_address(std::string_view network, const IpAddr& ip);
  // `snap` if it knows `ip` (a workload or a service VIP); else demand_address and the
  // worker's current snapshot if it knows `ip` by then, else the answering one (or `snap` when
  // unanswered).
  boost::asio::awaitable<SnapshotConstSharedPtr> demand_unknown(SnapshotConstSharedPtr snap, std::string_view network,
                                                                const IpAddr& ip);
  // Completes req.parties (mTLS once there is a certificate).
  boost::asio::awaitable<ProxyResult<Upstream>> open_upstream(OutboundRequest& req, const Captured& cap);

  // Inbound (inbound.cc): context -> authorize and connect the app -> relay.
  struct InboundContext;
  boost::asio::awaitable<void> handle_inbound_plain(boost::asio::ip::tcp::socket sock);
  ProxyResult<InboundContext> inbound_context(const SnapshotConstSharedPtr& snap, const std::string& authority,
                                              const hbone::PeerInfo& peer);
  boost::asio::awaitable<ProxyResult<std::shared_ptr<boost::asio::ip::tcp::socket>>> authorize_and_connect(
      const Snapshot& snap, const ConnectionInfo& info, const Workload& local, const std::string& src_addr,
      const std::string& dst_addr);
  // Inbound HBONE (15008): TLS + HTTP/2 once a certificate is there (await_tls).
  boost::asio::awaitable<void> serve_hbone(boost::asio::ip::tcp::socket sock);
  // The proxy's TLS contexts; before the first certificate, waits for it up to
  // kCertificateWait. Null after that, when draining, or at once when the fetch failed; the
  // reason is then in `why`.
  boost::asio::awaitable<std::shared_ptr<const hbone::TlsContexts>> await_tls(std::string& why);
  void handle_hbone_stream(std::shared_ptr<hbone::Stream> stream, std::shared_ptr<const hbone::PeerInfo> peer);
  boost::asio::awaitable<void> inbound_tunnel(std::shared_ptr<hbone::Stream> stream,
                                              std::shared_ptr<const hbone::PeerInfo> peer);
  void track(const std::shared_ptr<boost::asio::ip::tcp::socket>& s);
  void drain();
  // Closes what is still open and stops the byte-report loop; `done` as for stop_reporting().
  void force_close(std::function<void()> done);
};

// How often a live relay's bytes reach its counters (a scrape sees them at most this late).
inline constexpr std::chrono::seconds kByteReportInterval{1};

// How long a connection that arrives before the proxy's first certificate waits for it.
inline constexpr std::chrono::seconds kCertificateWait{10};

// ip of an endpoint with v4-mapped v6 turned back into v4.
IpAddr endpoint_ip(const boost::asio::ip::tcp::endpoint& ep);

// Counts a live proxied connection for drain (RAII).
struct ActiveGuard {
  std::atomic<int64_t>& n;
  explicit ActiveGuard(std::atomic<int64_t>& c) : n(c) { n.fetch_add(1, std::memory_order_relaxed); }
  ~ActiveGuard() { n.fetch_sub(1, std::memory_order_relaxed); }
  ActiveGuard(const ActiveGuard&) = delete;
  ActiveGuard& operator=(const ActiveGuard&) = delete;
};

// How a relay ended: a policy change that closed it, else the copy's I/O error, else cleanly.
std::optional<ProxyError> relay_outcome(const hbone::CopyResult& r, std::optional<ProxyError> late_rejection);

// The `baggage` value describing workload `w` (CONNECT requests and responses).
std::string baggage_of(const Workload& w);

}  // namespace ztunnel
