// Envoy v3 resources -> the waypoint's config model (waypoint/route_model.h), with validation.
// Every resource is checked field by field when it arrives (validate.h: unknown fields and
// modelled-but-unimplemented fields are refused by name), then converted; values the model
// cannot honour (an unknown retry_on token, a redirect code Envoy does not define, a regex RE2
// rejects, a %FORMATTER% in a header value, a typed_per_filter_config for a filter we do not
// run, a cluster discovery type other than EDS/STATIC ...) are errors naming the field path.
// An error rejects that one resource (the caller NACKs it); it never affects another.
//
// Names: the resource name given by the xDS layer must equal the message's own name
// (RouteConfiguration.name, Cluster.name, ClusterLoadAssignment.cluster_name).
//
// Threading: pure functions. Protobuf types are forward-declared; only the .cc and tests include
// the generated headers.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "waypoint/route_model.h"

namespace envoy::config::route::v3 {
class RouteConfiguration;
}
namespace envoy::config::cluster::v3 {
class Cluster;
}
namespace envoy::config::endpoint::v3 {
class ClusterLoadAssignment;
}
namespace envoy::config::route::v3 {
class HeaderMatcher;
}
namespace envoy::type::matcher::v3 {
class StringMatcher;
}

namespace waypoint::xds {

inline constexpr std::string_view kRouteConfigurationTypeUrl =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
inline constexpr std::string_view kClusterTypeUrl = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr std::string_view kClusterLoadAssignmentTypeUrl =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
// Filter names accepted in typed_per_filter_config (Envoy's well-known names).
inline constexpr std::string_view kFaultFilterName = "envoy.filters.http.fault";
inline constexpr std::string_view kCorsFilterName = "envoy.filters.http.cors";
inline constexpr std::string_view kHttpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

common::Result<RouteConfig> convert_route_configuration(const envoy::config::route::v3::RouteConfiguration& rc);
common::Result<Cluster> convert_cluster(const envoy::config::cluster::v3::Cluster& c);
common::Result<ClusterLoadAssignment> convert_load_assignment(
    const envoy::config::endpoint::v3::ClusterLoadAssignment& cla);

// The matcher conversions, shared with the filter-config converters (rbac_convert.cc). Errors
// name the field under `path`.
common::Status convert_string_matcher(const envoy::type::matcher::v3::StringMatcher& m, const std::string& path,
                                      StringMatcher& out);
common::Status convert_header_matcher(const envoy::config::route::v3::HeaderMatcher& m, const std::string& path,
                                      HeaderMatcher& out);

// Parse the serialized message (an Any's value), check the name, validate, convert.
common::Result<RouteConfig> parse_route_configuration(std::string_view resource_name, std::string_view bytes);
common::Result<Cluster> parse_cluster(std::string_view resource_name, std::string_view bytes);
common::Result<ClusterLoadAssignment> parse_load_assignment(std::string_view resource_name, std::string_view bytes);

}  // namespace waypoint::xds
