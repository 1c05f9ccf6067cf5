// The rate limit filters' decisions as pure functions over the config model (rate_limit.h) and
// one request; request_flow / global_filter execute them. Envoy's semantics (waypoint-facts §2.4,
// §5.8): the most specific configuration wins (route over virtual host); a limited request gets
// a local reply (429 "local_rate_limited", flag RL) and never reaches the router.
//
// Threading: reentrant; the only shared state touched is the token bucket and counters
// (atomics). Randomness and the clock come in as parameters so tests are exact.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "waypoint/ratelimit/rate_limit.h"
#include "waypoint/router/http_message.h"

namespace waypoint::ratelimit {

const LocalRateLimit* effective_local(const VirtualHost& vhost, const Route& route);
const GlobalRateLimit* effective_global(const VirtualHost& vhost, const Route& route);

struct LocalOutcome {
  bool consulted = false;                  // the bucket was asked (filter enabled for this request)
  bool limited = false;                    // answer with `reply` (enforced and out of tokens)
  router::HeaderList x_ratelimit_headers;  // for the response, limited or not (when enabled)
  uint16_t status = 429;
  std::vector<HeaderValueOption> const* reply_headers = nullptr;  // response_headers_to_add
};

// Consults the bucket for one request. `enabled_random` / `enforced_random` are two draws of the
// worker's random source. A limited but not enforced request gets the config's
// request_headers_to_add_when_not_enforced on `request_headers`.
LocalOutcome decide_local(const LocalRateLimit& cfg, uint64_t enabled_random, uint64_t enforced_random, uint64_t now_ns,
                          router::HeaderList& request_headers);

// Envoy's local-reply body for a locally limited request.
inline constexpr std::string_view kLocalRateLimitedBody = "local_rate_limited";

using Descriptor = std::vector<std::pair<std::string, std::string>>;

// Descriptors for the global filter at `stage`, from the route's rate_limits (and the virtual
// host's when the route has none or asks to include them). A descriptor whose action yields
// nothing (absent header without skip_if_absent, header_value_match not as expected) is dropped.
std::vector<Descriptor> build_descriptors(const VirtualHost& vhost, const RouteAction& action, uint32_t stage,
                                          const router::HttpRequest& request, std::string_view remote_address,
                                          std::string_view destination_cluster, std::string_view source_cluster);

}  // namespace waypoint::ratelimit
