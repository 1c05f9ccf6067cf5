#include "waypoint/authz/ext_authz.h"

#include "waypoint/prefix_stats.h"

namespace waypoint::authz {
namespace {

PrefixStats<ExtAuthzStats>& table() {
  static auto* t = new PrefixStats<ExtAuthzStats>;  // never destroyed: workers may still count during exit
  return *t;
}

}  // namespace

ExtAuthzStats* ext_authz_stats_for(std::string_view stat_prefix) {
  return table().for_prefix(stat_prefix);
}

void render_ext_authz_stats(std::string& out) {
  using Metric = PrefixStats<ExtAuthzStats>::Metric;
  static const Metric kMetrics[] = {
      {"envoy_ext_authz_ok", "Requests the authorization service allowed", &ExtAuthzStats::ok},
      {"envoy_ext_authz_denied", "Requests the authorization service denied", &ExtAuthzStats::denied},
      {"envoy_ext_authz_error", "Failed calls to the authorization service", &ExtAuthzStats::error},
      {"envoy_ext_authz_failure_mode_allowed", "Requests allowed although the authorization service failed",
       &ExtAuthzStats::failure_mode_allowed},
  };
  table().render(out, kMetrics);
}

}  // namespace waypoint::authz
