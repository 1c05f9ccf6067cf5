// The global rate limit filter's I/O (envoy.filters.http.ratelimit): one unary gRPC call
// envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit per request that has descriptors,
// to an endpoint of the configured cluster over the worker's upstream connector (a mesh
// workload over HBONE, anything else h2c), with the hand-written codec (rls_codec.h): no
// protobuf, no gRPC library. The answer becomes Envoy's outcome:
//   OK          -> forward (the service's request/response headers are added);
//   OVER_LIMIT  -> 429 (rate_limited_status), x-envoy-ratelimited: true, flag RL;
//   error/timeout (default 20 ms) -> forward (failure_mode_allowed counted), or with
//                  failure_mode_deny the status_on_error reply (500) with flag RLSE.
//
// Threading: runs on the request's worker; uses only that worker's connector and balancer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>
#include <vector>

#include "waypoint/config_source.h"
#include "waypoint/ratelimit/decide.h"
#include "waypoint/router/http_message.h"

namespace waypoint {
struct FlowEnv;  // request_flow.h
}

namespace waypoint::ratelimit {

struct GlobalOutcome {
  bool reply = false;  // answer locally with `status` (limited or failure_mode_deny)
  uint16_t status = 0;
  std::string flag;                     // "RL" or "RLSE" when replying
  router::HeaderList response_headers;  // for the reply, or added to the upstream's response
  router::HeaderList request_headers;   // added to the forwarded request (service's choice)
  std::string error;                    // why the call failed (logs), empty when it did not
};

// The call and its interpretation. Descriptors empty = no call, forward.
boost::asio::awaitable<GlobalOutcome> check_global(FlowEnv& env, const ConfigSnapshot& config, const GlobalRateLimit& g,
                                                   std::vector<Descriptor> descriptors);

// Both rate limit filters for one request, in Envoy's order (local, then global; an EnvoyFilter
// inserts them just before the router, after fault and CORS). `reply` set = answer with it
// (flag RL / RLSE); otherwise forward, adding `response_headers` to the upstream's response.
// `head` may gain request headers (not-enforced local headers, the service's additions).
struct FilterResult {
  bool reply = false;
  uint16_t status = 0;
  std::string body;
  std::string flag;
  router::HeaderList response_headers;
};
boost::asio::awaitable<FilterResult> apply_rate_limits(FlowEnv& env, const ConfigSnapshot& config,
                                                       const VirtualHost& vhost, const Route& route,
                                                       const RouteAction& action, std::string_view cluster,
                                                       router::HttpRequest& head, std::string_view source_ip);

// x-ratelimit-* (DRAFT_VERSION_03) from the service's descriptor statuses: the status with the
// fewest remaining requests; empty when the service sent no limits.
router::HeaderList x_ratelimit_headers(const std::vector<struct RlsDescriptorStatus>& statuses);

}  // namespace waypoint::ratelimit
