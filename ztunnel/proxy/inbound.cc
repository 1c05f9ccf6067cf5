// Inbound paths: HBONE (15008) and plaintext (15006).
// HBONE runs in three phases: (1) context from the CONNECT :authority and the peer's verified
// SPIFFE identity -> 400 on a bad or foreign target; (2) authorization, then the connection to
// the local app from the client's own IP -> 401 / 503; (3) 200 and copy.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

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
  asio::co_spawn(io, inbound_tunnel(std::move(stream), std::move(peer)), asio::detached);
}

asio::awaitable<void> Proxy::Worker::inbound_tunnel(std::shared_ptr<hbone::Stream> stream,
                                                    std::shared_ptr<const hbone::PeerInfo> peer) {
  auto self = shared_from_this();
  ActiveGuard active(shared->active);
  const auto started = std::chrono::steady_clock::now();
  const IpAddr client_ip = endpoint_ip(peer->remote);
  const std::string src_addr = format_socket_addr(client_ip, peer->remote.port());
  const std::string hbone_addr = format_socket_addr(endpoint_ip(peer->local), peer->local.port());
  auto snap = shared->snapshot.load();

  ConnectionParties parties;
  parties.reporter = "destination";
  parties.mtls = true;
  parties.src_identity = peer->identity;
  parties.src = source_workload(*snap, shared->cfg.network, client_ip, peer->identity);
  parties.dst = shared->local_workload(*snap);
  if (parties.dst) parties.dst_identity = parties.dst->identity();
  std::string dst_addr = stream->request().authority;

  auto reject = [&](int status, const std::string& flags, const std::string& error) {
    stream->respond(status);
    auto series = shared->metrics.open(parties, flags);
    shared->metrics.close(series, 0, 0);
    common::log_access(access_record(parties, "inbound", src_addr, dst_addr, hbone_addr, 0, 0,
                                     std::chrono::steady_clock::now() - started, error));
  };

  // Phase 1: what is asked for, and is it ours?
  auto auth = hbone::parse_authority(stream->request().authority);
  if (!auth || !auth->is_ip()) {
    reject(400, "-", "invalid CONNECT authority '" + stream->request().authority + "'");
    co_return;
  }
  const IpAddr dst_ip = canonical_ip(*auth->ip);
  const uint16_t dst_port = auth->port;
  dst_addr = format_socket_addr(dst_ip, dst_port);
  if (parties.dst == nullptr) {
    reject(503, "-", "local workload unknown");
    co_return;
  }
  if (!parties.dst->has_address(dst_ip) || dst_ip != endpoint_ip(peer->local)) {
    reject(400, "-", "CONNECT target " + dst_addr + " is not this workload's address " + hbone_addr);
    co_return;
  }
  if (is_illegal_port(dst_port)) {
    reject(400, "-", "CONNECT to a ztunnel port " + std::to_string(dst_port));
    co_return;
  }

  // Phase 2: policy, then the app.
  ConnectionInfo info{client_ip, dst_ip, dst_port, peer->identity};
  Decision d = evaluate(*snap, info, *parties.dst);
  for (auto& note : d.dry_run_notes) spdlog::info("{} ({} -> {})", note, src_addr, dst_addr);
  if (shared->cfg.authz_policy_info_logging) spdlog::info("authorization {}: {}", d.allow ? "allowed" : "denied", d.reason);
  if (!d.allow) {
    reject(401, "DENY", d.reason);
    co_return;
  }
  std::optional<asio::ip::address> bind_src;
  if (shared->orig_src) bind_src = client_ip;
  auto app = co_await hbone::connect_tcp(io.get_executor(), tcp::endpoint(dst_ip, dst_port), shared->cfg.packet_mark,
                                         std::chrono::seconds(10), bind_src,
                                         shared->socket_factory);
  if (!app) {
    reject(503, "CONNECT", app.error());
    co_return;
  }
  auto app_sock = std::make_shared<tcp::socket>(std::move(app.value()));
  track(app_sock);

  std::string late_rejection;
  auto tracked = remember(Authorized{info, stream, {}, app_sock, &late_rejection});
  struct Forget {
    Proxy::Worker& w;
    std::list<Proxy::Worker::Authorized>::iterator it;
    ~Forget() { w.authorized.erase(it); }
  } forget{*this, tracked};

  // Phase 3: tunnel up.
  std::vector<hbone::Header> headers;
  if (shared->cfg.enable_response_baggage) headers.emplace_back("baggage", baggage_of(*parties.dst));
  stream->respond(200, headers);
  auto series = shared->metrics.open(parties, "-");
  shared->metrics.sockets_open("destination", 1);
  auto r = co_await hbone::copy_bidirectional(*app_sock, stream);
  shared->metrics.sockets_open("destination", -1);
  shared->metrics.close(series, r.to_socket, r.to_stream);
  common::log_access(access_record(parties, "inbound", src_addr, dst_addr, hbone_addr, r.to_socket, r.to_stream,
                                   std::chrono::steady_clock::now() - started,
                                   late_rejection.empty() ? r.error : late_rejection));
}

asio::awaitable<void> Proxy::Worker::handle_inbound_plain(tcp::socket raw) {
  auto self = shared_from_this();
  auto sock = std::make_shared<tcp::socket>(std::move(raw));
  track(sock);
  ActiveGuard active(shared->active);
  const auto started = std::chrono::steady_clock::now();
  auto cap = captured(*sock, "inbound plaintext");
  if (!cap) co_return;
  // Plain references, not a structured binding: lambdas below capture them (clang 14 rejects
  // capturing structured bindings).
  const IpAddr& client_ip = cap->client_ip;
  const std::string& src_addr = cap->src_addr;
  const IpAddr& dst_ip = cap->dst_ip;
  const uint16_t dst_port = cap->dst_port;
  const std::string& dst_addr = cap->dst_addr;

  auto snap = shared->snapshot.load();
  ConnectionParties parties;
  parties.reporter = "destination";
  parties.src = snap->find_workload(shared->cfg.network, client_ip);
  parties.dst = shared->local_workload(*snap);
  if (parties.dst) parties.dst_identity = parties.dst->identity();
  auto fail = [&](const std::string& flags, const std::string& error) {
    auto series = shared->metrics.open(parties, flags);
    shared->metrics.close(series, 0, 0);
    common::log_access(access_record(parties, "inbound", src_addr, dst_addr, "", 0, 0,
                                     std::chrono::steady_clock::now() - started, error));
  };
  if (parties.dst == nullptr || !parties.dst->has_address(dst_ip)) {
    fail("-", "plaintext connection to " + dst_addr + " which is not this workload");
    co_return;
  }
  if (is_illegal_port(dst_port)) {
    fail("-", "plaintext connection to a ztunnel port");
    co_return;
  }
  ConnectionInfo info{client_ip, dst_ip, dst_port, std::nullopt};
  Decision d = evaluate(*snap, info, *parties.dst);
  if (!d.allow) {
    fail("DENY", d.reason);
    co_return;
  }
  std::optional<asio::ip::address> bind_src;
  if (shared->orig_src) bind_src = client_ip;
  auto app = co_await hbone::connect_tcp(io.get_executor(), tcp::endpoint(dst_ip, dst_port), shared->cfg.packet_mark,
                                         std::chrono::seconds(10), bind_src,
                                         shared->socket_factory);
  if (!app) {
    fail("CONNECT", app.error());
    co_return;
  }
  auto app_sock = std::make_shared<tcp::socket>(std::move(app.value()));
  track(app_sock);
  std::string late_rejection;
  auto tracked = remember(Authorized{info, {}, sock, app_sock, &late_rejection});
  struct Forget {
    Proxy::Worker& w;
    std::list<Proxy::Worker::Authorized>::iterator it;
    ~Forget() { w.authorized.erase(it); }
  } forget{*this, tracked};
  auto series = shared->metrics.open(parties, "-");
  shared->metrics.sockets_open("destination", 1);
  auto r = co_await hbone::copy_bidirectional(*sock, *app_sock);
  shared->metrics.sockets_open("destination", -1);
  shared->metrics.close(series, r.to_stream, r.to_socket);
  common::log_access(access_record(parties, "inbound", src_addr, dst_addr, "", r.to_stream, r.to_socket,
                                   std::chrono::steady_clock::now() - started,
                                   late_rejection.empty() ? r.error : late_rejection));
}

void Proxy::Worker::recheck_policies(const std::shared_ptr<const Snapshot>& snap) {
  const Workload* local = shared->local_workload(*snap);
  for (auto& a : authorized) {
    Decision d = local ? evaluate(*snap, a.info, *local) : Decision{false, "workload removed", {}};
    if (d.allow) continue;
    spdlog::info("closing connection {} -> {}:{}: no longer allowed ({})", a.info.src_ip.to_string(),
                 a.info.dst_ip.to_string(), a.info.dst_port, d.reason);
    if (a.late_rejection) *a.late_rejection = "AuthorizationPolicyLateRejection: " + d.reason;
    boost::system::error_code ignored;
    if (auto s = a.stream.lock()) s->reset();
    if (auto c = a.client.lock()) c->close(ignored);
    if (auto app = a.app.lock()) app->close(ignored);
  }
}

}  // namespace ztunnel
