#include "waypoint/ratelimit/stats.h"

#include "waypoint/prefix_stats.h"

namespace waypoint::ratelimit {
namespace {

PrefixStats<Stats>& table() {
  static auto* t = new PrefixStats<Stats>;  // never destroyed: workers may still count during exit
  return *t;
}

}  // namespace

Stats* stats_for(std::string_view stat_prefix) {
  return table().for_prefix(stat_prefix);
}

void render_stats(std::string& out) {
  using Metric = PrefixStats<Stats>::Metric;
  static const Metric kMetrics[] = {
      {"envoy_http_local_rate_limit_enabled", "Requests the local rate limit filter was enabled for", &Stats::enabled},
      {"envoy_http_local_rate_limit_enforced", "Limited requests the local rate limit enforced", &Stats::enforced},
      {"envoy_http_local_rate_limit_ok", "Requests under the local rate limit", &Stats::ok},
      {"envoy_http_local_rate_limit_rate_limited", "Requests over the local rate limit", &Stats::rate_limited},
      {"envoy_ratelimit_ok", "Requests the rate limit service allowed", &Stats::rls_ok},
      {"envoy_ratelimit_over_limit", "Requests the rate limit service found over limit", &Stats::over_limit},
      {"envoy_ratelimit_error", "Failed calls to the rate limit service", &Stats::error},
      {"envoy_ratelimit_failure_mode_allowed", "Requests allowed although the rate limit service failed",
       &Stats::failure_mode_allowed},
  };
  table().render(out, kMetrics);
}

}  // namespace waypoint::ratelimit
