// typed_per_filter_config["envoy.filters.http.ext_authz"] (an
// envoy.extensions.filters.http.ext_authz.v3.ExtAuthz: the waypoint has no LDS, so the
// filter's settings travel with the virtual host or route, as the rate limit filter's do)
// -> waypoint::authz::ExtAuthzConfig. Implemented: grpc_service.envoy_grpc {cluster_name,
// authority} + timeout, or http_service {server_uri {uri, cluster, timeout}, path_prefix,
// authorization_request.headers_to_add, authorization_response {allowed_upstream_headers,
// allowed_client_headers, allowed_client_headers_on_success}}; failure_mode_allow,
// status_on_error, allowed_headers, stat_prefix, transport_api_version (V3 only).
// Refused naming the field: with_request_body, clear_route_cache, metadata namespaces,
// filter_enabled, include_peer_certificate, include_tls_session,
// allowed_upstream_headers_to_append, dynamic_metadata_from_headers, the deprecated
// authorization_request.allowed_headers, google_grpc, and any field not modelled.
//
// Threading: control thread; pure apart from registering the stat counters.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "waypoint/authz/ext_authz.h"

namespace google::protobuf {
class Any;
}

namespace waypoint::xds {

inline constexpr std::string_view kExtAuthzFilterName = "envoy.filters.http.ext_authz";

common::Result<std::shared_ptr<const authz::ExtAuthzConfig>> convert_ext_authz(const google::protobuf::Any& any,
                                                                               const std::string& path);
// The same from serialized ExtAuthz bytes (tests).
common::Result<std::shared_ptr<const authz::ExtAuthzConfig>> parse_ext_authz(std::string_view bytes);

}  // namespace waypoint::xds
