#include "waypoint/ratelimit/decide.h"

#include "waypoint/ratelimit/stats.h"
#include "waypoint/router/router.h"

namespace waypoint::ratelimit {

const LocalRateLimit* effective_local(const VirtualHost& vhost, const Route& route) {
  if (route.filters.local_ratelimit) return route.filters.local_ratelimit.get();
  return vhost.filters.local_ratelimit.get();
}

const GlobalRateLimit* effective_global(const VirtualHost& vhost, const Route& route) {
  if (route.filters.ratelimit) return route.filters.ratelimit.get();
  return vhost.filters.ratelimit.get();
}

LocalOutcome decide_local(const LocalRateLimit& cfg, uint64_t enabled_random, uint64_t enforced_random, uint64_t now_ns,
                          router::HeaderList& request_headers) {
  LocalOutcome out;
  out.status = cfg.status;
  if (!router::fraction_enabled(cfg.filter_enabled, enabled_random)) return out;
  out.consulted = true;
  if (cfg.stats) bump(cfg.stats->enabled);
  const auto r = cfg.bucket->consume(now_ns);
  if (cfg.x_ratelimit_headers) {
    // draft-polli-ratelimit-headers-03, as Envoy's DRAFT_VERSION_03.
    out.x_ratelimit_headers.add("x-ratelimit-limit", std::to_string(cfg.bucket->max_tokens()));
    out.x_ratelimit_headers.add("x-ratelimit-remaining", std::to_string(r.remaining));
    out.x_ratelimit_headers.add("x-ratelimit-reset", std::to_string(r.reset_seconds));
  }
  if (r.allowed) {
    if (cfg.stats) bump(cfg.stats->ok);
    return out;
  }
  if (cfg.stats) bump(cfg.stats->rate_limited);
  if (!router::fraction_enabled(cfg.filter_enforced, enforced_random)) {
    router::apply_header_options(cfg.request_headers_to_add_when_not_enforced, {}, request_headers);
    return out;
  }
  if (cfg.stats) bump(cfg.stats->enforced);
  out.limited = true;
  out.reply_headers = &cfg.response_headers_to_add;
  return out;
}

namespace {

// Appends the entry of one action; false = the descriptor is dropped.
bool apply_action(const RateLimitAction& a, const router::HttpRequest& request, std::string_view remote_address,
                  std::string_view destination_cluster, std::string_view source_cluster, Descriptor& d) {
  switch (a.kind) {
    case RateLimitAction::Kind::SourceCluster:
      d.emplace_back("source_cluster", std::string(source_cluster));
      return true;
    case RateLimitAction::Kind::DestinationCluster:
      d.emplace_back("destination_cluster", std::string(destination_cluster));
      return true;
    case RateLimitAction::Kind::RequestHeaders: {
      auto v = request.header_joined(a.header_name);
      if (!v) return a.skip_if_absent;
      d.emplace_back(a.descriptor_key, std::move(*v));
      return true;
    }
    case RateLimitAction::Kind::RemoteAddress:
      if (remote_address.empty()) return false;
      d.emplace_back("remote_address", std::string(remote_address));
      return true;
    case RateLimitAction::Kind::GenericKey:
      d.emplace_back(a.descriptor_key.empty() ? "generic_key" : a.descriptor_key, a.descriptor_value);
      return true;
    case RateLimitAction::Kind::HeaderValueMatch:
      if (router::headers_match(a.headers, request) != a.expect_match) return false;
      d.emplace_back(a.descriptor_key.empty() ? "header_match" : a.descriptor_key, a.descriptor_value);
      return true;
  }
  return false;
}

void add_from(const RateLimitPolicies* p, uint32_t stage, const router::HttpRequest& request,
              std::string_view remote_address, std::string_view destination_cluster, std::string_view source_cluster,
              std::vector<Descriptor>& out) {
  if (!p) return;
  for (const auto& e : p->entries) {
    if (e.stage != stage) continue;
    Descriptor d;
    bool keep = true;
    for (const auto& a : e.actions) {
      if (!apply_action(a, request, remote_address, destination_cluster, source_cluster, d)) {
        keep = false;
        break;
      }
    }
    if (keep && !d.empty()) out.push_back(std::move(d));
  }
}

}  // namespace

std::vector<Descriptor> build_descriptors(const VirtualHost& vhost, const RouteAction& action, uint32_t stage,
                                          const router::HttpRequest& request, std::string_view remote_address,
                                          std::string_view destination_cluster, std::string_view source_cluster) {
  std::vector<Descriptor> out;
  const bool route_has = action.rate_limits && !action.rate_limits->entries.empty();
  add_from(action.rate_limits.get(), stage, request, remote_address, destination_cluster, source_cluster, out);
  if (!route_has || action.include_vh_rate_limits)
    add_from(vhost.rate_limits.get(), stage, request, remote_address, destination_cluster, source_cluster, out);
  return out;
}

}  // namespace waypoint::ratelimit
