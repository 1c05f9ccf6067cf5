// One CONNECT stream (proxy_worker.h): what its authority names, and the L4 relay.
#include <spdlog/spdlog.h>

#include "hbone/headers.h"
#include "waypoint/authz/rbac_eval.h"
#include "waypoint/http/any_stream.h"
#include "waypoint/http/relay.h"
#include "waypoint/naming.h"
#include "waypoint/proxy_worker.h"

namespace waypoint {

namespace asio = boost::asio;

namespace {

// The client's address: `Forwarded: for=` from the client's ztunnel, else the TCP peer.
std::string source_address(hbone::Stream& s, const hbone::PeerInfo& peer) {
  const auto& fwd = s.request().forwarded;
  if (!fwd.empty()) {
    if (auto els = hbone::parse_forwarded(fwd); els && !els->empty() && !els->front().for_node.empty()) {
      return els->front().for_node;
    }
  }
  return hbone::format_authority(peer.remote.address(), peer.remote.port());
}

}  // namespace

asio::awaitable<void> Proxy::Worker::handle(std::shared_ptr<hbone::Stream> s,
                                            std::shared_ptr<const hbone::PeerInfo> peer) {
  auto keep = shared_from_this();
  Active live(shared->active_streams);
  auto auth = hbone::parse_authority(s->request().authority);
  if (!auth || !auth->ip) {
    spdlog::debug("CONNECT with invalid authority {:?}", s->request().authority);
    s->respond(400);
    co_return;
  }
  auto cfg = shared->config.load();
  const std::string src = source_address(*s, *peer);
  const ztunnel::Service* svc = cfg->workloads->find_service("", *auth->ip);
  if (svc) {
    std::string route_name = http_route_name(auth->port, svc->hostname);
    const Cluster* tcp_cluster = cfg->cluster(tcp_cluster_name(auth->port, svc->hostname));
    if (cfg->route(route_name)) {
      s->respond(200);
      auto d = std::make_shared<Downstream>();
      d->peer = peer;
      d->src = src;
      d->src_ip = ip_of(src);
      d->route_name = std::move(route_name);
      d->hostname = svc->hostname;
      d->connect_authority = s->request().authority;
      d->connect_ip = auth->ip;
      d->connect_port = auth->port;
      if (peer->identity) d->peer_principal = peer->identity->uri();
      co_await serve_inner(std::move(s), std::move(d), tcp_cluster, cfg);
      co_return;
    }
    if (tcp_cluster) {
      if (auto why = tcp_denied(*tcp_cluster, *peer, src, s->request().authority)) {
        // Envoy's waypoint answers the CONNECT, then its TCP chain's RBAC closes the stream.
        spdlog::info("CONNECT {} from {} ({}): connection denied, {} (RBAC)", s->request().authority, src,
                     peer->identity ? peer->identity->uri() : std::string("no identity"), *why);
        tcp_ended_early(tcp_record(*peer, src, *cfg, s->request().authority, tcp_cluster->name), "RBAC");
        s->respond(200);
        http::AnyStream(s).abort();
        co_return;
      }
      const auto* cla = cfg->endpoints_of(*tcp_cluster);
      const Endpoint* ep = cla ? lb.pick(*tcp_cluster, cla->endpoints, random) : nullptr;
      if (!ep) {
        refuse(*s, peer, src, 503, "UH", "no healthy upstream");
        co_return;
      }
      co_await serve_tcp(std::move(s), peer, src, cfg, *ep, tcp_cluster->connect_timeout, std::nullopt,
                         tcp_cluster->name);
      co_return;
    }
  } else if (const auto* w = cfg->workloads->find_workload("", *auth->ip); w && w->waypoint) {
    // Workload-addressed traffic for a pod bound to a waypoint: straight to the pod, under the
    // policies that target the waypoint itself (naming.h, kPodTcpRbacCluster).
    if (const Cluster* rbac = cfg->cluster(kPodTcpRbacCluster)) {
      if (auto why = tcp_denied(*rbac, *peer, src, s->request().authority)) {
        spdlog::info("CONNECT {} from {} ({}): connection to the pod denied, {} (RBAC)", s->request().authority, src,
                     peer->identity ? peer->identity->uri() : std::string("no identity"), *why);
        tcp_ended_early(tcp_record(*peer, src, *cfg, s->request().authority, ""), "RBAC");
        s->respond(200);
        http::AnyStream(s).abort();
        co_return;
      }
    }
    Endpoint ep;
    ep.address = auth->ip->to_string();
    ep.port = auth->port;
    co_await serve_tcp(std::move(s), peer, src, cfg, ep, std::chrono::seconds(5), std::nullopt);
    co_return;
  }
  refuse(*s, peer, src, 503, "NR", "not a service or workload served by this waypoint");
}

std::optional<std::string> Proxy::Worker::tcp_denied(const Cluster& c, const hbone::PeerInfo& peer,
                                                     const std::string& src, std::string_view authority) {
  if (!c.network_rbac) return std::nullopt;
  authz::RequestContext ctx;
  if (peer.identity) ctx.peer_principal = peer.identity->uri();
  ctx.source_ip = ip_of(src);
  if (auto a = hbone::parse_authority(authority)) {
    ctx.destination_ip = a->ip;
    ctx.destination_port = a->port;
  }
  const auto d = authz::authorize(*c.network_rbac, ctx);
  if (!d.shadow.empty()) shared->telemetry.count_shadow(d.shadow, /*tcp=*/true);
  if (d.allowed) return std::nullopt;
  return d.policy.empty() ? std::string("no ALLOW policy matched") : "denied by " + d.policy;
}

RequestRecord Proxy::Worker::tcp_record(const hbone::PeerInfo& peer, const std::string& src, const ConfigSnapshot& cfg,
                                        std::string_view authority, std::string cluster) {
  RequestRecord rec;
  rec.src_addr = src;
  rec.src_identity = peer.identity;
  if (auto ip = ip_of(src)) rec.src = cfg.workloads->find_workload("", *ip);
  rec.authority = std::string(authority);
  rec.protocol = "tcp";
  if (auto a = hbone::parse_authority(authority); a && a->ip) {
    rec.service = cfg.workloads->find_service("", *a->ip);
    if (!rec.service) rec.service_host = a->ip->to_string();
  }
  rec.upstream_cluster = std::move(cluster);
  return rec;
}

void Proxy::Worker::tcp_ended_early(RequestRecord rec, const char* flags) {
  rec.response_flags = flags;
  shared->telemetry.tcp_opened(rec);
  shared->telemetry.tcp_closed(rec);
}

void Proxy::Worker::refuse(hbone::Stream& s, const std::shared_ptr<const hbone::PeerInfo>& peer, const std::string& src,
                           int status, const char* flag, const char* why) {
  spdlog::info("CONNECT {} from {} ({}) refused: {} (flag {})", s.request().authority, src,
               peer->identity ? peer->identity->uri() : std::string("no identity"), why, flag);
  s.respond(status);
}

asio::awaitable<void> Proxy::Worker::serve_tcp(std::shared_ptr<hbone::Stream> s,
                                               std::shared_ptr<const hbone::PeerInfo> peer, std::string src,
                                               ConfigSnapshotPtr cfg, Endpoint ep,
                                               std::chrono::milliseconds connect_timeout,
                                               std::optional<std::string> sniffed, std::string cluster) {
  // `sniffed`: the CONNECT was answered already and these bytes were read while sniffing.
  const auto start = std::chrono::steady_clock::now();
  RequestRecord rec = tcp_record(*peer, src, *cfg, s->request().authority, std::move(cluster));
  if (auto ip = ztunnel::parse_ip(ep.address)) {
    rec.dst = cfg->workloads->find_workload("", *ip);
    if (rec.dst) rec.dst_identity = rec.dst->identity();
  }
  auto target = make_target(*cfg, ep);
  if (!target) {
    if (sniffed) {
      http::AnyStream(s).abort();
    } else {
      refuse(*s, peer, src, 503, "UH", "endpoint address is not an IP");
    }
    co_return;
  }
  auto tls = shared->tls.load();
  // Named, never a ?: temporary inside co_await: GCC 12 destroys such temporaries twice
  // (here: one reference too few on the TLS context -> use after free).
  hbone::TlsContext client_tls;
  if (tls) client_tls = tls->client;
  auto conn = co_await connector.acquire(*target, client_tls, shared->self.uri(), connect_timeout);
  if (!conn) {
    spdlog::info("CONNECT {} from {}: upstream {} failed: {} (flag UF)", s->request().authority, src, target->key,
                 conn.error());
    rec.upstream_host = target->key;
    rec.duration = std::chrono::steady_clock::now() - start;
    tcp_ended_early(std::move(rec), "UF");
    if (sniffed) {
      http::AnyStream(s).abort();
    } else {
      s->respond(503);
    }
    co_return;
  }
  rec.upstream_host = target->key;
  shared->telemetry.tcp_opened(rec);
  if (!sniffed) s->respond(200);
  http::AnyStream down(s);
  // A named local, never a ?: temporary inside co_await (GCC 12 destroys those twice).
  std::string pending;
  if (sniffed) pending = std::move(*sniffed);
  auto r = co_await http::relay(down, conn.value()->stream, std::move(pending));
  spdlog::debug("TCP {} -> {} done: {} bytes up, {} down", src, target->key, r.a_to_b, r.b_to_a);
  rec.request_bytes = r.a_to_b;
  rec.response_bytes = r.b_to_a;
  rec.duration = std::chrono::steady_clock::now() - start;
  shared->telemetry.tcp_closed(rec);
}

}  // namespace waypoint
