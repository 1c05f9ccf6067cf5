// DnsProxy: ztunnel's per-pod DNS server on 15053 (UDP + TCP, localhost inside the pod's
// network namespace; istio-cni redirects the pod's port-53 traffic there).
//
// What it does with each query (dns_resolve.h has the naming rules):
//  * A/AAAA for a name the mesh owns (service hostnames with namespace search expansion,
//    headless pods, wildcard hosts) -> answered from the current Snapshot, authoritative, TTL
//    30 s, CNAME first when a search domain was stripped.
//  * Anything else -> forwarded verbatim to the upstream resolvers (ztunnel's own resolv.conf),
//    over the transport the client used (UDP -> UDP, TCP -> TCP). Each try uses a fresh
//    socket (random source port) marked with `mark` (SO_MARK) so the pod's redirect rules skip
//    it, and a fresh random id; the reply must match id and question or it is ignored. A try
//    that times out, fails, or gets SERVFAIL/REFUSED/NOTIMP moves to the next server;
//    `attempts` rounds over the list. If all fail the client gets SERVFAIL (or the last
//    upstream error reply). Upstream replies are relayed unchanged except for the id.
//  * Malformed query -> FORMERR (if a header could be read); opcode other than QUERY -> NOTIMP.
//  * UDP answers larger than 512 bytes (or the client's EDNS size) are truncated: no answers,
//    TC set, so the client retries over TCP.
//
// Bounds (no unbounded memory from a misbehaving pod): at most `max_inflight` forwarded queries
// at once (further ones get SERVFAIL immediately), at most `max_tcp_connections` client TCP
// connections (further ones are closed at once), TCP connections idle for `tcp_idle_timeout`
// are closed, a TCP client's queries are processed one at a time.
//
// Metrics (labels request_query_type, request_protocol, source_canonical_service,
// source_canonical_revision): istio_dns_requests_total for every parsed query,
// istio_dns_upstream_requests_total / _failures_total and
// istio_dns_upstream_request_duration_seconds for forwarded ones.
//
// Threading: everything runs on the executor of the sockets passed in, which must be an
// io_context run by ONE thread (a Runtime worker) — the proxy keeps its state unsynchronised.
// start()/stop() may be called from any thread. Snapshots are read through `snapshot()` once
// per query; the hostname index is shared by all proxies (HostnameIndex::shared_index). A proxy
// keeps the index (and so the snapshot) it last used until its next query after a change.
// Lifetime: create() returns a unique_ptr handle; destroying it stops the proxy. The running
// coroutines share the internal state, which is freed when the last one finishes. DnsMetrics
// must outlive that (in practice: the process).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include "common/admin/metrics.h"
#include "ztunnel/dns/resolv_conf.h"
#include "ztunnel/dns/resolve.h"
#include "common/state/snapshot.h"

namespace ztunnel::dns {

// The four DNS metric families; create once per process and share between proxies.
class DnsMetrics {
 public:
  explicit DnsMetrics(common::metrics::Registry& registry);

  common::metrics::CounterFamily& requests;
  common::metrics::CounterFamily& upstream_requests;
  common::metrics::CounterFamily& upstream_failures;
  common::metrics::HistogramFamily& upstream_duration;
};

// The pod the proxy serves.
struct DnsClient {
  std::string ns{};                  // namespace: search-domain expansion and service preference
  std::string network{};             // only VIPs on this network are returned
  std::string canonical_service{};   // metric labels ("" -> "unknown")
  std::string canonical_revision{};  // metric labels ("" -> "unknown")
};

struct DnsProxyInputs {
  // Already bound (and, for TCP, listening) sockets; either may be left unopened to serve only
  // the other transport. Both must use the same single-threaded io_context.
  boost::asio::ip::udp::socket udp;
  boost::asio::ip::tcp::acceptor tcp;
  std::function<SnapshotConstSharedPtr()> snapshot{};
  DnsClient client{};
  std::string cluster_domain = "cluster.local";
  std::string preferred_namespace{};                 // PREFERED_SERVICE_NAMESPACE
  std::vector<SocketAddr> upstreams{};               // at least one (see load_resolv_conf)
  std::chrono::milliseconds upstream_timeout{5000};  // per try
  unsigned attempts = 2;                             // rounds over `upstreams`
  std::optional<uint32_t> mark{};                    // SO_MARK for upstream sockets (PACKET_MARK)
  size_t max_inflight = 128;
  size_t max_tcp_connections = 64;
  std::chrono::milliseconds tcp_idle_timeout{5000};
  DnsMetrics* metrics = nullptr;  // required
};

class DnsProxy {
 public:
  // Validates the inputs (metrics and snapshot set, at least one upstream, at least one open
  // socket) and builds the proxy; call start() to serve.
  static common::Result<std::unique_ptr<DnsProxy>> create(DnsProxyInputs inputs);

  // Stops (see stop()); operations still running finish on their own executor afterwards.
  // Destroy the handle before the io_context it runs on.
  ~DnsProxy();
  DnsProxy(const DnsProxy&) = delete;
  DnsProxy& operator=(const DnsProxy&) = delete;

  // Starts the UDP receive loop and the TCP accept loop. Call once.
  void start();
  // Drain: closes the UDP socket, the acceptor and every client TCP connection. Forwarded
  // queries still in flight end at their timeout; their answers are dropped. Idempotent.
  void stop();

  // Local addresses (for tests and logs); unset when that transport is not served.
  std::optional<boost::asio::ip::udp::endpoint> udp_endpoint() const { return udp_endpoint_; }
  std::optional<boost::asio::ip::tcp::endpoint> tcp_endpoint() const { return tcp_endpoint_; }

  struct Impl;

 private:
  struct PrivateTag {};

 public:
  DnsProxy(PrivateTag, std::shared_ptr<Impl> impl);  // use create()

 private:
  std::shared_ptr<Impl> impl_;  // shared with the running coroutines
  std::optional<boost::asio::ip::udp::endpoint> udp_endpoint_;
  std::optional<boost::asio::ip::tcp::endpoint> tcp_endpoint_;
};

}  // namespace ztunnel::dns
