// Outbound (15001): a connection the in-pod rules REDIRECTed from the workload, in upstream's
// phases: capture (who called, where it was going) -> route (a pure decision on the snapshot;
// failures are early denies) -> on-demand DNS when the endpoint is known only by hostname
// (failure: early deny, as upstream) -> open the upstream (HBONE to the pod or its waypoint through
// the pool, or plain TCP) -> relay until both sides close. From the route on, the connection
// is one ConnectionResult, recorded once.
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/identity/crl.h"
#include "hbone/client.h"
#include "hbone/copy.h"
#include "hbone/headers.h"
#include "hbone/socket_options.h"
#include "ztunnel/dns/host_lookup.h"
#include "ztunnel/dns/resolv_conf.h"
#include "ztunnel/proxy/proxy_internal.h"

namespace ztunnel {
namespace asio = boost::asio;
using asio::ip::tcp;

struct Proxy::Worker::OutboundRequest {
  OutboundRoute route;
  ConnectionParties parties;
  std::string dst_addr;    // access log dst.addr: the original destination, or the TCP target
  std::string hbone_addr;  // HBONE routes: the peer (pod or waypoint) address
};

struct Proxy::Worker::Upstream {
  std::shared_ptr<tcp::socket> plain;     // plain TCP and passthrough
  std::shared_ptr<hbone::Stream> stream;  // HBONE
};

namespace {
ProxyErrorKind dial_failure(hbone::ConnectStage stage) {
  switch (stage) {
    case hbone::ConnectStage::Tcp:
      return ProxyErrorKind::UpstreamConnect;
    case hbone::ConnectStage::Tls:
      return ProxyErrorKind::UpstreamTls;
    case hbone::ConnectStage::Http2:
      return ProxyErrorKind::UpstreamHttp2;
    case hbone::ConnectStage::Connect:
      return ProxyErrorKind::UpstreamRefused;
  }
  return ProxyErrorKind::UpstreamConnect;
}
}  // namespace

asio::awaitable<void> Proxy::Worker::handle_outbound(tcp::socket raw) {
  auto self = shared_from_this();
  auto sock = std::make_shared<tcp::socket>(std::move(raw));
  track(sock);
  ActiveGuard active(shared->active);
  const auto started = std::chrono::steady_clock::now();

  // Capture.
  auto cap = captured(*sock, "outbound", shared->seams);
  if (!cap) co_return;
  // Not redirected (someone dialled 15001 itself): proxying it would loop back to us.
  if (cap->dst_port == kOutboundPort && (cap->dst_ip.is_loopback() || cap->dst_ip == endpoint_ip(cap->local))) {
    log_early_deny("outbound", cap->src_addr, cap->dst_addr,
                   ProxyError{ProxyErrorKind::SelfCall, "addressed to the outbound listener itself"});
    co_return;
  }

  // Route.
  auto snap = shared->snapshot.load();
  // XDS_ON_DEMAND: an address the snapshot does not know may just not have been asked for yet
  // (our own pod by its source address, then the destination). Ask, wait (bounded), and look
  // again in the snapshot that answered; no answer means unknown, handled as before.
  if (shared->on_demand && local_workload(snap) == nullptr) {
    snap = co_await demand_unknown(std::move(snap), shared->cfg.network, cap->client_ip);
  }
  auto req = route(*snap, local_workload(snap), *cap);
  if (shared->on_demand && req && req->route.kind == RouteKind::Passthrough) {
    auto before = snap;
    snap = co_await demand_unknown(std::move(snap), req->parties.src->network, cap->dst_ip);
    if (snap != before) req = route(*snap, local_workload(snap), *cap);
  }
  if (!req) {
    log_early_deny("outbound", cap->src_addr, cap->dst_addr, req.error());
    co_return;
  }

  // On-demand DNS (hostname-only endpoints).
  if (!req->route.resolve_hostname.empty()) {
    auto resolved = co_await resolve_on_demand(*req, *cap);
    if (!resolved) {
      log_early_deny("outbound", cap->src_addr, cap->dst_addr, resolved.error());
      co_return;
    }
  }

  // Open the upstream.
  auto up = co_await open_upstream(*req, *cap);
  ConnectionResult result(shared->metrics, req->parties, "outbound", cap->src_addr, req->dst_addr, req->hbone_addr,
                          started);
  if (!up) {
    result.record(up.error());
    co_return;
  }

  // Relay.
  result.established();
  auto listed = list_live(ConnectionView{false, cap->src_addr, cap->dst_addr,
                                         req->hbone_addr.empty() ? req->dst_addr : req->hbone_addr,
                                         up->stream ? "HBONE" : "TCP"});
  // Not a conditional expression: GCC 12 miscompiles co_await inside ?: (double destruction).
  hbone::CopyResult r;
  std::optional<ProxyError> revoked;
  auto tunnel = remember_tunnel(OutboundTunnel{up->stream, &revoked});
  auto metered = meter(Metered{&r, up->stream.get(), &result, true});
  if (up->stream) {
    co_await hbone::copy_bidirectional(*sock, up->stream, r);
  } else {
    co_await hbone::copy_bidirectional(*sock, *up->plain, r);
  }
  result.record(relay_outcome(r, std::move(revoked)), r.to_stream, r.to_socket);
}

void Proxy::Worker::mark_revoked_tunnels() {
  for (auto& t : outbound_tunnels) {
    auto s = t.stream.lock();
    if (!s || t.revoked == nullptr || !s->connection().is_open()) continue;
    if (common::tls::peer_chain_revoked(s->connection().tls().native_handle())) {
      *t.revoked = ProxyError{ProxyErrorKind::CertRevoked, "server certificate revoked (CRL_PATH)"};
    }
  }
}

asio::awaitable<SnapshotConstSharedPtr> Proxy::Worker::demand_address(std::string_view network, const IpAddr& ip) {
  auto timer = std::make_shared<asio::steady_timer>(io, OnDemand::kWait);
  auto got = std::make_shared<SnapshotConstSharedPtr>();
  // The answer arrives on the xDS client thread: hop to this worker before touching the timer.
  const bool waiting =
      shared->on_demand->demand(network, ip, [timer, got, ex = io.get_executor()](SnapshotConstSharedPtr s) {
        asio::post(ex, [timer, got, s = std::move(s)]() mutable {
          *got = std::move(s);
          timer->cancel();
        });
      });
  if (!waiting) co_return nullptr;
  co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  if (!*got)
    spdlog::debug("on-demand xDS: no answer for {}/{} within {} s", network, ip.to_string(), OnDemand::kWait.count());
  co_return *got;
}

asio::awaitable<SnapshotConstSharedPtr> Proxy::Worker::demand_unknown(SnapshotConstSharedPtr snap,
                                                                      std::string_view network, const IpAddr& ip) {
  if (snap->find_workload(network, ip) != nullptr || snap->find_service(network, ip) != nullptr) co_return snap;
  auto answered = co_await demand_address(network, ip);
  if (!answered) co_return snap;
  // The worker's current snapshot when it already holds the answer (it may be newer still),
  // else the one that answered.
  auto now = shared->snapshot.load();
  if (now->find_workload(network, ip) != nullptr || now->find_service(network, ip) != nullptr) co_return now;
  co_return answered;
}

dns::HostLookup& Proxy::Worker::lookup() {
  if (!host_lookup) {
    dns::HostLookupOptions o;
    o.mark = shared->cfg.packet_mark;
    if (shared->seams.dns_servers) {
      o.servers = *shared->seams.dns_servers;
    } else if (auto rc = dns::load_resolv_conf("/etc/resolv.conf")) {
      // Read once per worker, on its first hostname workload (a small local file).
      o.servers = rc.value().nameservers;
      o.timeout = rc.value().timeout;
      o.attempts = rc.value().attempts;
    } else {
      spdlog::warn("on-demand dns: /etc/resolv.conf: {}", rc.error());
    }
    host_lookup = std::make_shared<dns::HostLookup>(io.get_executor(), std::move(o));
  }
  return *host_lookup;
}

asio::awaitable<ProxyResult<bool>> Proxy::Worker::resolve_on_demand(OutboundRequest& req, const Captured& cap) {
  auto& route = req.route;
  // Upstream counts the lookup before making it, whatever its outcome.
  shared->metrics.on_demand_dns(req.parties.src, route.resolve_hostname);
  auto addrs = co_await lookup().resolve(route.resolve_hostname);
  if (!addrs) {
    spdlog::warn("on-demand dns: {}", addrs.error());
    co_return ProxyError{ProxyErrorKind::NoResolvedAddresses, addrs.error()};
  }
  auto ip = dns::pick_resolved(addrs.value().addresses, cap.dst_ip.is_v6(), lb_random());
  if (!ip) {
    co_return ProxyError{ProxyErrorKind::NoResolvedAddresses,
                         "dns lookup of " + route.resolve_hostname + ": no address"};
  }
  apply_resolved(route, *ip);
  if (route.kind == RouteKind::Tcp) {
    req.dst_addr = route.target.to_string();
  } else {
    req.hbone_addr = route.target.to_string();
  }
  co_return true;
}

ProxyResult<Proxy::Worker::OutboundRequest> Proxy::Worker::route(const Snapshot& snap, const Workload* source,
                                                                 const Captured& cap) {
  if (source == nullptr) {
    return ProxyError{ProxyErrorKind::UnknownSource, "unknown source workload (not in the configuration yet)"};
  }
  OutboundRequest req;
  auto& p = req.parties;
  p.reporter = "source";
  p.src = source;
  p.src_identity = source->identity();
  req.route = route_outbound(snap, *source, cap.dst_ip, cap.dst_port, lb_random());
  const auto& route = req.route;
  p.dst = route.destination_workload;
  p.service = route.destination_service;
  if (p.dst) p.dst_identity = p.dst->identity();
  req.dst_addr = cap.dst_addr;
  switch (route.kind) {
    case RouteKind::NoHealthyUpstream:
      return ProxyError{ProxyErrorKind::NoHealthyUpstream,
                        route.error.empty() ? std::string(to_string(route.kind)) : route.error};
    case RouteKind::Unroutable:
      return ProxyError{ProxyErrorKind::Unroutable,
                        route.error.empty() ? std::string(to_string(route.kind)) : route.error};
    case RouteKind::Tcp:
      req.dst_addr = route.target.to_string();
      break;
    case RouteKind::Passthrough:
      break;
    case RouteKind::Hbone:
    case RouteKind::Waypoint:
      req.hbone_addr = route.target.to_string();
      break;
  }
  return req;
}

asio::awaitable<ProxyResult<Proxy::Worker::Upstream>> Proxy::Worker::open_upstream(OutboundRequest& req,
                                                                                   const Captured& cap) {
  const auto& route = req.route;
  if (route.kind == RouteKind::Tcp || route.kind == RouteKind::Passthrough) {
    const SocketAddr target = shared->dial_address(
        route.kind == RouteKind::Passthrough ? SocketAddr{cap.dst_ip, cap.dst_port} : route.target);
    auto up =
        co_await hbone::connect_tcp(io.get_executor(), tcp::endpoint(target.ip, target.port), shared->cfg.packet_mark,
                                    std::chrono::seconds(10), std::nullopt, shared->socket_factory);
    if (!up) co_return ProxyError{ProxyErrorKind::UpstreamConnect, up.error()};
    auto upstream = std::make_shared<tcp::socket>(std::move(up.value()));
    track(upstream);
    co_return Upstream{std::move(upstream), nullptr};
  }

  auto& parties = req.parties;
  auto tls = shared->tls.load();
  std::string no_tls;
  if (!tls) tls = co_await await_tls(no_tls);  // only before the first certificate
  if (!tls) {
    co_return ProxyError{ProxyErrorKind::NoCertificate,
                         "no certificate for " + parties.src_identity->uri() + ": " + no_tls};
  }
  parties.mtls = true;
  hbone::PoolKey key;
  key.src_identity = parties.src_identity->uri();
  for (const auto& id : route.expected_identities) key.dst_identities.push_back(id.uri());
  key.src_ip = cap.client_ip.to_string();
  key.dst = req.hbone_addr;
  hbone::DialOptions opts;
  const SocketAddr target = shared->dial_address(route.target);
  opts.target = tcp::endpoint(target.ip, target.port);
  opts.expected = route.expected_identities;
  opts.mark = shared->cfg.packet_mark;
  opts.settings = shared->client_settings;
  opts.socket_factory = shared->socket_factory;
  hbone::ConnectRequest connect;
  connect.authority = route.authority;
  connect.baggage = baggage_of(*parties.src);
  connect.forwarded =
      hbone::format_forwarded(cap.src_addr, parties.service ? parties.service->hostname : std::string());
  connect.traceparent = hbone::TraceParent::random().to_string();
  auto stream = co_await pool->connect(key, tls->client, std::move(opts), std::move(connect));
  if (!stream) co_return ProxyError{dial_failure(stream.stage()), stream.error()};
  co_return Upstream{nullptr, std::move(stream.value())};
}

}  // namespace ztunnel
