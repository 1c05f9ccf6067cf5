#include "waypoint/authz/ext_authz_filter.h"

#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "waypoint/authz/ext_authz_codec.h"
#include "waypoint/http/h2_session.h"
#include "waypoint/http/http1.h"
#include "waypoint/ratelimit/rls_codec.h"
#include "waypoint/request_flow.h"
#include "waypoint/router/router.h"
#include "waypoint/side_call.h"

namespace waypoint::authz {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kCheckPath = "/envoy.service.auth.v3.Authorization/Check";
// The body of a denial the service gave no body for, and of a failure: Envoy sends none.
constexpr uint32_t kMaxHttpAnswer = 64 * 1024;

void bump(ExtAuthzStats* s, std::atomic<uint64_t> ExtAuthzStats::*field) {
  if (s) (s->*field).fetch_add(1, std::memory_order_relaxed);
}

bool any_matches(const std::vector<StringMatcher>& ms, std::string_view v) {
  for (const auto& m : ms)
    if (router::string_matches(m, v)) return true;
  return false;
}

// An endpoint of the service's cluster, or why there is none.
common::Result<upstream::Target> pick(FlowEnv& env, const ConfigSnapshot& config, const ExtAuthzConfig& c,
                                      const Cluster*& cluster) {
  cluster = config.cluster(c.cluster);
  if (!cluster) return common::make_error("authorization service cluster '" + c.cluster + "' is unknown");
  const ClusterLoadAssignment* cla = config.endpoints_of(*cluster);
  std::span<const Endpoint> endpoints;
  if (cla) endpoints = cla->endpoints;
  const Endpoint* ep = env.lb->pick(*cluster, endpoints, *env.random, {});
  if (!ep) return common::make_error("authorization service cluster '" + c.cluster + "' has no healthy endpoint");
  auto target = make_target(config, *ep);
  if (!target) return common::make_error("authorization service endpoint is not an IP address");
  return *target;
}

CheckPeer peer(const std::optional<ztunnel::IpAddr>& ip, uint16_t port, const std::optional<std::string>& principal) {
  CheckPeer p;
  if (ip) {
    p.address = ip->to_string();
    p.port = port;
  }
  if (principal) p.principal = *principal;
  return p;
}

// The gRPC Check: the decoded answer, or why there is none.
asio::awaitable<common::Result<CheckResponse>> grpc_check(FlowEnv& env, const ConfigSnapshot& config,
                                                          const ExtAuthzConfig& c, std::string body) {
  const Cluster* cluster = nullptr;
  auto target = pick(env, config, c, cluster);
  if (!target) co_return common::make_error(target.error());
  auto msg = co_await unary_grpc_call(env, *cluster, *target, c.authority.empty() ? c.cluster : c.authority,
                                     kCheckPath, c.timeout, std::move(body), "authorization service");
  if (!msg) co_return common::make_error(msg.error());
  co_return decode_check_response(*msg);
}

// The HTTP check: the service's whole answer, or why there is none.
asio::awaitable<common::Result<http::Response>> http_check(FlowEnv& env, const ConfigSnapshot& config,
                                                           const ExtAuthzConfig& c, http::Request req) {
  const Cluster* cluster = nullptr;
  auto target = pick(env, config, c, cluster);
  if (!target) co_return common::make_error(target.error());
  struct Guard {
    bool fired = false;
    upstream::Conn* conn = nullptr;
  };
  auto guard = std::make_shared<Guard>();
  asio::steady_timer timer(env.exec);
  timer.expires_after(c.timeout);
  timer.async_wait([guard](boost::system::error_code ec) {
    if (ec) return;
    guard->fired = true;
    if (guard->conn) guard->conn->stream.abort();
  });
  const auto connect_timeout = std::min<std::chrono::milliseconds>(cluster->connect_timeout, c.timeout);
  auto conn = co_await env.connector->acquire(*target, env.client_tls, env.self_identity, connect_timeout);
  if (guard->fired) co_return common::make_error("authorization service call timed out");
  if (!conn) co_return common::make_error("authorization service connect: " + conn.error());
  std::unique_ptr<upstream::Conn> cn = std::move(conn.value());
  guard->conn = cn.get();
  const bool wrote = co_await http::write_request(cn->stream, req);
  http::ReadResponseResult rr;
  if (wrote) rr = co_await http::read_response(cn->stream, cn->buf, kMaxHttpAnswer, false);
  guard->conn = nullptr;
  timer.cancel();
  if (guard->fired) co_return common::make_error("authorization service call timed out");
  if (!wrote) co_return common::make_error("authorization service: request write failed");
  if (rr.error != http::ReadError::None) co_return common::make_error("authorization service answer: " + rr.detail);
  if (rr.keep_alive) {
    env.connector->release(std::move(cn));
  } else {
    cn->stream.abort();
  }
  co_return std::move(rr.response);
}

void apply_check_header(router::HeaderList& h, const CheckHeader& x) {
  if (x.key.empty() || x.key.front() == ':') return;  // pseudo-headers are the router's
  const std::string name = http::lower(x.key);
  switch (x.mode) {
    case CheckHeader::Mode::Set:
      h.set(name, x.value);
      break;
    case CheckHeader::Mode::Append:
      h.add(name, x.value);
      break;
    case CheckHeader::Mode::AddIfAbsent:
      if (!h.contains(name)) h.add(name, x.value);
      break;
  }
}

void fail(const ExtAuthzConfig& c, ExtAuthzResult& out, std::string error) {
  bump(c.stats, &ExtAuthzStats::error);
  out.error = std::move(error);
  if (c.failure_mode_allow) {
    bump(c.stats, &ExtAuthzStats::failure_mode_allowed);
    return;
  }
  out.reply = true;
  out.status = c.status_on_error;
}

bool framing_header(std::string_view n) {
  return n == "content-length" || n == "transfer-encoding" || n == "connection" || n == "keep-alive" || n == "host" ||
         n == ":authority";
}

}  // namespace

const ExtAuthzConfig* effective_ext_authz(const VirtualHost& vhost, const Route* route) {
  if (route && route->filters.ext_authz) return route->filters.ext_authz.get();
  return vhost.filters.ext_authz.get();
}

asio::awaitable<ExtAuthzResult> check_ext_authz(FlowEnv& env, const ConfigSnapshot& config, const ExtAuthzConfig& c,
                                                router::HttpRequest& request, const Downstream& downstream,
                                                http::Protocol protocol) {
  ExtAuthzResult out;
  if (c.kind == ExtAuthzConfig::Kind::Grpc) {
    CheckRequest cr;
    cr.source = peer(downstream.source_ip, 0, downstream.peer_principal);
    cr.destination = peer(downstream.destination_ip, downstream.destination_port,
                          env.self_identity.empty() ? std::nullopt : std::optional<std::string>(env.self_identity));
    if (auto id = request.headers.get("x-request-id")) cr.id = std::string(*id);
    cr.method = request.method;
    cr.path = request.path;
    cr.host = request.authority;
    cr.scheme = request.scheme;
    cr.protocol = std::string(http::to_string(protocol));
    // Envoy's map: the pseudo-headers and every header (repeated ones joined by ","), limited
    // to allowed_headers' matches when that list is set.
    auto add = [&](std::string_view name) {
      if (!c.allowed_headers.empty() && !any_matches(c.allowed_headers, name)) return;
      for (const auto& [k, v] : cr.headers)
        if (k == name) return;
      if (auto v = request.header_joined(name)) cr.headers.emplace_back(std::string(name), std::move(*v));
    };
    for (std::string_view p : {":authority", ":method", ":path", ":scheme"}) add(p);
    for (const auto& f : request.headers.fields()) add(f.name);
    auto res = co_await grpc_check(env, config, c, ratelimit::grpc_frame(encode_check_request(cr)));
    if (!res) {
      fail(c, out, res.error());
      co_return out;
    }
    if (res->grpc_code != 0) {
      bump(c.stats, &ExtAuthzStats::denied);
      out.reply = true;
      out.status = res->http == CheckResponse::Http::Denied && res->denied_status >= 100 && res->denied_status <= 999
                       ? static_cast<uint16_t>(res->denied_status)
                       : 403;
      if (res->http == CheckResponse::Http::Denied) {
        out.body = res->denied_body;
        for (const auto& h : res->headers) apply_check_header(out.reply_headers, h);
      }
      co_return out;
    }
    bump(c.stats, &ExtAuthzStats::ok);
    if (res->http == CheckResponse::Http::Ok) {
      for (const auto& h : res->headers) apply_check_header(request.headers, h);
      for (const auto& name : res->headers_to_remove) {
        const std::string n = http::lower(name);
        if (n.empty() || n.front() == ':' || n == "host") continue;
        request.headers.remove(n);
      }
      for (const auto& h : res->response_headers_to_add) apply_check_header(out.response_headers, h);
    }
    co_return out;
  }

  // HTTP service.
  http::Request req;
  req.protocol = http::Protocol::Http11;
  req.head.method = request.method;
  req.head.scheme = "http";
  req.head.authority = request.authority;
  req.head.path = c.path_prefix + request.path;
  for (const auto& f : request.headers.fields()) {
    const bool default_allowed = f.name == "authorization" || f.name == "content-length";
    if (!default_allowed && !any_matches(c.allowed_headers, f.name)) continue;
    if (f.name == "content-length" || http::is_hop_by_hop(f.name)) continue;  // no body is sent
    req.head.headers.add(f.name, f.value);
  }
  for (const auto& [k, v] : c.headers_to_add) req.head.headers.set(k, v);
  req.content_length = 0;
  auto res = co_await http_check(env, config, c, std::move(req));
  if (!res) {
    fail(c, out, res.error());
    co_return out;
  }
  const http::Response& r = *res;
  if (r.status >= 500) {
    fail(c, out, "authorization service answered HTTP " + std::to_string(r.status));
    co_return out;
  }
  if (r.status == 200) {
    bump(c.stats, &ExtAuthzStats::ok);
    for (const auto& f : r.headers.fields()) {
      if (f.name == "x-envoy-auth-headers-to-remove") {
        std::string_view list = f.value;
        while (!list.empty()) {
          const auto comma = list.find(',');
          std::string_view item = list.substr(0, comma);
          while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
          while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
          const std::string n = http::lower(item);
          if (!n.empty() && n.front() != ':' && n != "host") request.headers.remove(n);
          list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        }
        continue;
      }
      if (framing_header(f.name)) continue;
      if (any_matches(c.allowed_upstream_headers, f.name)) request.headers.set(f.name, f.value);
      if (any_matches(c.allowed_client_headers_on_success, f.name)) out.response_headers.add(f.name, f.value);
    }
    co_return out;
  }
  bump(c.stats, &ExtAuthzStats::denied);
  out.reply = true;
  out.status = r.status;
  out.body = r.body;
  for (const auto& f : r.headers.fields()) {
    if (framing_header(f.name)) continue;
    if (c.allowed_client_headers.empty() || any_matches(c.allowed_client_headers, f.name))
      out.reply_headers.add(f.name, f.value);
  }
  co_return out;
}

}  // namespace waypoint::authz
