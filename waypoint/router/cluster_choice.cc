// Weighted cluster pick (waypoint-facts §5.2). Hash policies are evaluated by
// waypoint/upstream/request_hash, next to the rings they feed.
#include "waypoint/router/router.h"
#include "waypoint/router/strings.h"

namespace waypoint::router {

ClusterChoice choose_cluster(const RouteAction& action, const HttpRequest& request, uint64_t random_value) {
  if (action.weighted_clusters.empty()) return {action.cluster, nullptr};
  if (action.total_weight == 0) return {};
  uint64_t value = random_value;
  if (!action.weighted_random_header.empty()) {
    // WeightedCluster.header_name: a numeric header value replaces the random draw, so a client
    // (or a test) can pin the split; a missing or non-numeric value falls back to the draw.
    if (auto h = request.headers.get(action.weighted_random_header)) {
      if (auto n = parse_uint64(*h)) value = *n;
    }
  }
  const uint64_t selected = value % action.total_weight;
  uint64_t begin = 0;
  for (const auto& cw : action.weighted_clusters) {
    const uint64_t end = begin + cw.weight;
    if (selected >= begin && selected < end) return {cw.name, &cw};
    begin = end;
  }
  // Unreachable when total_weight == Σ weights (a converter invariant); fail closed.
  return {};
}

}  // namespace waypoint::router
