#include "waypoint/proxy.h"

#include <spdlog/spdlog.h>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "hbone/headers.h"
#include "hbone/server.h"
#include "hbone/socket_options.h"
#include "waypoint/authz/rbac_eval.h"
#include "waypoint/http/h2_session.h"
#include "waypoint/http/http1.h"
#include "waypoint/http/relay.h"
#include "waypoint/http/sniff.h"
#include "waypoint/request_flow.h"
#include "waypoint/router/random.h"
#include "waypoint/tracing/tracer.h"
#include "waypoint/upstream/cluster_state.h"
#include "waypoint/upstream/connector.h"
#include "waypoint/upstream/load_balancer.h"

namespace waypoint {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {
ConfigSnapshotPtr empty_snapshot();
// Outlier detection's interval sweep (un-ejection), on worker 0: sleeps until the earliest
// cluster's next sweep, or until set_config() publishes new runtimes.
asio::awaitable<void> sweep_loop(std::shared_ptr<Proxy::Shared> shared, std::shared_ptr<asio::steady_timer> t);
}  // namespace

struct Proxy::Shared {
  Shared(ProxyOptions o, common::Identity id, Telemetry& t) : opts(std::move(o)), self(std::move(id)), telemetry(t) {}
  ProxyOptions opts;
  common::Identity self;
  Telemetry& telemetry;
  std::atomic<std::shared_ptr<const ConfigSnapshot>> config{empty_snapshot()};
  // Traffic-policy runtimes of the published config (set before `config`, see set_config).
  std::atomic<std::shared_ptr<const upstream::ClusterRuntimes>> clusters{std::make_shared<upstream::ClusterRuntimes>()};
  std::mutex publish_mu;                            // set_config callers (control thread; tests may call from another)
  std::shared_ptr<asio::steady_timer> sweep_timer;  // worker 0's; created by start()
  std::atomic<std::shared_ptr<const hbone::TlsContexts>> tls;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active_requests{0};
  std::atomic<int64_t> active_streams{0};
};

namespace {

ConfigSnapshotPtr empty_snapshot() {
  auto s = std::make_shared<ConfigSnapshot>();
  s->workloads = ztunnel::Snapshot::empty();
  return s;
}

// Counts a value up for a scope (live streams / requests for drain).
class Active {
 public:
  explicit Active(std::atomic<int64_t>& c) : c_(c) { c_.fetch_add(1, std::memory_order_relaxed); }
  ~Active() { c_.fetch_sub(1, std::memory_order_relaxed); }
  Active(const Active&) = delete;
  Active& operator=(const Active&) = delete;

 private:
  std::atomic<int64_t>& c_;
};

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

std::optional<asio::ip::address> ip_of(std::string_view addr) {
  if (auto a = hbone::parse_authority(addr); a && a->ip) return a->ip;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(std::string(addr), ec);
  if (ec) return std::nullopt;
  return ip;
}

}  // namespace

namespace {
// Passes a streamed response body through and keeps its trailers for the telemetry
// (grpc_response_status comes from the grpc-status trailer).
class TrailerTap final : public http::BodyReader {
 public:
  explicit TrailerTap(std::shared_ptr<http::BodyReader> inner) : inner_(std::move(inner)) {}
  asio::awaitable<http::BodyChunk> next() override {
    auto keep = inner_;
    http::BodyChunk c = co_await keep->next();
    if (c.end) trailers = c.trailers;
    co_return account(std::move(c));
  }
  void abort() override { inner_->abort(); }
  router::HeaderList trailers;

 private:
  std::shared_ptr<http::BodyReader> inner_;
};

// Wraps `r`'s body stream in a tap; null when there is none.
std::shared_ptr<TrailerTap> tap_trailers(http::Response& r) {
  if (!r.body_stream) return nullptr;
  auto tap = std::make_shared<TrailerTap>(std::move(r.body_stream));
  r.body_stream = tap;
  return tap;
}
}  // namespace

struct Proxy::Worker : std::enable_shared_from_this<Proxy::Worker> {
  Worker(asio::io_context& io, std::shared_ptr<Shared> s)
      : io(io),
        shared(std::move(s)),
        connector(io.get_executor(), upstream::Connector::Options{shared->opts.upstream_hbone_port, shared->opts.mark,
                                                                  32, shared->opts.pool_max_streams,
                                                                  shared->opts.pool_idle, shared->opts.max_body}),
        random(std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32)) {}

  asio::io_context& io;
  std::shared_ptr<Shared> shared;
  upstream::Connector connector;
  upstream::LoadBalancer lb;
  router::Random random;
  uint64_t active_faults = 0;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::vector<std::weak_ptr<hbone::Connection>> inbound;
  std::vector<std::weak_ptr<http::H2Session>> inbound_h2;  // inner HTTP/2 sessions (GOAWAY on drain)

  FlowEnv env() {
    FlowEnv e;
    e.exec = io.get_executor();
    e.connector = &connector;
    e.lb = &lb;
    e.random = &random;
    e.active_faults = &active_faults;
    auto tls = shared->tls.load();
    e.client_tls = tls ? tls->client : nullptr;
    e.self_identity = shared->self.uri();
    e.max_body = shared->opts.max_body;
    e.clusters = shared->clusters.load();
    e.owner = shared_from_this();
    return e;
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, sock] = co_await acceptor->async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
        spdlog::warn("accept on {}: {}", shared->opts.port, ec.message());
        continue;
      }
      (void)hbone::sockopt::set_nodelay(sock.native_handle());
      asio::co_spawn(io, serve(std::move(sock)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket sock) {
    auto tls = shared->tls.load();
    if (!tls) {
      spdlog::warn("inbound HBONE connection closed: no certificate yet");
      co_return;
    }
    hbone::ServeHooks hooks;
    hooks.on_connection = [w = weak_from_this()](const std::shared_ptr<hbone::Connection>& c) {
      auto self = w.lock();
      if (!self) return;
      std::erase_if(self->inbound, [](const auto& x) { return x.expired(); });
      self->inbound.push_back(c);
      if (self->shared->draining.load(std::memory_order_relaxed)) c->drain();
    };
    hooks.on_handshake_error = [](const std::string& why, const tcp::endpoint& remote) {
      spdlog::warn("inbound HBONE handshake from {} failed: {}", remote.address().to_string(), why);
    };
    auto handler = [w = weak_from_this()](std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> p) {
      if (auto self = w.lock()) asio::co_spawn(self->io, self->handle(std::move(s), std::move(p)), asio::detached);
    };
    hbone::Settings settings;
    settings.max_concurrent_streams = 100;  // istiod's connect_terminate listener
    co_await hbone::serve_connection(std::move(sock), tls->server, settings, std::move(handler), std::move(hooks));
  }

  // One CONNECT stream: decide what the authority names, then serve HTTP or relay TCP.
  asio::awaitable<void> handle(std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> peer) {
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
        co_await serve_inner(std::move(s), std::move(d), tcp_cluster, cfg);
        co_return;
      }
      if (tcp_cluster) {
        if (auto why = tcp_denied(*tcp_cluster, *peer, src, s->request().authority)) {
          // Envoy's waypoint answers the CONNECT, then its TCP chain's RBAC closes the stream.
          spdlog::info("CONNECT {} from {} ({}): connection denied, {} (RBAC)", s->request().authority, src,
                       peer->identity ? peer->identity->uri() : std::string("no identity"), *why);
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
        co_await serve_tcp(std::move(s), peer, src, cfg, *ep, tcp_cluster->connect_timeout, std::nullopt);
        co_return;
      }
    } else if (const auto* w = cfg->workloads->find_workload("", *auth->ip); w && w->waypoint) {
      // Workload-addressed traffic for a pod bound to a waypoint: straight to the pod.
      Endpoint ep;
      ep.address = auth->ip->to_string();
      ep.port = auth->port;
      co_await serve_tcp(std::move(s), peer, src, cfg, ep, std::chrono::seconds(5), std::nullopt);
      co_return;
    }
    refuse(*s, peer, src, 503, "NR", "not a service or workload served by this waypoint");
  }

  // The network RBAC of a TCP port (policies compiled for TCP by the control plane): nullopt =
  // allowed, else why not. Once per relayed connection.
  std::optional<std::string> tcp_denied(const Cluster& c, const hbone::PeerInfo& peer, const std::string& src,
                                        std::string_view authority) {
    if (!c.network_rbac) return std::nullopt;
    authz::RequestContext ctx;
    if (peer.identity) ctx.peer_principal = peer.identity->uri();
    ctx.source_ip = ip_of(src);
    if (auto a = hbone::parse_authority(authority)) {
      ctx.destination_ip = a->ip;
      ctx.destination_port = a->port;
    }
    const auto d = authz::authorize(*c.network_rbac, ctx);
    if (d.allowed) return std::nullopt;
    return d.policy.empty() ? std::string("no ALLOW policy matched") : "denied by " + d.policy;
  }

  void refuse(hbone::Stream& s, const std::shared_ptr<const hbone::PeerInfo>& peer, const std::string& src, int status,
              const char* flag, const char* why) {
    spdlog::info("CONNECT {} from {} ({}) refused: {} (flag {})", s.request().authority, src,
                 peer->identity ? peer->identity->uri() : std::string("no identity"), why, flag);
    s.respond(status);
  }

  asio::awaitable<void> serve_tcp(std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> peer,
                                  std::string src, ConfigSnapshotPtr cfg, Endpoint ep,
                                  std::chrono::milliseconds connect_timeout, std::optional<std::string> sniffed) {
    // `sniffed`: the CONNECT was answered already and these bytes were read while sniffing.
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
      if (sniffed) {
        http::AnyStream(s).abort();
      } else {
        s->respond(503);
      }
      co_return;
    }
    if (!sniffed) s->respond(200);
    http::AnyStream down(s);
    // A named local, never a ?: temporary inside co_await (GCC 12 destroys those twice).
    std::string pending;
    if (sniffed) pending = std::move(*sniffed);
    auto r = co_await http::relay(down, conn.value()->stream, std::move(pending));
    spdlog::debug("TCP {} -> {} done: {} bytes up, {} down", src, target->key, r.a_to_b, r.b_to_a);
  }

  // What every request on one CONNECT stream shares.
  struct Downstream {
    std::shared_ptr<const hbone::PeerInfo> peer;
    std::string src;
    std::optional<asio::ip::address> src_ip;
    std::string route_name;
    std::string hostname;
    std::string connect_authority;
    bool gateway = false;  // ingress role: no tunnel, reporter="source"
  };

  // The telemetry record of one request, before routing.
  RequestRecord begin_record(const Downstream& d, const ConfigSnapshot& cfg, const http::Request& req) {
    RequestRecord rec;
    rec.src_addr = d.src;
    rec.src_identity = d.peer->identity;
    if (d.gateway) rec.reporter = "source";
    rec.src = d.src_ip ? cfg.workloads->find_workload("", *d.src_ip) : nullptr;
    rec.authority = req.head.authority;
    rec.method = req.head.method;
    rec.path = req.head.path;
    rec.protocol = std::string(http::to_string(req.protocol));
    if (auto ua = req.head.headers.get("user-agent")) rec.user_agent = std::string(*ua);
    rec.request_bytes = req.body.size();
    rec.service_host = d.hostname;
    if (auto ip = ip_of(d.connect_authority)) rec.service = cfg.workloads->find_service("", *ip);
    return rec;
  }

  // The protocol-neutral part of one request: the request flow (or NR when the route
  // configuration went away since the CONNECT).
  asio::awaitable<FlowResult> route(const Downstream& d, const ConfigSnapshotPtr& cfg, http::Request& req) {
    FlowResult fr;
    if (const RouteConfig* rc = cfg->route(d.route_name)) {
      auto e = env();
      authz::Downstream az;
      if (d.peer->identity) az.peer_principal = d.peer->identity->uri();
      az.source_ip = d.src_ip;
      if (auto a = hbone::parse_authority(d.connect_authority)) {
        az.destination_ip = a->ip;
        az.destination_port = a->port;
      }
      fr = co_await serve_request(e, cfg, *rc, req, d.src, &az);
    } else {
      fr.flags = "NR";
      fr.response = local_reply(404, "");
      auto ct = req.head.headers.get("content-type");
      if (ct && ct->starts_with("application/grpc")) grpcify_local_reply(fr.response);
    }
    co_return fr;
  }

  // Tracing hooks (waypoint/tracing/tracer.h): the span is named as Istio's route decorator
  // names it, "<service host>:<port>/*".
  tracing::ActiveSpan trace_begin(const Downstream& d, http::Request& req) {
    if (!shared->opts.tracer) return {};
    std::string name = d.hostname.empty() ? d.connect_authority : d.hostname;
    if (!d.hostname.empty()) {
      if (auto a = hbone::parse_authority(d.connect_authority)) name += ":" + std::to_string(a->port);
    }
    return shared->opts.tracer->begin(req.head.headers, random, name + "/*");
  }
  void trace_end(tracing::ActiveSpan& span, const RequestRecord& rec) {
    if (span.sampled) shared->opts.tracer->end(span, rec);
  }

  // After the response went out (`written`) or could not (the client went away: DC).
  // `request_bytes` / `response_bytes`: body bytes that crossed the waypoint each way.
  void finish_record(RequestRecord& rec, const ConfigSnapshot& cfg, const http::Request& req, FlowResult& fr,
                     bool written, std::chrono::steady_clock::time_point start, uint64_t request_bytes,
                     uint64_t response_bytes) {
    if (auto id = req.head.headers.get("x-request-id")) rec.request_id = std::string(*id);
    if (!written && fr.flags.find("DC") == std::string::npos) {
      if (fr.flags == "-") {
        fr.flags = "DC";
      } else {
        fr.flags += ",DC";
      }
    }
    rec.response_code = written ? fr.response.status : 0;
    rec.response_flags = fr.flags;
    rec.request_bytes = request_bytes;
    rec.response_bytes = response_bytes;
    rec.upstream_cluster = fr.cluster;
    rec.upstream_host = fr.upstream_host;
    rec.route_name = fr.route_name;
    rec.attempts = fr.attempts;
    if (auto gs = fr.response.trailers.get("grpc-status")) {
      rec.grpc_status = std::string(*gs);
    } else if (auto hs = fr.response.headers.get("grpc-status")) {
      rec.grpc_status = std::string(*hs);
    }
    if (fr.endpoint) {
      if (auto ip = ztunnel::parse_ip(fr.endpoint->address)) {
        rec.dst = cfg.workloads->find_workload("", *ip);
        if (rec.dst) rec.dst_identity = rec.dst->identity();
      }
    }
    rec.duration = std::chrono::steady_clock::now() - start;
    shared->telemetry.record(rec);
  }

  // An HTTP service port: the inner protocol is sniffed as Envoy's AUTO codec and
  // http_inspector do (HTTP/2 preface, HTTP/1.x request line). Bytes that are neither go to
  // the port's TCP chain when it has one (a port of unknown protocol), else to the HTTP/1.1
  // codec, which answers 400.
  asio::awaitable<void> serve_inner(std::shared_ptr<hbone::Stream> s, std::shared_ptr<Downstream> d,
                                    const Cluster* tcp_cluster, ConfigSnapshotPtr cfg) {
    http::AnyStream down(s);
    std::string initial;
    std::array<char, 4096> chunk;
    http::Sniffed kind = http::Sniffed::NeedMore;
    while (kind == http::Sniffed::NeedMore) {
      auto [ec, n] = co_await down.async_read_some(asio::buffer(chunk), kTuple);
      initial.append(chunk.data(), n);
      kind = http::sniff(initial);
      if (ec && kind == http::Sniffed::NeedMore) {
        if (initial.empty()) {
          down.shutdown_write();
          co_return;
        }
        kind = http::Sniffed::Other;
      }
    }
    if (kind == http::Sniffed::Http2) {
      co_await serve_h2(s, std::move(d), std::move(initial));
      co_return;
    }
    if (kind == http::Sniffed::Other && tcp_cluster) {
      if (auto why = tcp_denied(*tcp_cluster, *d->peer, d->src, d->connect_authority)) {
        spdlog::info("CONNECT {} from {}: not HTTP, TCP connection denied, {} (RBAC)", d->connect_authority, d->src,
                     *why);
        down.abort();
        co_return;
      }
      const auto* cla = cfg->endpoints_of(*tcp_cluster);
      const Endpoint* ep = cla ? lb.pick(*tcp_cluster, cla->endpoints, random) : nullptr;
      if (!ep) {
        spdlog::info("CONNECT {} from {}: not HTTP, and the TCP chain has no healthy upstream (flag UH)",
                     s->request().authority, d->src);
        down.abort();
        co_return;
      }
      std::optional<std::string> sniffed(std::move(initial));
      co_await serve_tcp(s, d->peer, d->src, cfg, *ep, tcp_cluster->connect_timeout, std::move(sniffed));
      co_return;
    }
    http::ReadBuffer buf;
    buf.put(initial);
    co_await serve_http1(std::move(down), std::move(buf), std::move(d));
  }

  // Request body bytes read from the client: what the flow took over, else what is left.
  static uint64_t request_bytes(const FlowResult& fr, const std::shared_ptr<http::BodyReader>& body) {
    if (fr.request_body) return fr.request_body->received();
    return body ? body->bytes() : 0;
  }

  asio::awaitable<void> serve_http1(http::AnyStream down, http::ReadBuffer buf, std::shared_ptr<Downstream> d) {
    auto conn = std::make_shared<http::Connection>(std::move(down));
    conn->buf = std::move(buf);
    for (;;) {
      auto rr = co_await http::read_request_head(conn);
      if (rr.error == http::ReadError::Closed || rr.error == http::ReadError::Reset) break;
      if (rr.error != http::ReadError::None) {
        const bool large = rr.error == http::ReadError::TooLarge;
        auto resp = local_reply(large ? 431 : 400, large ? "Request Header Fields Too Large" : "Bad Request");
        co_await http::write_response(conn->stream, resp, http::Protocol::Http11, false, true);
        spdlog::debug("request from {} rejected: {} (flag DPE)", d->src, rr.detail);
        break;
      }
      Active live(shared->active_requests);
      const auto start = std::chrono::steady_clock::now();
      auto cfg = shared->config.load();
      RequestRecord rec = begin_record(*d, *cfg, rr.request);
      const bool head = rr.request.head.method == "HEAD";
      const auto protocol = rr.request.protocol;
      const auto req_body = rr.request.body_stream;
      auto span = trace_begin(*d, rr.request);
      FlowResult fr = co_await route(*d, cfg, rr.request);
      const bool upgrade = fr.upgraded && fr.response.status == 101;
      // A request body nobody read to its end cannot be skipped to reach the next request.
      const bool body_pending = req_body && !req_body->finished() && !(fr.request_body && fr.request_body->complete());
      const bool close =
          !upgrade && (!rr.keep_alive || body_pending || shared->draining.load(std::memory_order_relaxed));
      auto tap = tap_trailers(fr.response);
      auto wr = co_await http::write_response_stream(conn->stream, fr.response, protocol, head, close);
      if (tap && !tap->trailers.empty()) fr.response.trailers = tap->trailers;
      if (wr.body_error) fr.flags = fr.flags == "-" ? "UC" : fr.flags + ",UC";  // upstream failed mid-body
      const uint64_t response_bytes = wr.body_bytes;
      finish_record(rec, *cfg, rr.request, fr, wr.ok || wr.body_error, start, request_bytes(fr, req_body),
                    response_bytes);
      trace_end(span, rec);
      if (upgrade && wr.ok) {
        co_await http::relay(conn->stream, fr.upgraded->stream, conn->buf.take(), fr.upgraded->buf.take());
        co_return;
      }
      if (!wr.ok) {
        // A body cut short or a client that left: the connection cannot carry on.
        if (fr.request_body) fr.request_body->abort_source();
        conn->stream.abort();
        co_return;
      }
      if (close || wr.must_close) break;
    }
    conn->stream.shutdown_write();
  }

  // HTTP/2 with prior knowledge inside the tunnel: one session, its streams served
  // concurrently, each through the same request flow as HTTP/1.1.
  asio::awaitable<void> serve_h2(std::shared_ptr<hbone::Stream> s, std::shared_ptr<Downstream> d, std::string initial) {
    http::H2Session::Options o;
    o.max_body = shared->opts.max_body;
    auto handler = [w = weak_from_this(), d](std::shared_ptr<http::H2Session> sess, int32_t id, http::Request req) {
      if (auto self = w.lock()) {
        asio::co_spawn(self->io, self->serve_h2_request(std::move(sess), id, std::move(req), d), asio::detached);
      }
    };
    auto sess = http::H2Session::server(http::AnyStream(s), o, std::move(handler));
    std::erase_if(inbound_h2, [](const auto& x) { return x.expired(); });
    inbound_h2.push_back(sess);
    co_await sess->run(std::move(initial));
  }

  asio::awaitable<void> serve_h2_request(std::shared_ptr<http::H2Session> sess, int32_t id, http::Request req,
                                         std::shared_ptr<Downstream> d) {
    auto keep = shared_from_this();
    Active live(shared->active_requests);
    const auto start = std::chrono::steady_clock::now();
    auto cfg = shared->config.load();
    RequestRecord rec = begin_record(*d, *cfg, req);
    const auto req_body = req.body_stream;
    auto span = trace_begin(*d, req);
    FlowResult fr = co_await route(*d, cfg, req);
    // The response streams on its own (the session pulls the body as the client's window
    // allows); this waits for its end for the telemetry.
    struct Outcome {
      explicit Outcome(asio::any_io_executor ex) : signal(ex) {}
      http::Signal signal;
      bool finished = false;
      bool complete = false;
      uint64_t bytes = 0;
    };
    auto outcome = std::make_shared<Outcome>(io.get_executor());
    auto tap = tap_trailers(fr.response);
    const bool started =
        sess->respond(id, fr.response, req.head.method == "HEAD", [outcome](bool complete, uint64_t bytes) {
          outcome->finished = true;
          outcome->complete = complete;
          outcome->bytes = bytes;
          outcome->signal.notify();
        });
    while (started && !outcome->finished) co_await outcome->signal.wait();
    if (!outcome->complete && fr.request_body) fr.request_body->abort_source();
    if (tap && !tap->trailers.empty()) fr.response.trailers = tap->trailers;
    finish_record(rec, *cfg, req, fr, outcome->complete, start, request_bytes(fr, req_body), outcome->bytes);
    trace_end(span, rec);
  }

  // Ingress role: one downstream TCP connection from outside the mesh, HTTP/1.1 through the
  // same request flow as a tunnelled one (no peer identity: principals never match).
  asio::awaitable<void> serve_gateway(tcp::socket sock, std::string route_name, std::optional<tcp::endpoint> remote) {
    auto keep = shared_from_this();
    Active live(shared->active_streams);
    boost::system::error_code ec;
    auto peer = std::make_shared<hbone::PeerInfo>();
    if (remote) {
      peer->remote = *remote;
    } else {
      peer->remote = sock.remote_endpoint(ec);
      peer->local = sock.local_endpoint(ec);
    }
    (void)hbone::sockopt::set_nodelay(sock.native_handle());
    auto d = std::make_shared<Downstream>();
    d->peer = peer;
    d->src = hbone::format_authority(peer->remote.address(), peer->remote.port());
    d->src_ip = peer->remote.address();
    d->route_name = std::move(route_name);
    d->gateway = true;
    http::ReadBuffer buf;
    co_await serve_http1(http::AnyStream(std::move(sock)), std::move(buf), std::move(d));
  }

  void drain() {
    boost::system::error_code ignored;
    if (acceptor) acceptor->close(ignored);
    for (auto& w : inbound) {
      if (auto c = w.lock()) c->drain();
    }
    for (auto& w : inbound_h2) {
      if (auto sess = w.lock()) sess->retire();
    }
    connector.drain();
  }

  void force_close() {
    for (auto& w : inbound) {
      if (auto c = w.lock()) c->close("termination deadline");
    }
    connector.force_close();
  }
};

Proxy::Proxy(common::Runtime& rt, ProxyOptions opts, common::Identity self, Telemetry& telemetry)
    : rt_(rt), shared_(std::make_shared<Shared>(std::move(opts), std::move(self), telemetry)) {
  for (size_t i = 0; i < rt_.workers(); ++i) workers_.push_back(std::make_shared<Worker>(rt_.worker(i), shared_));
}

Proxy::~Proxy() = default;

common::Status Proxy::start() {
  const auto& o = shared_->opts;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(o.listen_address, ec);
  if (ec) return common::make_error("listen address " + o.listen_address + ": " + ec.message());
  uint16_t port = o.port;
  for (auto& w : workers_) {
    if (o.gateway) break;  // the ingress role's listeners are waypoint/ingress's
    auto acc = std::make_unique<tcp::acceptor>(w->io);
    tcp::endpoint ep(addr, port);
    acc->open(ep.protocol(), ec);
    if (!ec && addr.is_v6()) acc->set_option(asio::ip::v6_only(false), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      if (auto st = hbone::sockopt::set_reuseport(acc->native_handle()); !st) {
        return common::make_error("listener " + std::to_string(port) + ": " + st.error());
      }
    }
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(1024, ec);
    if (ec)
      return common::make_error("HBONE listener " + addr.to_string() + ":" + std::to_string(port) + ": " +
                                ec.message());
    // Port 0: the first worker's bind picks the port, the others join it (SO_REUSEPORT).
    port = acc->local_endpoint().port();
    w->acceptor = std::move(acc);
  }
  bound_port_ = o.gateway ? 0 : port;
  for (auto& w : workers_) {
    if (w->acceptor) asio::co_spawn(w->io, w->accept_loop(), asio::detached);
  }
  if (!workers_.empty() && !shared_->sweep_timer) {
    shared_->sweep_timer = std::make_shared<asio::steady_timer>(workers_.front()->io);
    asio::co_spawn(workers_.front()->io, sweep_loop(shared_, shared_->sweep_timer), asio::detached);
  }
  return common::ok_status();
}

void Proxy::serve_gateway(size_t worker, tcp::socket sock, std::string route_name, std::optional<tcp::endpoint> remote) {
  auto w = workers_.at(worker);
  asio::co_spawn(w->io, w->serve_gateway(std::move(sock), std::move(route_name), remote), asio::detached);
}

void Proxy::set_config(ConfigSnapshotPtr config) {
  {
    std::lock_guard<std::mutex> l(shared_->publish_mu);
    auto prev = shared_->clusters.load();
    shared_->clusters.store(upstream::build_runtimes(*config, prev.get(), &shared_->telemetry.cluster_metrics()));
  }
  shared_->config.store(std::move(config));
  // The sweeper recomputes when the next outlier sweep is due.
  if (auto t = shared_->sweep_timer) asio::post(t->get_executor(), [t] { t->cancel(); });
}

nlohmann::json Proxy::cluster_status() const {
  return upstream::dump_runtimes(*shared_->clusters.load());
}
ConfigSnapshotPtr Proxy::config() const {
  return shared_->config.load();
}

common::Status Proxy::set_credentials(std::shared_ptr<const common::tls::Credentials> creds) {
  auto ctx = hbone::make_tls_contexts(std::move(creds));
  if (!ctx) return common::make_error(ctx.error());
  shared_->tls.store(std::make_shared<const hbone::TlsContexts>(std::move(ctx.value())));
  return common::ok_status();
}

bool Proxy::has_credentials() const {
  return shared_->tls.load() != nullptr;
}

void Proxy::drain() {
  shared_->draining.store(true);
  for (auto& w : workers_) asio::post(w->io, [w] { w->drain(); });
}

namespace {
asio::awaitable<void> sweep_loop(std::shared_ptr<Proxy::Shared> shared, std::shared_ptr<asio::steady_timer> t) {
  while (!shared->draining.load()) {
    auto next = upstream::sweep_outliers(*shared->clusters.load(), upstream::steady_now_ms());
    t->expires_after(next.value_or(std::chrono::seconds(5)));
    auto [ec] = co_await t->async_wait(kTuple);
    (void)ec;  // cancelled = new config: recompute
  }
}
}  // namespace

void Proxy::force_close() {
  if (auto t = shared_->sweep_timer) asio::post(t->get_executor(), [t] { t->cancel(); });
  for (auto& w : workers_) asio::post(w->io, [w] { w->force_close(); });
}

int64_t Proxy::active_requests() const {
  return shared_->active_requests.load();
}
int64_t Proxy::active_streams() const {
  return shared_->active_streams.load();
}

}  // namespace waypoint
