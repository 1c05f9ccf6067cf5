// The rate limit configuration model the waypoint enforces (waypoint-facts §2.4): the local
// rate limit filter (`envoy.filters.http.local_ratelimit`, a token bucket per configuration)
// and the global one (`envoy.filters.http.ratelimit`, a call to an Envoy rate limit service
// with descriptors built from route `rate_limits` actions). Plain values, converted from Envoy
// protos by waypoint/xds (ratelimit_convert.cc); route_model.h refers to them through
// shared_ptr<const ...> so routes stay cheap to copy and this header stays out of its includes.
//
// Threading: built on the control thread, frozen in the config snapshot, read by all workers.
// The only mutable part is the TokenBucket (atomics, see token_bucket.h): one bucket per
// LocalRateLimit object, i.e. per (waypoint process, route or virtual host configuration),
// shared by every worker. A new RouteConfiguration builds new buckets, as in Envoy.
//
// Invariants: header names are lower case; status codes are >= 400 (Envoy uses 429 below that).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "waypoint/ratelimit/token_bucket.h"
#include "waypoint/route_model.h"

namespace waypoint::ratelimit {

struct Stats;  // stats.h

// envoy.filters.http.local_ratelimit (LocalRateLimit), one per route / virtual host config.
struct LocalRateLimit {
  std::string stat_prefix;
  uint16_t status = 429;
  uint32_t max_tokens = 1;
  uint32_t tokens_per_fill = 1;
  std::chrono::milliseconds fill_interval{1000};
  FractionalPercent filter_enabled = FractionalPercent::none();   // absent in the proto = 0%
  FractionalPercent filter_enforced = FractionalPercent::none();  // absent in the proto = 0%
  std::vector<HeaderValueOption> response_headers_to_add;         // on limited responses
  std::vector<HeaderValueOption> request_headers_to_add_when_not_enforced;
  bool x_ratelimit_headers = false;  // enable_x_ratelimit_headers: DRAFT_VERSION_03
  std::unique_ptr<TokenBucket> bucket;
  Stats* stats = nullptr;  // process-wide counters for stat_prefix (never null once converted)
};

// route.v3 RateLimit.Action: one descriptor entry.
struct RateLimitAction {
  enum class Kind : uint8_t {
    SourceCluster,
    DestinationCluster,
    RequestHeaders,
    RemoteAddress,
    GenericKey,
    HeaderValueMatch
  };
  Kind kind = Kind::GenericKey;
  std::string header_name;     // RequestHeaders (lower case)
  std::string descriptor_key;  // RequestHeaders; GenericKey / HeaderValueMatch (default key when empty)
  std::string descriptor_value;
  bool skip_if_absent = false;  // RequestHeaders
  bool expect_match = true;     // HeaderValueMatch
  std::vector<HeaderMatcher> headers;
};

// route.v3 RateLimit: the actions building one descriptor, for one filter stage.
struct RateLimitEntry {
  uint32_t stage = 0;
  std::vector<RateLimitAction> actions;
};

struct RateLimitPolicies {
  std::vector<RateLimitEntry> entries;
};

// envoy.filters.http.ratelimit (RateLimit filter config).
struct GlobalRateLimit {
  std::string domain;
  uint32_t stage = 0;
  std::chrono::milliseconds timeout{20};  // Envoy's default
  bool failure_mode_deny = false;
  std::string cluster;    // rate_limit_service.grpc_service.envoy_grpc.cluster_name
  std::string authority;  // envoy_grpc.authority; empty = the cluster name
  bool x_ratelimit_headers = false;
  bool disable_x_envoy_ratelimited_header = false;
  bool rate_limited_as_resource_exhausted = false;
  uint16_t rate_limited_status = 429;
  uint16_t status_on_error = 500;                          // Envoy: 500 when the RLS fails and failure_mode_deny
  std::vector<HeaderValueOption> response_headers_to_add;  // on limited responses
  std::string stat_prefix;
  Stats* stats = nullptr;  // process-wide counters for stat_prefix (never null once converted)
};

}  // namespace waypoint::ratelimit
