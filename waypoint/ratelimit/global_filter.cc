#include "waypoint/ratelimit/global_filter.h"

#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>
#include <memory>

#include "waypoint/http/h2_session.h"
#include "waypoint/ratelimit/rls_codec.h"
#include "waypoint/ratelimit/stats.h"
#include "waypoint/request_flow.h"
#include "waypoint/router/router.h"
#include "waypoint/side_call.h"

namespace waypoint::ratelimit {

namespace asio = boost::asio;

namespace {

void bump_opt(Stats* s, std::atomic<uint64_t> Stats::*field) {
  if (s) bump(s->*field);
}

constexpr std::string_view kPath = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

uint64_t unit_seconds(uint32_t unit) {
  switch (unit) {
    case 1:
      return 1;
    case 2:
      return 60;
    case 3:
      return 3600;
    case 4:
      return 86400;
    default:
      return 0;
  }
}

// The call itself: the decoded response, or why there is none.
asio::awaitable<common::Result<RlsResponse>> call(FlowEnv& env, const ConfigSnapshot& config, const GlobalRateLimit& g,
                                                  const std::string& body) {
  const Cluster* cluster = config.cluster(g.cluster);
  if (!cluster) co_return common::make_error("rate limit service cluster '" + g.cluster + "' is unknown");
  const ClusterLoadAssignment* cla = config.endpoints_of(*cluster);
  std::span<const Endpoint> endpoints;
  if (cla) endpoints = cla->endpoints;
  const Endpoint* ep = env.lb->pick(*cluster, endpoints, *env.random, {});
  if (!ep) co_return common::make_error("rate limit service cluster '" + g.cluster + "' has no healthy endpoint");
  auto target = make_target(config, *ep);
  if (!target) co_return common::make_error("rate limit service endpoint is not an IP address");

  auto msg = co_await unary_grpc_call(env, *cluster, *target, g.authority.empty() ? g.cluster : g.authority, kPath,
                                     g.timeout, body, "rate limit service");
  if (!msg) co_return common::make_error(msg.error());
  co_return decode_response(*msg);
}

// The client's IP for remote_address: the source may be "ip", "ip:port" or "[v6]:port".
std::string_view address_only(std::string_view src) {
  if (!src.empty() && src.front() == '[') {
    const auto close = src.find(']');
    return close == std::string_view::npos ? src : src.substr(1, close - 1);
  }
  const auto colon = src.find(':');
  if (colon != std::string_view::npos && src.find(':', colon + 1) == std::string_view::npos)
    return src.substr(0, colon);
  return src;
}

}  // namespace

router::HeaderList x_ratelimit_headers(const std::vector<RlsDescriptorStatus>& statuses) {
  router::HeaderList h;
  const RlsDescriptorStatus* best = nullptr;
  for (const auto& s : statuses) {
    if (s.requests_per_unit == 0) continue;
    if (!best || s.limit_remaining < best->limit_remaining) best = &s;
  }
  if (!best) return h;
  std::string limit = std::to_string(best->requests_per_unit);
  if (const auto w = unit_seconds(best->unit); w) limit += ", " + limit + ";w=" + std::to_string(w);
  h.add("x-ratelimit-limit", std::move(limit));
  h.add("x-ratelimit-remaining", std::to_string(best->limit_remaining));
  if (best->reset_seconds > 0) h.add("x-ratelimit-reset", std::to_string(best->reset_seconds));
  return h;
}

asio::awaitable<GlobalOutcome> check_global(FlowEnv& env, const ConfigSnapshot& config, const GlobalRateLimit& g,
                                            std::vector<Descriptor> descriptors) {
  GlobalOutcome out;
  if (descriptors.empty()) co_return out;
  RlsRequest req;
  req.domain = g.domain;
  req.descriptors = std::move(descriptors);
  auto res = co_await call(env, config, g, grpc_frame(encode_request(req)));
  Stats* stats = g.stats;
  if (!res) {
    bump_opt(stats, &Stats::error);
    out.error = res.error();
    if (g.failure_mode_deny) {
      out.reply = true;
      out.status = g.status_on_error;
      out.flag = "RLSE";
    } else {
      bump_opt(stats, &Stats::failure_mode_allowed);
    }
    co_return out;
  }
  for (const auto& [k, v] : res->request_headers_to_add) out.request_headers.add(k, v);
  for (const auto& [k, v] : res->response_headers_to_add) out.response_headers.add(k, v);
  if (g.x_ratelimit_headers) {
    for (const auto& f : x_ratelimit_headers(res->statuses).fields()) out.response_headers.add(f.name, f.value);
  }
  if (res->overall_code == RlsResponse::OverLimit) {
    bump_opt(stats, &Stats::over_limit);
    out.reply = true;
    out.status = g.rate_limited_status;
    out.flag = "RL";
    if (!g.disable_x_envoy_ratelimited_header) out.response_headers.add("x-envoy-ratelimited", "true");
  } else {
    bump_opt(stats, &Stats::rls_ok);
  }
  co_return out;
}

asio::awaitable<FilterResult> apply_rate_limits(FlowEnv& env, const ConfigSnapshot& config, const VirtualHost& vhost,
                                                const Route& route, const RouteAction& action, std::string_view cluster,
                                                router::HttpRequest& head, std::string_view source_ip) {
  FilterResult out;
  if (const auto* local = effective_local(vhost, route)) {
    auto lo = decide_local(*local, env.random->next(), env.random->next(), TokenBucket::now_ns(), head.headers);
    out.response_headers = std::move(lo.x_ratelimit_headers);
    if (lo.limited) {
      out.reply = true;
      out.status = lo.status;
      out.body = std::string(kLocalRateLimitedBody);
      out.flag = "RL";
      router::apply_header_options(*lo.reply_headers, {}, out.response_headers);
      co_return out;
    }
  }
  if (const auto* g = effective_global(vhost, route)) {
    auto descriptors = build_descriptors(vhost, action, g->stage, head, address_only(source_ip), cluster, "");
    auto go = co_await check_global(env, config, *g, std::move(descriptors));
    if (!go.error.empty()) spdlog::debug("rate limit service {}: {}", g->cluster, go.error);
    for (const auto& f : go.request_headers.fields()) head.headers.set(f.name, f.value);
    for (const auto& f : go.response_headers.fields()) out.response_headers.add(f.name, f.value);
    if (go.reply) {
      out.reply = true;
      out.status = go.status;
      out.flag = go.flag;
      if (go.flag == "RL") router::apply_header_options(g->response_headers_to_add, {}, out.response_headers);
      co_return out;
    }
  }
  co_return out;
}

}  // namespace waypoint::ratelimit
