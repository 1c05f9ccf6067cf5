// External authorization (Istio's CUSTOM AuthorizationPolicy action; Envoy's
// envoy.filters.http.ext_authz) as the waypoint runs it: the filter's configuration, converted
// from typed_per_filter_config["envoy.filters.http.ext_authz"] (waypoint/xds/ext_authz_convert.h),
// and its counters. Which requests are checked is decided by the CUSTOM RBAC instance
// (rbac_model.h RbacFilters::custom, key "envoy.filters.http.rbac.custom"): a request matching
// one of its policies is sent to the service; any other request skips the check.
//
// Counters, as Envoy's per stat_prefix (<prefix>.ext_authz.{ok,denied,error,
// failure_mode_allowed}), on /metrics as envoy_ext_authz_<name>{stat_prefix="<prefix>"}.
//
// Threading: the config is built on the control thread and frozen in the immutable snapshot
// (shared_ptr from FilterConfigs), read by workers without locks; stats_for() locks and is
// called only by the converter; the data path does relaxed atomic increments.
// Invariants: cluster non-empty; timeout > 0; status_on_error >= 100; header names lower case.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "waypoint/route_model.h"

namespace waypoint::authz {

struct ExtAuthzStats {
  std::atomic<uint64_t> ok{0}, denied{0}, error{0}, failure_mode_allowed{0};
};

ExtAuthzStats* ext_authz_stats_for(std::string_view stat_prefix);
// Prometheus text for every prefix seen so far (a metrics::Registry collector).
void render_ext_authz_stats(std::string& out);

struct ExtAuthzConfig {
  enum class Kind : uint8_t { Grpc, Http };
  Kind kind = Kind::Grpc;
  std::string cluster;    // grpc_service.envoy_grpc.cluster_name / http_service.server_uri.cluster
  std::string authority;  // gRPC: envoy_grpc.authority (else the cluster name); HTTP: the URI's host
  Duration timeout{200};  // Envoy's default
  bool failure_mode_allow = false;
  uint16_t status_on_error = 403;
  // allowed_headers: the request headers sent to the service. Empty = every header (gRPC) or
  // only the defaults (HTTP: host, method, path, content-length, authorization).
  std::vector<StringMatcher> allowed_headers;
  // HTTP service only
  std::string path_prefix;
  std::vector<std::pair<std::string, std::string>> headers_to_add;  // authorization_request
  std::vector<StringMatcher> allowed_upstream_headers;              // on 2xx: set on the request
  std::vector<StringMatcher> allowed_client_headers;                // on deny: to the client
  std::vector<StringMatcher> allowed_client_headers_on_success;     // on 2xx: to the client
  std::string stat_prefix;
  ExtAuthzStats* stats = nullptr;  // never null once converted
};

// Envoy's response flag for a request the ext_authz filter refused (denied or failed closed).
inline constexpr std::string_view kExtAuthzFlag = "UAEX";

}  // namespace waypoint::authz
