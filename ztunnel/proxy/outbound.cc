// Outbound (15001): a connection the in-pod rules REDIRECTed from the workload. Read the
// original destination, decide the route from the snapshot, then HBONE (to the pod or its
// waypoint) or plain TCP, copy until both sides close, record metrics and one access-log line.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "hbone/client.h"
#include "hbone/copy.h"
#include "hbone/headers.h"
#include "hbone/socket_options.h"
#include "ztunnel/proxy/proxy_internal.h"

namespace ztunnel {
namespace asio = boost::asio;
using asio::ip::tcp;


asio::awaitable<void> Proxy::Worker::handle_outbound(tcp::socket raw) {
  auto self = shared_from_this();
  auto sock = std::make_shared<tcp::socket>(std::move(raw));
  track(sock);
  ActiveGuard active(shared->active);
  const auto started = std::chrono::steady_clock::now();
  auto cap = captured(*sock, "outbound");
  if (!cap) co_return;
  // Plain references, not a structured binding: lambdas below capture them (clang 14 rejects
  // capturing structured bindings).
  const tcp::endpoint& local = cap->local;
  const IpAddr& client_ip = cap->client_ip;
  const std::string& src_addr = cap->src_addr;
  const IpAddr& dst_ip = cap->dst_ip;
  const uint16_t dst_port = cap->dst_port;
  const std::string& dst_addr = cap->dst_addr;
  // Not redirected (someone dialled 15001 itself): proxying it would loop back to us.
  if (dst_port == kOutboundPort && (dst_ip.is_loopback() || dst_ip == endpoint_ip(local))) {
    spdlog::warn("outbound connection from {} addressed to the outbound listener itself; dropped", src_addr);
    co_return;
  }

  auto snap = shared->snapshot.load();
  ConnectionParties parties;
  parties.reporter = "source";
  parties.src = shared->local_workload(*snap);
  auto fail = [&](const std::string& flags, const std::string& error, const std::string& hbone_addr) {
    auto series = shared->metrics.open(parties, flags);
    shared->metrics.close(series, 0, 0);
    common::log_access(access_record(parties, "outbound", src_addr, dst_addr, hbone_addr, 0, 0,
                                     std::chrono::steady_clock::now() - started, error));
  };
  if (parties.src == nullptr) {
    fail("-", "unknown source workload (not in the configuration yet)", "");
    co_return;
  }
  parties.src_identity = parties.src->identity();

  OutboundRoute route = route_outbound(*snap, *parties.src, dst_ip, dst_port, lb_random());
  parties.dst = route.destination_workload;
  parties.service = route.destination_service;
  if (parties.dst) parties.dst_identity = parties.dst->identity();

  switch (route.kind) {
    case RouteKind::NoHealthyUpstream:
    case RouteKind::Unroutable:
      fail("UH", route.error.empty() ? std::string(to_string(route.kind)) : route.error, "");
      co_return;
    case RouteKind::Tcp:
    case RouteKind::Passthrough: {
      tcp::endpoint target(route.target.ip, route.target.port);
      if (route.kind == RouteKind::Passthrough) target = tcp::endpoint(dst_ip, dst_port);
      auto up = co_await hbone::connect_tcp(io.get_executor(), target, shared->cfg.packet_mark,
                                            std::chrono::seconds(10), std::nullopt, shared->socket_factory);
      if (!up) {
        fail("CONNECT", up.error(), "");
        co_return;
      }
      auto upstream = std::make_shared<tcp::socket>(std::move(up.value()));
      track(upstream);
      auto series = shared->metrics.open(parties, "-");
      shared->metrics.sockets_open("source", 1);
      auto r = co_await hbone::copy_bidirectional(*sock, *upstream);
      shared->metrics.sockets_open("source", -1);
      shared->metrics.close(series, r.to_stream, r.to_socket);
      common::log_access(access_record(parties, "outbound", src_addr, format_socket_addr(target.address(), target.port()),
                                       "", r.to_stream, r.to_socket, std::chrono::steady_clock::now() - started,
                                       r.error));
      co_return;
    }
    case RouteKind::Hbone:
    case RouteKind::Waypoint:
      break;
  }

  const std::string hbone_addr = route.target.to_string();
  auto tls = shared->tls.load();
  std::string no_tls;
  if (!tls) tls = co_await await_tls(no_tls);  // only before the first certificate
  if (!tls) {
    fail("TLS_FAILURE", "no certificate for " + parties.src_identity->uri() + ": " + no_tls, hbone_addr);
    co_return;
  }
  parties.mtls = true;
  hbone::PoolKey key;
  key.src_identity = parties.src_identity->uri();
  for (auto& id : route.expected_identities) key.dst_identities.push_back(id.uri());
  key.src_ip = client_ip.to_string();
  key.dst = hbone_addr;
  hbone::DialOptions opts;
  opts.target = tcp::endpoint(route.target.ip, route.target.port);
  opts.expected = route.expected_identities;
  opts.mark = shared->cfg.packet_mark;
  opts.settings = shared->client_settings;
  opts.socket_factory = shared->socket_factory;
  hbone::ConnectRequest req;
  req.authority = route.authority;
  req.baggage = baggage_of(*parties.src);
  req.forwarded = hbone::format_forwarded(src_addr, parties.service ? parties.service->hostname : std::string());
  req.traceparent = hbone::TraceParent::random().to_string();
  auto stream = co_await pool->connect(key, tls->client, std::move(opts), std::move(req));
  if (!stream) {
    std::string e = stream.error();
    fail(e.find("TLS") != std::string::npos ? "TLS_FAILURE" : "CONNECT", e, hbone_addr);
    co_return;
  }
  auto series = shared->metrics.open(parties, "-");
  shared->metrics.sockets_open("source", 1);
  auto r = co_await hbone::copy_bidirectional(*sock, stream.value());
  shared->metrics.sockets_open("source", -1);
  shared->metrics.close(series, r.to_stream, r.to_socket);
  common::log_access(access_record(parties, "outbound", src_addr, dst_addr, hbone_addr, r.to_stream, r.to_socket,
                                   std::chrono::steady_clock::now() - started, r.error));
}

}  // namespace ztunnel
