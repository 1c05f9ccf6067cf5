// Route / per-try / gRPC timeout arithmetic as Envoy's FilterUtility::finalTimeout
// (waypoint-facts §5.4).
#include <algorithm>

#include "waypoint/router/router.h"

namespace waypoint::router {

std::optional<Duration> parse_grpc_timeout(std::string_view value) {
  // "TimeoutValue TimeoutUnit": at most 8 ASCII digits, then one of H M S m u n.
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  uint64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  switch (value.back()) {
    case 'H':
      return Duration{static_cast<int64_t>(n * 3600 * 1000)};
    case 'M':
      return Duration{static_cast<int64_t>(n * 60 * 1000)};
    case 'S':
      return Duration{static_cast<int64_t>(n * 1000)};
    case 'm':
      return Duration{static_cast<int64_t>(n)};
    // Sub-millisecond units round up: truncating 500u to 0 would mean "no timeout".
    case 'u':
      return Duration{static_cast<int64_t>((n + 999) / 1000)};
    case 'n':
      return Duration{static_cast<int64_t>((n + 999999) / 1000000)};
    default:
      return std::nullopt;
  }
}

Timeouts compute_timeouts(const RouteAction& action, const RetryPolicy* policy, const HttpRequest& request, bool grpc) {
  Timeouts t;
  if (grpc && action.max_grpc_timeout) {
    // The client's grpc-timeout (absent = infinite), minus the offset when that leaves something,
    // capped by max_grpc_timeout unless that is 0 (= no cap).
    Duration g{0};
    if (auto h = request.headers.get("grpc-timeout")) g = parse_grpc_timeout(*h).value_or(Duration{0});
    if (action.grpc_timeout_offset && *action.grpc_timeout_offset < g) g -= *action.grpc_timeout_offset;
    const Duration max = *action.max_grpc_timeout;
    if (max != Duration{0} && (g == Duration{0} || g > max)) g = max;
    t.global = g;
  } else {
    t.global = action.timeout;
  }
  t.per_try = policy ? policy->per_try_timeout : Duration{0};
  // A per-try timeout that cannot fire before the global one is dropped.
  if (t.global != Duration{0} && t.per_try >= t.global) t.per_try = Duration{0};
  t.expected = t.per_try != Duration{0} ? t.per_try : t.global;
  return t;
}

AttemptTimer attempt_timer(const Timeouts& timeouts, Duration elapsed) {
  AttemptTimer timer;
  if (timeouts.global == Duration{0}) {
    timer.timeout = timeouts.per_try;
    timer.per_try = timeouts.per_try != Duration{0};
    return timer;
  }
  const Duration remaining = timeouts.global - elapsed;
  if (remaining <= Duration{0}) {
    timer.expired = true;
    return timer;
  }
  if (timeouts.per_try != Duration{0} && timeouts.per_try < remaining) {
    timer.timeout = timeouts.per_try;
    timer.per_try = true;
  } else {
    timer.timeout = remaining;
  }
  return timer;
}

}  // namespace waypoint::router
