#include "waypoint/request_flow.h"

#include "waypoint/ingress/waypoint_hop.h"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>

#include "waypoint/authz/ext_authz_filter.h"
#include "waypoint/http/body.h"
#include "waypoint/http/h2_session.h"
#include "waypoint/http/http1.h"
#include "waypoint/ratelimit/global_filter.h"
#include "waypoint/router/grpc_status.h"
#include "waypoint/router/router.h"
#include "waypoint/upstream/cluster_state.h"
#include "waypoint/upstream/pool_gate.h"
#include "waypoint/upstream/request_hash.h"

namespace waypoint {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kConnectFailureBody =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
constexpr std::string_view kResetBody =
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
constexpr std::string_view kOverflowBody =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

asio::awaitable<void> sleep_for(asio::any_io_executor ex, Duration d) {
  asio::steady_timer t(ex, d);
  co_await t.async_wait(kTuple);
}

void add_flag(std::string& flags, std::string_view f) {
  if (flags == "-") {
    flags = std::string(f);
  } else {
    flags += ',';
    flags += f;
  }
}

bool is_grpc(const router::HttpRequest& head) {
  auto ct = head.headers.get("content-type");
  return ct && ct->starts_with("application/grpc");
}

http::Response from_local(const router::LocalResponse& l) {
  http::Response r;
  r.status = l.status;
  r.headers = l.headers;
  r.body = l.body;
  if (l.grpc_status) {
    r.status = 200;
    r.body.clear();
    r.headers.set("content-type", "application/grpc");
    r.headers.set("grpc-status", std::to_string(*l.grpc_status));
    if (!l.body.empty()) r.headers.set("grpc-message", l.body);
  } else if (!r.body.empty() && !r.headers.contains("content-type")) {
    r.headers.set("content-type", "text/plain");
  }
  return r;
}

// Facts §3.4: explicit http2/grpc ports use h2 upstream; auto-detected ports (use downstream
// protocol) follow the client; plain http ports use HTTP/1.1.
bool upstream_h2(const Cluster& c, const http::Request& req) {
  switch (c.policy.upstream_protocol) {
    case UpstreamProtocol::Http2:
      return true;
    case UpstreamProtocol::UseDownstream:
      return req.protocol == http::Protocol::Http2;
    case UpstreamProtocol::Http1:
      return false;
  }
  return false;
}

struct AttemptResult {
  router::AttemptOutcome outcome;
  http::Response response;  // its body_stream owns the upstream connection / stream
  bool global_timeout = false;
  bool downstream_gone = false;          // the request body could not be read from the client
  std::unique_ptr<upstream::Conn> conn;  // a 101 Switching Protocols: the upgraded connection
  std::string detail;
};

// An upstream HTTP/1.1 connection while its response body streams: returned to the keep-alive
// pool when the body was read to its end, closed otherwise (a client that left, a retry that
// dropped the response, an error).
struct ConnSlot {
  std::unique_ptr<upstream::Conn> conn;
};

// One try: connection, request (head, then the body through this attempt's own cursor over
// the replay buffer), response head, under the attempt's timer. The timer aborts the upstream
// stream, which ends the pending read (hbone::Stream has no per-op cancellation). The response
// body is not read here: it streams to the client, and retries are decided on the head.
// `rt`: the cluster's traffic-policy runtime (null: no circuit breaking on this attempt).
asio::awaitable<AttemptResult> attempt(FlowEnv& env, const upstream::Target& target, const Cluster& cluster,
                                       const http::Request& req, std::shared_ptr<http::ReplayBody> body,
                                       router::AttemptTimer timer, bool h2, const upstream::ClusterRuntime* rt) {
  AttemptResult ar;
  struct Guard {
    bool fired = false;
    upstream::Conn* conn = nullptr;
    std::shared_ptr<http::H2Session> h2;  // HTTP/2 upstream: the stream to reset
    int32_t h2_stream = 0;
  };
  auto g = std::make_shared<Guard>();
  asio::steady_timer t(env.exec);
  if (timer.timeout.count() > 0) {
    t.expires_after(timer.timeout);
    t.async_wait([g](boost::system::error_code ec) {
      if (ec) return;
      g->fired = true;
      if (g->conn) g->conn->stream.abort();
      if (g->h2 && g->h2_stream) g->h2->cancel(g->h2_stream);
    });
  }
  auto timed_out = [&] {
    if (timer.per_try) {
      ar.outcome.failure = router::AttemptFailure::PerTryTimeout;
    } else {
      ar.global_timeout = true;
    }
  };
  auto body_failed = [&] { return body && body->source_failed(); };
  // HTTP/2 upstream: one stream on the endpoint's multiplexed connection. A stream the server
  // refused (REFUSED_STREAM, or beyond its GOAWAY) was never processed: once more on a fresh
  // connection, as for a dead keep-alive connection below.
  for (int tries = 0; h2 && tries < 2; ++tries) {
    auto sess = co_await env.connector->acquire_h2(
        target, env.client_tls, env.self_identity, cluster.connect_timeout,
        std::chrono::duration_cast<std::chrono::milliseconds>(cluster.policy.idle_timeout));
    if (!sess) {
      if (g->fired) {
        timed_out();
      } else {
        ar.outcome.failure = router::AttemptFailure::ConnectFailure;
        ar.outcome.request_sent = false;
        ar.detail = sess.error();
      }
      break;
    }
    if (g->fired) {
      timed_out();
      break;
    }
    std::shared_ptr<http::BodyReader> cursor;
    if (body) cursor = body->cursor();
    const int32_t id = sess.value()->submit(req, cursor);
    if (id == 0) {
      if (tries == 0 && (!body || body->replayable())) continue;
      ar.outcome.failure = router::AttemptFailure::Overflow;
      ar.outcome.request_sent = false;
      ar.detail = "HTTP/2 upstream connection takes no more streams";
      break;
    }
    g->h2 = sess.value();
    g->h2_stream = id;
    auto res = co_await sess.value()->wait_headers(id);
    g->h2 = nullptr;
    if (g->fired) {
      timed_out();
      break;
    }
    if (!res.ok) {
      if (body_failed()) {
        ar.downstream_gone = true;
        ar.outcome.failure = router::AttemptFailure::Reset;
        ar.detail = "downstream request body cut short";
        break;
      }
      if (res.refused && tries == 0 && (!body || body->replayable())) continue;
      ar.outcome.failure = res.refused ? router::AttemptFailure::RefusedStream : router::AttemptFailure::Reset;
      ar.outcome.request_sent = !res.refused;
      ar.detail = res.detail;
      break;
    }
    ar.outcome.failure = router::AttemptFailure::None;
    ar.outcome.status = res.response.status;
    ar.response = std::move(res.response);
    break;
  }
  // A reused keep-alive connection the server had closed fails without a byte: that is not
  // the upstream's answer, so the request goes once more on a fresh connection.
  for (int tries = 0; !h2 && tries < 2; ++tries) {
    std::unique_ptr<upstream::Conn> got;
    std::string connect_error;
    if (rt) {
      // Named, not a temporary in the co_await expression (GCC 12 mishandles those at -O2).
      std::function<bool()> cancelled = [g] { return g->fired; };
      auto gr = co_await upstream::acquire_gated(*env.connector, rt->state, cluster, target, env.client_tls,
                                                 env.self_identity, std::move(cancelled));
      if (gr.overflow) {
        ar.outcome.failure = router::AttemptFailure::Overflow;
        ar.outcome.request_sent = false;
        ar.detail = "max_pending_requests reached";
        break;
      }
      got = std::move(gr.conn);
      connect_error = std::move(gr.error);
    } else {
      auto c = co_await env.connector->acquire(target, env.client_tls, env.self_identity, cluster.connect_timeout);
      if (c) {
        got = std::move(c.value());
      } else {
        connect_error = c.error();
      }
    }
    if (!got) {
      if (g->fired) {
        timed_out();
      } else {
        ar.outcome.failure = router::AttemptFailure::ConnectFailure;
        ar.outcome.request_sent = false;
        ar.detail = connect_error;
      }
      break;
    }
    if (g->fired) {
      got->stream.abort();
      timed_out();
      break;
    }
    g->conn = got.get();
    const bool reused = got->reused;
    auto slot = std::make_shared<ConnSlot>();
    slot->conn = std::move(got);
    upstream::Conn& conn = *slot->conn;
    std::shared_ptr<http::BodyReader> cursor;
    if (body) cursor = body->cursor();
    auto wr = co_await http::write_request_stream(conn.stream, req, cursor, &conn.head_buffer);
    http::ReadResponseResult rr;
    // A server may answer before it read the whole request (413, 401 ...) and close: its
    // answer is still read when the write failed; that connection is never reused.
    if (wr.ok || !wr.body_error) {
      http::BodyDone done = [slot, connector = env.connector, keep = env.owner, sent = wr.ok](bool clean) {
        if (!slot->conn) return;
        if (clean && sent) {
          connector->release(std::move(slot->conn));
        } else {
          slot->conn->stream.abort();
        }
      };
      rr = co_await http::read_response_head(conn.stream, conn.buf, req.head.method == "HEAD", slot, std::move(done));
    }
    g->conn = nullptr;
    if (g->fired) {
      conn.stream.abort();
      rr.response.body_stream = nullptr;
      timed_out();
      break;
    }
    if (!wr.ok && wr.body_error) {
      // The client went away (or reset its stream) mid-upload: that upstream request ends here.
      conn.stream.abort();
      ar.downstream_gone = true;
      ar.outcome.failure = router::AttemptFailure::Reset;
      ar.detail = "downstream request body cut short: " + wr.detail;
      break;
    }
    if (rr.error != http::ReadError::None || (!wr.ok && !rr.any_bytes)) {
      conn.stream.abort();
      if (reused && !rr.any_bytes && (!body || body->replayable())) continue;
      ar.outcome.failure = router::AttemptFailure::Reset;
      ar.outcome.request_sent = wr.ok;
      ar.detail = wr.ok ? rr.detail : "write failed: " + wr.detail;
      break;
    }
    ar.outcome.failure = router::AttemptFailure::None;
    ar.outcome.status = rr.response.status;
    ar.response = std::move(rr.response);
    if (ar.response.status == 101 && slot->conn) ar.conn = std::move(slot->conn);
    break;
  }
  t.cancel();
  co_return ar;
}

// Fire and forget: the copy of FlowEnv (with its owner reference) keeps the worker's pieces
// alive; `config` keeps the policy alive. The mirror reads the request body through its own
// cursor (a body past the buffer limit cuts the mirrored request short: it is reset), and
// reads its response to the end so the connection can be reused.
asio::awaitable<void> mirror(FlowEnv env, ConfigSnapshotPtr config, const MirrorPolicy& policy, http::Request req,
                             std::shared_ptr<http::ReplayBody> body) {
  const Cluster* cluster = config->cluster(policy.cluster);
  if (!cluster) co_return;
  const auto* cla = config->endpoints_of(*cluster);
  if (!cla) co_return;
  const Endpoint* ep = env.lb->pick(*cluster, cla->endpoints, *env.random);
  if (!ep) co_return;
  auto target = make_target(*config, *ep);
  if (!target) co_return;
  router::AttemptTimer timer;
  timer.timeout = std::chrono::seconds(30);
  timer.per_try = true;
  auto ar = co_await attempt(env, *target, *cluster, req, std::move(body), timer, upstream_h2(*cluster, req), nullptr);
  if (auto rb = std::move(ar.response.body_stream)) {
    for (;;) {
      auto c = co_await rb->next();
      if (c.end || c.error) break;
    }
  }
}

// One attempt's result for outlier detection (non-split: local origin errors count as 503/504).
void report_outlier(FlowEnv& env, const upstream::ClusterRuntime& rt, const Endpoint& ep, const AttemptResult& ar) {
  const auto& eps = rt.cla->endpoints;
  if (&ep < eps.data() || &ep >= eps.data() + eps.size()) return;
  const size_t idx = static_cast<size_t>(&ep - eps.data());
  upstream::AttemptResult kind = upstream::AttemptResult::Response;
  if (ar.global_timeout) {
    kind = upstream::AttemptResult::Timeout;
  } else {
    switch (ar.outcome.failure) {
      case router::AttemptFailure::None:
        break;
      case router::AttemptFailure::ConnectFailure:
        kind = upstream::AttemptResult::ConnectFailed;
        break;
      case router::AttemptFailure::PerTryTimeout:
        kind = upstream::AttemptResult::Timeout;
        break;
      case router::AttemptFailure::Overflow:
        return;  // never reached the host
      default:
        kind = upstream::AttemptResult::Reset;
        break;
    }
  }
  const uint16_t code = upstream::outlier_code(kind, ar.outcome.status);
  bool ejected = false;
  upstream::report(*rt.hosts[idx], rt.state->outlier, *rt.cluster->policy.outlier_detection, code, rt.hosts.size(),
                   upstream::steady_now_ms(), env.random->next(), &rt.state->stats, ejected);
}

}  // namespace

std::optional<upstream::Target> make_target(const ConfigSnapshot& cfg, const Endpoint& e) {
  auto ip = e.ip ? e.ip : ztunnel::parse_ip(e.address);
  if (!ip) return std::nullopt;
  upstream::Target t;
  t.address = asio::ip::tcp::endpoint(*ip, e.port);
  t.key = upstream::endpoint_key(e);
  // Ingress role: a Service VIP as endpoint = cross its waypoint (ingress/waypoint_hop.h).
  if (auto hop = ingress::waypoint_hop(*cfg.workloads, *ip)) {
    t.address = asio::ip::tcp::endpoint(hop->ip, e.port);  // dialled at the HBONE port
    t.hbone = true;
    t.identity = hop->identity;
    return t;
  }
  if (const auto* w = cfg.workloads->find_workload("", *ip);
      w && w->tunnel_protocol == ztunnel::TunnelProtocol::Hbone) {
    t.hbone = true;
    t.identity = w->identity();
  }
  return t;
}

http::Response local_reply(uint16_t status, std::string body) {
  http::Response r;
  r.status = status;
  if (!body.empty()) r.headers.set("content-type", "text/plain");
  r.body = std::move(body);
  return r;
}

std::string make_request_id(router::Random& random) {
  uint64_t hi = random.next();
  uint64_t lo = random.next();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  // 8-4-4-4-12 lower-case hex, as Envoy's UUID4 (no printf on the per-request path).
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  size_t at = 0;
  auto put = [&](uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) out[at + static_cast<size_t>(digits - 1 - i)] = kHex[(v >> (4 * i)) & 0xf];
    at += static_cast<size_t>(digits) + 1;
  };
  put(hi >> 32, 8);
  put((hi >> 16) & 0xffff, 4);
  put(hi & 0xffff, 4);
  put(lo >> 48, 4);
  put(lo & 0xffffffffffffULL, 12);
  return out;
}

void grpcify_local_reply(http::Response& r) {
  if (r.headers.contains("grpc-status") || r.status < 400) return;
  const uint16_t status = r.status;
  r.headers.set("content-type", "application/grpc");
  r.headers.set("grpc-status", std::to_string(router::grpc_status_of_http(status)));
  if (!r.body.empty()) r.headers.set("grpc-message", r.body);
  r.body.clear();
  r.status = 200;
}

namespace {

asio::awaitable<FlowResult> serve_request_impl(FlowEnv& env, ConfigSnapshotPtr config, const RouteConfig& rc,
                                               http::Request& req, std::string_view source_ip,
                                               const authz::Downstream* downstream) {
  FlowResult out;
  auto& head = req.head;
  if (!head.headers.contains("x-request-id")) head.headers.add("x-request-id", make_request_id(*env.random));
  const bool grpc = is_grpc(head);

  auto sel = router::select(rc, head, env.random->next());
  // L7 authorization runs first (Envoy's filter order), also for a request no route matches:
  // jwt_authn, CUSTOM (the ext_authz check of what its rules select), then DENY/ALLOW/AUDIT.
  router::HeaderList authz_response_headers;  // the ext_authz service's, for the response
  if (sel.vhost) {
    static const authz::Downstream kUnknownPeer;
    const authz::Downstream& down = downstream ? *downstream : kUnknownPeer;
    authz::AuthnState state;
    auto az = authz::run_authn(*sel.vhost, sel.route, head, down, state);
    if (!az.denied && state.custom_check) {
      const authz::ExtAuthzConfig* ea = authz::effective_ext_authz(*sel.vhost, sel.route);
      if (!ea) {  // CUSTOM rules without a service to ask: fail closed
        az.denied = true;
        az.status = 403;
        az.flag = std::string(authz::kExtAuthzFlag);
        az.reason = "a CUSTOM rule matched but no ext_authz filter is configured";
      } else {
        auto ar = co_await authz::check_ext_authz(env, *config, *ea, head, down, req.protocol);
        if (!ar.error.empty()) spdlog::debug("ext_authz {}: {}", ea->cluster, ar.error);
        if (ar.reply) {
          out.flags = std::string(authz::kExtAuthzFlag);
          out.response = local_reply(ar.status, std::move(ar.body));
          for (const auto& f : ar.reply_headers.fields()) out.response.headers.set(f.name, f.value);
          if (sel.route) out.route_name = sel.route->name;
          co_return out;
        }
        authz_response_headers = std::move(ar.response_headers);
      }
    }
    if (!az.denied) {
      az = authz::run_rbac(*sel.vhost, sel.route, head, down, state);
      out.rbac_shadow = std::move(az.shadow);
    }
    if (az.denied) {
      spdlog::debug("request {} {} {}: {}", head.method, head.authority, head.path, az.reason);
      if (!az.flag.empty()) out.flags = az.flag;
      out.response = local_reply(az.status, az.body);
      if (sel.route) out.route_name = sel.route->name;
      co_return out;
    }
  }
  // Envoy's SSL redirect: chosen with the virtual host, before any route (a virtual host of an
  // httpsRedirect server may have none), from x-forwarded-proto (the gateway sets it).
  if (sel.vhost && sel.vhost->require_tls && head.headers.get("x-forwarded-proto") != "https") {
    out.response = local_reply(301, "");
    out.response.headers.set("location", "https://" + head.authority + head.path);
    co_return out;
  }
  if (!sel.route) {
    out.flags = "NR";
    out.response = local_reply(404, "");
    co_return out;
  }
  const Route& route = *sel.route;
  const VirtualHost& vhost = *sel.vhost;
  out.route_name = route.name;
  static const ClusterWeight* const kNoWeight = nullptr;

  if (const auto* redirect = std::get_if<RedirectAction>(&route.action)) {
    out.response = from_local(router::build_redirect(*redirect, route.match, head));
    co_return out;
  }
  if (const auto* direct = std::get_if<DirectResponseAction>(&route.action)) {
    out.response = from_local(router::build_direct_response(*direct));
    router::apply_response_headers(rc, vhost, route, kNoWeight, out.response.headers);
    co_return out;
  }
  const RouteAction& action = std::get<RouteAction>(route.action);
  const auto choice = router::choose_cluster(action, head, env.random->next());
  out.cluster = std::string(choice.cluster);

  auto reply = [&](uint16_t status, std::string_view body, std::string_view flag) {
    out.response = local_reply(status, std::string(body));
    if (!flag.empty()) add_flag(out.flags, flag);
    router::apply_response_headers(rc, vhost, route, choice.weighted, out.response.headers);
  };

  // CORS first (a preflight is answered here), then the fault filter, then the router.
  router::CorsDecision cors;
  if (const auto* cp = router::effective_cors_policy(vhost, route)) {
    cors = router::decide_cors(*cp, head, env.random->next());
    if (cors.kind == router::CorsDecision::Kind::Preflight) {
      out.response = from_local(cors.response);
      co_return out;
    }
  }
  if (const auto* fp = router::effective_fault_policy(vhost, route, choice.weighted);
      fp && router::fault_applies(*fp, head, *env.active_faults)) {
    ++*env.active_faults;
    if (auto delay = router::decide_fault_delay(*fp, head, env.random->next())) {
      add_flag(out.flags, "DI");
      co_await sleep_for(env.exec, *delay);
    }
    auto abort = router::decide_fault_abort(*fp, head, env.random->next(), grpc);
    --*env.active_faults;
    if (abort) {
      add_flag(out.flags, "FI");
      out.response = from_local(*abort);
      router::apply_response_headers(rc, vhost, route, choice.weighted, out.response.headers);
      co_return out;
    }
  }

  // Rate limits (waypoint/ratelimit): local bucket, then the global service; before the router.
  ratelimit::FilterResult limits;
  if (ratelimit::effective_local(vhost, route) || ratelimit::effective_global(vhost, route))
    limits = co_await ratelimit::apply_rate_limits(env, *config, vhost, route, action, choice.cluster, head, source_ip);
  if (limits.reply) {
    reply(limits.status, limits.body, limits.flag);
    for (const auto& f : limits.response_headers.fields()) out.response.headers.add(f.name, f.value);
    co_return out;
  }

  router::apply_rewrites(route.match, action, choice.weighted, head);
  router::apply_request_headers(rc, vhost, route, choice.weighted, head.headers);

  const Cluster* cluster = choice.cluster.empty() ? nullptr : config->cluster(choice.cluster);
  if (!cluster) {
    reply(static_cast<uint16_t>(action.cluster_not_found_response_code), "", "NC");
    co_return out;
  }
  const ClusterLoadAssignment* cla = config->endpoints_of(*cluster);
  std::span<const Endpoint> endpoints;
  if (cla) endpoints = cla->endpoints;

  // Traffic policy: only with the runtime built from this very snapshot's cluster/endpoints.
  const upstream::ClusterRuntime* rt = env.clusters ? env.clusters->find(cluster->name) : nullptr;
  if (rt && (rt->cluster.get() != cluster || rt->cla.get() != cla)) rt = nullptr;
  upstream::RequestHash rhash;
  if (rt && !action.hash_policy.empty() &&
      (cluster->policy.lb_policy == LbPolicy::RingHash || cluster->policy.lb_policy == LbPolicy::Maglev)) {
    rhash = upstream::compute_request_hash(action.hash_policy, head, source_ip, env.random->next());
  }
  const CircuitBreakerThresholds breaker_limits = cluster->policy.circuit_breakers;
  upstream::BreakerHold retry_hold;  // the retry in flight holds one max_retries count

  const bool h2_upstream = upstream_h2(*cluster, req);
  const RetryPolicy* retry = router::effective_retry_policy(vhost, action);
  const auto timeouts = router::compute_timeouts(action, retry, head, grpc);
  if (timeouts.expected.count() > 0) {
    head.headers.set("x-envoy-expected-rq-timeout-ms", std::to_string(timeouts.expected.count()));
  }
  // The body streams to the upstream as it arrives; a copy is kept for retries and mirrors
  // while it fits the buffer limit (Envoy's per_connection_buffer_limit_bytes).
  std::shared_ptr<http::ReplayBody> body;
  if (req.body_stream || !req.body.empty()) {
    body = std::make_shared<http::ReplayBody>(env.exec, std::move(req.body_stream), std::move(req.body), env.max_body);
    req.body_stream = nullptr;
    req.body.clear();
    out.request_body = body;
  }
  for (const MirrorPolicy* m : router::decide_mirrors(vhost, action, *env.random)) {
    if (body && !body->replayable()) break;
    http::Request copy = req;
    copy.head.authority = router::shadow_authority(*m, req.head.authority);
    asio::co_spawn(env.exec, mirror(env, config, *m, std::move(copy), body), asio::detached);
  }

  const auto start = steady_clock::now();
  std::vector<std::string> tried;
  uint32_t retries = 0;
  for (;;) {
    const auto elapsed = std::chrono::duration_cast<Duration>(steady_clock::now() - start);
    const auto timer = router::attempt_timer(timeouts, elapsed);
    if (timer.expired) {
      reply(504, "upstream request timeout", "UT");
      co_return out;
    }
    const bool avoid = retry && retry->previous_hosts_predicate;
    const auto avoid_hosts = avoid ? std::span<const std::string>(tried) : std::span<const std::string>();
    const Endpoint* ep = rt ? env.lb->pick(*rt, *env.random, rhash.hash, avoid_hosts)
                            : env.lb->pick(*cluster, endpoints, *env.random, avoid_hosts);
    if (!ep) {
      reply(503, "no healthy upstream", "UH");
      co_return out;
    }
    auto target = make_target(*config, *ep);
    if (!target) {
      reply(503, "no healthy upstream", "UH");
      co_return out;
    }
    out.upstream_host = target->key;
    out.endpoint = ep;
    ++out.attempts;
    router::set_request_attempt_count(vhost, out.attempts, head.headers);
    upstream::BreakerHold rq_hold;
    if (rt) {
      if (!rt->state->breaker.try_acquire(upstream::CircuitBreaker::Kind::Requests, breaker_limits)) {
        reply(503, kOverflowBody, "UO");
        out.response.headers.set("x-envoy-overloaded", "true");
        co_return out;
      }
      rq_hold = upstream::BreakerHold(rt->state, &rt->state->breaker, upstream::CircuitBreaker::Kind::Requests,
                                      breaker_limits);
    }
    env.lb->started(target->key);
    auto ar = co_await attempt(env, *target, *cluster, req, body, timer, h2_upstream, rt);
    env.lb->finished(target->key);
    rq_hold.reset();
    retry_hold.reset();
    if (rt && cluster->policy.outlier_detection) report_outlier(env, *rt, *ep, ar);
    tried.push_back(target->key);
    if (ar.downstream_gone) {
      // Nobody to answer: the upstream request was ended; the caller logs DC.
      reply(503, kResetBody, "DC");
      co_return out;
    }
    if (ar.global_timeout) {
      reply(504, "upstream request timeout", "UT");
      co_return out;
    }
    router::AttemptOutcome outcome = ar.outcome;
    outcome.response_headers = &ar.response.headers;
    auto decision = retry ? router::should_retry(*retry, outcome, retries, head) : router::RetryDecision::NoRetry;
    if (decision == router::RetryDecision::Retry && rt) {
      // max_retries: over it the retry is not made and this attempt's result stands (UO).
      if (rt->state->breaker.try_acquire(upstream::CircuitBreaker::Kind::Retries, breaker_limits)) {
        retry_hold = upstream::BreakerHold(rt->state, &rt->state->breaker, upstream::CircuitBreaker::Kind::Retries,
                                           breaker_limits);
      } else {
        decision = router::RetryDecision::NoRetry;
        add_flag(out.flags, "UO");
      }
    }
    if (decision == router::RetryDecision::Retry && body && !body->replayable()) {
      // Envoy: the request outgrew the retry buffer, so it is not retried; this attempt's
      // result stands.
      decision = router::RetryDecision::NoRetry;
    }
    if (decision == router::RetryDecision::Retry) {
      ++retries;
      // The superseded response: dropping its body closes that connection / resets that stream.
      ar.response.body_stream = nullptr;
      ar.conn = nullptr;
      auto backoff = router::retry_backoff(*retry, retries, env.random->next());
      if (timeouts.global.count() > 0) {
        auto spent = std::chrono::duration_cast<Duration>(steady_clock::now() - start);
        if (spent + backoff >= timeouts.global) {
          reply(504, "upstream request timeout", "UT");
          co_return out;
        }
      }
      if (backoff.count() > 0) co_await sleep_for(env.exec, backoff);
      continue;
    }
    if (decision == router::RetryDecision::RetriesExhausted) add_flag(out.flags, "URX");
    switch (outcome.failure) {
      case router::AttemptFailure::None: {
        out.response = std::move(ar.response);
        out.from_upstream = true;
        if (out.response.status == 101 && !req.upgrade.empty()) out.upgraded = std::move(ar.conn);
        router::apply_response_headers(rc, vhost, route, choice.weighted, out.response.headers);
        for (const auto& f : cors.response_headers.fields()) out.response.headers.set(f.name, f.value);
        for (const auto& f : limits.response_headers.fields()) out.response.headers.add(f.name, f.value);
        for (const auto& f : authz_response_headers.fields()) out.response.headers.add(f.name, f.value);
        out.response.headers.set(
            "x-envoy-upstream-service-time",
            std::to_string(std::chrono::duration_cast<Duration>(steady_clock::now() - start).count()));
        router::set_response_attempt_count(vhost, out.attempts, out.response.headers);
        if (!rhash.set_cookie.empty()) out.response.headers.add("set-cookie", rhash.set_cookie);
        co_return out;
      }
      case router::AttemptFailure::Overflow:
        reply(503, kOverflowBody, "UO");
        out.response.headers.set("x-envoy-overloaded", "true");
        co_return out;
      case router::AttemptFailure::ConnectFailure:
        reply(503, kConnectFailureBody, "UF");
        co_return out;
      case router::AttemptFailure::PerTryTimeout:
        reply(504, "upstream request timeout", "UT");
        co_return out;
      default:
        reply(503, kResetBody, "UC");
        co_return out;
    }
  }
}

}  // namespace

// Envoy answers a gRPC request's local errors (NR, UH, UT, UF ...) as gRPC does: HTTP 200,
// trailers-only, grpc-status mapped from the HTTP status, grpc-message = the reply's text.
asio::awaitable<FlowResult> serve_request(FlowEnv& env, ConfigSnapshotPtr config, const RouteConfig& rc,
                                          http::Request& req, std::string_view source_ip,
                                          const authz::Downstream* downstream) {
  const bool grpc = is_grpc(req.head);
  FlowResult out = co_await serve_request_impl(env, config, rc, req, source_ip, downstream);
  if (grpc && !out.from_upstream) grpcify_local_reply(out.response);
  co_return out;
}

}  // namespace waypoint
