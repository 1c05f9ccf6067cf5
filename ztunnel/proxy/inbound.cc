// Inbound paths: HBONE (15008) and plaintext (15006), in upstream's three phases:
// (1) context: the target (CONNECT :authority, or the original destination) and the peer's
//     verified SPIFFE identity -> early deny (400 / 503 on HBONE, no metrics);
// (2) authorization, then the connection to the local app from the client's own IP
//     -> DENY (401) / CONNECT (503), recorded;
// (3) 200 (HBONE) and relay, re-checked on every policy change (late rejection).
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "hbone/client.h"
#include "hbone/copy.h"
#include "hbone/headers.h"
#include "hbone/server.h"
#include "hbone/socket_options.h"
#include "common/rbac/authz.h"
#include "ztunnel/proxy/proxy_internal.h"

namespace ztunnel {
namespace asio = boost::asio;
using asio::ip::tcp;

struct Proxy::Worker::InboundContext {
  ConnectionParties parties;  // dst is the local workload, never null
  ConnectionInfo info;
  std::string dst_addr;
};

namespace {
// The source workload, only if its identity is the one the peer proved (labels must not be
// spoofable by IP).
const Workload* source_workload(const Snapshot& snap, const std::string& network, const IpAddr& ip,
                                const std::optional<common::Identity>& id) {
  const Workload* w = snap.find_workload(network, ip);
  if (w == nullptr) return nullptr;
  if (id && !(w->identity() == *id)) return nullptr;
  return w;
}

}  // namespace

void Proxy::Worker::handle_hbone_stream(std::shared_ptr<hbone::Stream> stream,
                                        std::shared_ptr<const hbone::PeerInfo> peer) {
  asio::co_spawn(io, inbound_tunnel(std::move(stream), std::move(peer)),
                 shared->task_failures.handler(Task::InboundStream));
}

ProxyResult<Proxy::Worker::InboundContext> Proxy::Worker::inbound_context(const SnapshotConstSharedPtr& snap,
                                                                          const std::string& authority,
                                                                          const hbone::PeerInfo& peer) {
  const IpAddr client_ip = endpoint_ip(peer.remote);
  const std::string hbone_addr = format_socket_addr(endpoint_ip(peer.local), peer.local.port());
  auto auth = hbone::parse_authority(authority);
  if (!auth || !auth->is_ip()) {
    return ProxyError{ProxyErrorKind::InvalidAuthority, "invalid CONNECT authority '" + authority + "'"};
  }
  InboundContext ctx;
  ctx.info = ConnectionInfo{client_ip, canonical_ip(*auth->ip), auth->port, peer.identity};
  ctx.dst_addr = format_socket_addr(ctx.info.dst_ip, ctx.info.dst_port);
  auto& p = ctx.parties;
  p.reporter = "destination";
  p.mtls = true;
  p.src_identity = peer.identity;
  p.src = source_workload(*snap, shared->cfg.network, client_ip, peer.identity);
  p.dst = local_workload(snap);
  if (p.dst == nullptr) return ProxyError{ProxyErrorKind::UnknownLocalWorkload, "local workload unknown"};
  p.dst_identity = p.dst->identity();
  if (!p.dst->has_address(ctx.info.dst_ip) || ctx.info.dst_ip != endpoint_ip(peer.local)) {
    return ProxyError{ProxyErrorKind::NotThisWorkload,
                      "CONNECT target " + ctx.dst_addr + " is not this workload's address " + hbone_addr};
  }
  if (shared->port_guard.refused(ctx.info.dst_port)) {
    shared->port_guard.count(PortGuard::Listener::InboundHbone, ctx.info.dst_port);
    return ProxyError{ProxyErrorKind::ZtunnelPort, "CONNECT to a ztunnel port " + std::to_string(ctx.info.dst_port)};
  }
  return ctx;
}

asio::awaitable<ProxyResult<std::shared_ptr<tcp::socket>>> Proxy::Worker::authorize_and_connect(
    const Snapshot& snap, const ConnectionInfo& info, const Workload& local, const std::string& src_addr,
    const std::string& dst_addr) {
  Decision d = evaluate(snap, info, local);
  for (auto& note : d.dry_run_notes) spdlog::info("{} ({} -> {})", note, src_addr, dst_addr);
  if (shared->cfg.authz_policy_info_logging) {
    spdlog::info("authorization {}: {}", d.allow ? "allowed" : "denied", d.reason);
  }
  if (!d.allow) co_return ProxyError{ProxyErrorKind::PolicyDenied, d.reason};
  std::optional<asio::ip::address> bind_src;
  if (shared->orig_src) bind_src = info.src_ip;
  auto app =
      co_await hbone::connect_tcp(io.get_executor(), tcp::endpoint(info.dst_ip, info.dst_port), shared->cfg.packet_mark,
                                  std::chrono::seconds(10), bind_src, shared->socket_factory);
  if (!app) co_return ProxyError{ProxyErrorKind::AppConnect, app.error()};
  auto app_sock = std::make_shared<tcp::socket>(std::move(app.value()));
  track(app_sock);
  co_return app_sock;
}

asio::awaitable<void> Proxy::Worker::inbound_tunnel(std::shared_ptr<hbone::Stream> stream,
                                                    std::shared_ptr<const hbone::PeerInfo> peer) {
  auto self = shared_from_this();
  ActiveGuard active(shared->active);
  const auto started = std::chrono::steady_clock::now();
  const std::string src_addr = format_socket_addr(endpoint_ip(peer->remote), peer->remote.port());
  const std::string hbone_addr = format_socket_addr(endpoint_ip(peer->local), peer->local.port());
  auto snap = shared->snapshot.load();
  if (shared->on_demand) {
    // XDS_ON_DEMAND: our own pod (by the address the tunnel reached) and the peer (by its
    // source address) may not have been fetched yet.
    snap = co_await demand_unknown(std::move(snap), shared->cfg.network, endpoint_ip(peer->local));
    snap = co_await demand_unknown(std::move(snap), shared->cfg.network, endpoint_ip(peer->remote));
  }

  // Phase 1: what is asked for, and is it ours?
  auto ctx = inbound_context(snap, stream->request().authority, *peer);
  if (!ctx) {
    stream->respond(ctx.error().http_status());
    log_early_deny("inbound", src_addr, stream->request().authority, ctx.error());
    co_return;
  }

  // Phase 2: policy, then the app.
  ConnectionResult result(shared->metrics, ctx->parties, "inbound", src_addr, ctx->dst_addr, hbone_addr, started);
  auto app = co_await authorize_and_connect(*snap, ctx->info, *ctx->parties.dst, src_addr, ctx->dst_addr);
  if (!app) {
    stream->respond(app.error().http_status());
    result.record(app.error());
    co_return;
  }
  auto app_sock = std::move(app.value());
  std::optional<ProxyError> late_rejection;
  auto remembered = remember(Authorized{ctx->info, stream, {}, app_sock, &late_rejection});

  // Phase 3: tunnel up.
  std::vector<hbone::Header> headers;
  if (shared->cfg.enable_response_baggage) headers.emplace_back("baggage", baggage_of(*ctx->parties.dst));
  stream->respond(200, headers);
  result.established();
  auto listed = list_live(ConnectionView{true, src_addr, stream->request().authority, ctx->dst_addr, "HBONE"});
  hbone::CopyResult r;
  auto metered = meter(Metered{&r, stream.get(), &result, false});
  co_await hbone::copy_bidirectional(*app_sock, stream, r);
  result.record(relay_outcome(r, std::move(late_rejection)), r.to_socket, r.to_stream);
}

asio::awaitable<void> Proxy::Worker::handle_inbound_plain(tcp::socket raw) {
  auto self = shared_from_this();
  auto sock = std::make_shared<tcp::socket>(std::move(raw));
  track(sock);
  ActiveGuard active(shared->active);
  const auto started = std::chrono::steady_clock::now();
  auto cap = captured(*sock, "inbound plaintext", shared->seams);
  if (!cap) co_return;

  // Phase 1: is it for our workload?
  auto snap = shared->snapshot.load();
  if (shared->on_demand) snap = co_await demand_unknown(std::move(snap), shared->cfg.network, cap->dst_ip);
  const Workload* local = local_workload(snap);
  if (local == nullptr || !local->has_address(cap->dst_ip)) {
    log_early_deny("inbound", cap->src_addr, cap->dst_addr,
                   ProxyError{ProxyErrorKind::NotThisWorkload,
                              "plaintext connection to " + cap->dst_addr + " which is not this workload"});
    co_return;
  }
  if (shared->port_guard.refused(cap->dst_port)) {
    shared->port_guard.count(PortGuard::Listener::InboundPlaintext, cap->dst_port);
    log_early_deny("inbound", cap->src_addr, cap->dst_addr,
                   ProxyError{ProxyErrorKind::ZtunnelPort, "plaintext connection to a ztunnel port"});
    co_return;
  }
  ConnectionParties parties;
  parties.reporter = "destination";
  parties.src = snap->find_workload(shared->cfg.network, cap->client_ip);
  parties.dst = local;
  parties.dst_identity = local->identity();
  ConnectionResult result(shared->metrics, parties, "inbound", cap->src_addr, cap->dst_addr, "", started);

  // Phase 2: policy, then the app.
  const ConnectionInfo info{cap->client_ip, cap->dst_ip, cap->dst_port, std::nullopt};
  auto app = co_await authorize_and_connect(*snap, info, *local, cap->src_addr, cap->dst_addr);
  if (!app) {
    result.record(app.error());
    co_return;
  }
  auto app_sock = std::move(app.value());
  std::optional<ProxyError> late_rejection;
  auto remembered = remember(Authorized{info, {}, sock, app_sock, &late_rejection});

  // Phase 3: relay.
  result.established();
  auto listed = list_live(ConnectionView{true, cap->src_addr, cap->dst_addr, cap->dst_addr, "TCP"});
  hbone::CopyResult r;
  auto metered = meter(Metered{&r, nullptr, &result, true});
  co_await hbone::copy_bidirectional(*sock, *app_sock, r);
  result.record(relay_outcome(r, std::move(late_rejection)), r.to_stream, r.to_socket);
}

void Proxy::Worker::recheck_policies(const std::shared_ptr<const Snapshot>& snap) {
  const Workload* local_wl = local_workload(snap);
  for (auto& a : authorized) {
    Decision d = local_wl ? evaluate(*snap, a.info, *local_wl) : Decision{false, "workload removed", {}};
    if (d.allow) continue;
    spdlog::info("closing connection {} -> {}:{}: no longer allowed ({})", a.info.src_ip.to_string(),
                 a.info.dst_ip.to_string(), a.info.dst_port, d.reason);
    if (a.late_rejection) {
      *a.late_rejection = ProxyError{ProxyErrorKind::LateRejection, "AuthorizationPolicyLateRejection: " + d.reason};
    }
    boost::system::error_code ignored;
    if (auto s = a.stream.lock()) s->reset();
    if (auto c = a.client.lock()) c->close(ignored);
    if (auto app = a.app.lock()) app->close(ignored);
  }
}

}  // namespace ztunnel
