// The HTTP requests of one downstream (proxy_worker.h): inner protocol sniffing, HTTP/1.1 and
// HTTP/2 serving through the request flow, the telemetry record and the trace span.
#include <spdlog/spdlog.h>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "hbone/headers.h"
#include "hbone/socket_options.h"
#include "waypoint/http/h2_session.h"
#include "waypoint/http/http1.h"
#include "waypoint/http/relay.h"
#include "waypoint/http/sniff.h"
#include "waypoint/proxy_worker.h"
#include "waypoint/router/router.h"

namespace waypoint {

namespace asio = boost::asio;
using asio::ip::tcp;

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

// Request body bytes read from the client: what the flow took over, else what is left.
uint64_t request_bytes(const FlowResult& fr, const std::shared_ptr<http::BodyReader>& body) {
  if (fr.request_body) return fr.request_body->received();
  return body ? body->bytes() : 0;
}
}  // namespace

RequestRecord Proxy::Worker::begin_record(const Downstream& d, const ConfigSnapshot& cfg, const http::Request& req) {
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
  if (d.connect_ip) rec.service = cfg.workloads->find_service("", *d.connect_ip);
  return rec;
}

asio::awaitable<FlowResult> Proxy::Worker::route(const Downstream& d, const ConfigSnapshotPtr& cfg,
                                                 http::Request& req) {
  FlowResult fr;
  // An edge proxy (Envoy's HCM at a gateway, which trusts no downstream hop) says what the client
  // used, overwriting what the client sent; virtual hosts with require_tls read it.
  if (d.gateway) req.head.headers.set("x-forwarded-proto", d.tls ? "https" : "http");
  if (const RouteConfig* rc = cfg->route(d.route_name)) {
    auto e = env();
    authz::Downstream az;
    az.peer_principal = d.peer_principal;
    az.source_ip = d.src_ip;
    if (d.connect_ip) {
      az.destination_ip = d.connect_ip;
      az.destination_port = d.connect_port;
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

tracing::ActiveSpan Proxy::Worker::trace_begin(const Downstream& d, const ConfigSnapshot& cfg, http::Request& req) {
  if (!shared->opts.tracer) return {};
  // The virtual host's tracing from xDS (Telemetry); none = the environment's settings.
  tracing::RequestTracing x;
  const VirtualHost* vh = nullptr;
  if (const RouteConfig* rc = cfg.route(d.route_name)) {
    vh = router::select_virtual_host(*rc, req.head.authority);
    if (vh) {
      x.route = vh->tracing.get();
      x.provider = vh->tracing_provider.get();
    }
  }
  // Nothing to report to (no provider on the virtual host, no collector in the environment, or
  // span reporting off): no span, and none of the collector pick and naming below per request.
  if (x.provider ? !x.provider->report : shared->opts.tracer->options().collector.host.empty()) return {};
  if (x.provider && x.provider->report) {
    // The collector cluster's endpoint; only sampled requests reach the allocation below,
    // but the pick is cheap either way and keeps begin() free of config lookups.
    if (const Cluster* c = cfg.cluster(x.provider->collector_cluster)) {
      const auto* cla = cfg.endpoints_of(*c);
      if (const Endpoint* ep = cla ? lb.pick(*c, cla->endpoints, random) : nullptr)
        x.collector = std::make_shared<const tracing::CollectorAddress>(
            tracing::CollectorAddress{ep->address, std::to_string(ep->port)});
    }
  }
  std::string name;
  if (d.gateway) {
    // Ingress role: Istio names the span after the route's host and port (the virtual host).
    name = vh ? vh->name : req.head.authority;
  } else {
    name = d.hostname.empty() ? d.connect_authority : d.hostname;
    if (!d.hostname.empty()) {
      if (d.connect_ip) name += ":" + std::to_string(d.connect_port);
    }
  }
  return shared->opts.tracer->begin(req.head.headers, random, name + "/*", x);
}

void Proxy::Worker::trace_end(tracing::ActiveSpan& span, const RequestRecord& rec) {
  if (span.sampled) shared->opts.tracer->end(span, rec);
}

void Proxy::Worker::finish_record(RequestRecord& rec, const ConfigSnapshot& cfg, const http::Request& req,
                                  FlowResult& fr, bool written, std::chrono::steady_clock::time_point start,
                                  uint64_t request_bytes, uint64_t response_bytes) {
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
  rec.rbac_shadow = std::move(fr.rbac_shadow);
  if (auto gs = fr.response.trailers.get("grpc-status")) {
    rec.grpc_status = std::string(*gs);
  } else if (auto hs = fr.response.headers.get("grpc-status")) {
    rec.grpc_status = std::string(*hs);
  }
  if (fr.endpoint) {
    if (auto ip = fr.endpoint->ip ? fr.endpoint->ip : ztunnel::parse_ip(fr.endpoint->address)) {
      rec.dst = cfg.workloads->find_workload("", *ip);
      if (rec.dst) rec.dst_identity = rec.dst->identity();
    }
  }
  rec.duration = std::chrono::steady_clock::now() - start;
  shared->telemetry.record(rec);
}

asio::awaitable<void> Proxy::Worker::serve_inner(std::shared_ptr<hbone::Stream> s, std::shared_ptr<Downstream> d,
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
    co_await serve_h2(http::AnyStream(s), std::move(d), std::move(initial));
    co_return;
  }
  if (kind == http::Sniffed::Other && tcp_cluster) {
    if (auto why = tcp_denied(*tcp_cluster, *d->peer, d->src, d->connect_authority)) {
      spdlog::info("CONNECT {} from {}: not HTTP, TCP connection denied, {} (RBAC)", d->connect_authority, d->src,
                   *why);
      tcp_ended_early(tcp_record(*d->peer, d->src, *cfg, d->connect_authority, tcp_cluster->name), "RBAC");
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
    co_await serve_tcp(s, d->peer, d->src, cfg, *ep, tcp_cluster->connect_timeout, std::move(sniffed),
                       tcp_cluster->name);
    co_return;
  }
  http::ReadBuffer buf;
  buf.put(initial);
  co_await serve_http1(std::move(down), std::move(buf), std::move(d));
}

asio::awaitable<void> Proxy::Worker::serve_http1(http::AnyStream down, http::ReadBuffer buf,
                                                 std::shared_ptr<Downstream> d) {
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
    rec.scope = cfg;
    const bool head = rr.request.head.method == "HEAD";
    const auto protocol = rr.request.protocol;
    const auto req_body = rr.request.body_stream;
    auto span = trace_begin(*d, *cfg, rr.request);
    FlowResult fr = co_await route(*d, cfg, rr.request);
    const bool upgrade = fr.upgraded && fr.response.status == 101;
    // A request body nobody read to its end cannot be skipped to reach the next request.
    const bool body_pending = req_body && !req_body->finished() && !(fr.request_body && fr.request_body->complete());
    const bool close = !upgrade && (!rr.keep_alive || body_pending || shared->draining.load(std::memory_order_relaxed));
    auto tap = tap_trailers(fr.response);
    auto wr = co_await http::write_response_stream(conn->stream, fr.response, protocol, head, close,
                                                   &conn->head_buffer);
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

asio::awaitable<void> Proxy::Worker::serve_h2(http::AnyStream down, std::shared_ptr<Downstream> d,
                                              std::string initial) {
  http::H2Session::Options o;
  o.max_body = shared->opts.max_body;
  auto handler = [w = weak_from_this(), d](std::shared_ptr<http::H2Session> sess, int32_t id, http::Request req) {
    if (auto self = w.lock()) {
      asio::co_spawn(self->io, self->serve_h2_request(std::move(sess), id, std::move(req), d), asio::detached);
    }
  };
  auto sess = http::H2Session::server(std::move(down), o, std::move(handler));
  std::erase_if(inbound_h2, [](const auto& x) { return x.expired(); });
  inbound_h2.push_back(sess);
  co_await sess->run(std::move(initial));
}

asio::awaitable<void> Proxy::Worker::serve_h2_request(std::shared_ptr<http::H2Session> sess, int32_t id,
                                                      http::Request req, std::shared_ptr<Downstream> d) {
  auto keep = shared_from_this();
  Active live(shared->active_requests);
  const auto start = std::chrono::steady_clock::now();
  auto cfg = shared->config.load();
  RequestRecord rec = begin_record(*d, *cfg, req);
  rec.scope = cfg;
  const auto req_body = req.body_stream;
  auto span = trace_begin(*d, *cfg, req);
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

asio::awaitable<void> Proxy::Worker::serve_gateway(tcp::socket sock, std::string route_name,
                                                   std::optional<tcp::endpoint> remote) {
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
  d->tls = remote.has_value();  // only tls_terminator hands over a connection not the client's own
  // HTTP/2 with prior knowledge (h2c, or ALPN h2 behind tls_terminator) starts with the
  // connection preface; anything else goes to the HTTP/1.1 codec (which answers 400 to junk).
  http::AnyStream down(std::move(sock));
  std::string initial;
  std::array<char, 4096> chunk;
  http::Sniffed kind = http::Sniffed::NeedMore;
  while (kind == http::Sniffed::NeedMore) {
    auto [read_ec, n] = co_await down.async_read_some(asio::buffer(chunk), kTuple);
    initial.append(chunk.data(), n);
    kind = http::sniff(initial);
    if (read_ec && kind == http::Sniffed::NeedMore) {
      if (initial.empty()) {
        down.shutdown_write();
        co_return;
      }
      kind = http::Sniffed::Other;
    }
  }
  if (kind == http::Sniffed::Http2) {
    co_await serve_h2(std::move(down), std::move(d), std::move(initial));
    co_return;
  }
  http::ReadBuffer buf;
  buf.put(initial);
  co_await serve_http1(std::move(down), std::move(buf), std::move(d));
}

}  // namespace waypoint
