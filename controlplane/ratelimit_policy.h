// Rate limit policies the control plane compiles for waypoints, after parsing: our own
// first-class resource and the EnvoyFilter shape Istio users write today, both read into one
// model (RateLimitPolicyObject) so they compile to the same Envoy output (ratelimit_compile.h).
//
//   apiVersion: ambient.dev/v1alpha1        # the group is this project's (docs/ratelimit.md)
//   kind: RateLimitPolicy
//   spec:
//     targetRefs: [{kind: Gateway|Service, group: ..., name: ...}]   # as AuthorizationPolicy
//     routes: [route-name, ...]              # optional: only these routes (VirtualService http[].name)
//     local:  {maxTokens, tokensPerFill, fillInterval} | {requests, unit: second|minute|hour|day}
//             + enableXRateLimitHeaders (default true), responseHeaders {name: value}
//     global: {domain, service: host:port, timeout (20ms), failureModeDeny (false),
//              enableXRateLimitHeaders, descriptors: [{actions: [remoteAddress: {} |
//              requestHeaders: {header, key, skipIfAbsent} | genericKey: {value, key} |
//              headerValueMatch: {value, key, expectMatch, headers: {name: StringMatch}} |
//              destinationCluster: {}]}]}
//
// EnvoyFilter (networking.istio.io) with targetRefs or a workloadSelector: an HTTP_FILTER patch
// inserting envoy.filters.http.local_ratelimit (typed_config LocalRateLimit or a
// udpa.type.v1.TypedStruct wrapping one) and/or envoy.filters.http.ratelimit (RateLimit with an
// envoy_grpc cluster "outbound|<port>||<host>"), plus VIRTUAL_HOST / HTTP_ROUTE MERGE patches
// carrying rate_limits or a per-route typed_per_filter_config. Other patches are ignored with a
// warning naming them: the waypoint takes no arbitrary Envoy config.
//
// Threading: plain values. Invariants: every number is validated at parse time (maxTokens >= 1,
// fillInterval >= 50ms ...); `path` fields name the source field for diagnostics.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "controlplane/waypoint_resources.h"

namespace controlplane {

inline constexpr std::string_view kRateLimitPolicyGroup = "ambient.dev";

struct RlAction {
  enum class Kind : uint8_t { RemoteAddress, RequestHeaders, GenericKey, HeaderValueMatch, DestinationCluster };
  Kind kind = Kind::GenericKey;
  std::string header;  // RequestHeaders: the header (lower case)
  std::string key;     // descriptor key ("" = Envoy's default for the action)
  std::string value;   // GenericKey / HeaderValueMatch descriptor value
  bool skip_if_absent = false;
  bool expect_match = true;
  std::vector<std::pair<std::string, std::optional<VsStringMatch>>> headers;  // nullopt = present
};

struct RlLocal {
  uint32_t max_tokens = 0;
  uint32_t tokens_per_fill = 0;
  uint64_t fill_interval_ms = 0;
  bool x_ratelimit_headers = true;
  std::vector<std::pair<std::string, std::string>> response_headers;  // on limited responses
  std::string stat_prefix = "http_local_rate_limiter";
  // filter_enabled / filter_enforced (percent): Envoy treats an absent one as 0%, so an
  // EnvoyFilter without them limits nothing; RateLimitPolicy always writes 100.
  double enabled_percent = 100;
  double enforced_percent = 100;
};

struct RlGlobal {
  std::string domain;
  std::string service_host;  // as written: IP, short name or FQDN
  uint16_t service_port = 0;
  std::string service_path;  // the field it came from, for diagnostics
  uint64_t timeout_ms = 20;
  bool failure_mode_deny = false;
  bool x_ratelimit_headers = false;
  std::vector<std::vector<RlAction>> descriptors;
};

struct RlTargetRef {
  std::string kind;  // "Gateway" | "Service"
  std::string name;
};

struct RateLimitPolicyObject {
  std::string kind;  // "RateLimitPolicy" | "EnvoyFilter"
  std::string name, ns;
  std::string file, object;
  std::vector<RlTargetRef> target_refs;  // empty = every waypoint in the namespace
  std::vector<std::string> routes;       // empty = the whole virtual host
  std::optional<RlLocal> local;
  std::optional<RlGlobal> global;
  std::vector<std::string> warnings;  // parts of an EnvoyFilter that were ignored (path: why)
};

}  // namespace controlplane
