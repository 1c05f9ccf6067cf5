// Tracing config from xDS (docs/tracing.md) -> route_model.h's RouteTracing / TracingProvider:
//   Route.tracing (envoy.config.route.v3.Tracing): random_sampling and custom_tags (literal,
//     environment, request_header); client_sampling is refused (x-client-trace-id forcing is
//     not implemented).
//   typed_per_filter_config["istio.tracing"] on a virtual host: an HttpConnectionManager.Tracing
//     whose provider is envoy.tracers.zipkin with a ZipkinConfig (collector_cluster, HTTP_JSON,
//     128-bit ids, no shared span context: what Istio writes), plus max_path_tag_length. No
//     provider = span reporting disabled. Any other provider, endpoint version, or a field not
//     modelled is an error naming it.
// Threading: pure functions. Protobuf types are forward-declared.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "waypoint/route_model.h"

namespace google::protobuf {
class Any;
}
namespace envoy::config::route::v3 {
class Tracing;
}

namespace waypoint::xds {

// Our key (no Envoy filter of this name exists: Envoy carries this on the listener's HCM,
// which the waypoint does not consume).
inline constexpr std::string_view kTracingConfigKey = "istio.tracing";
inline constexpr std::string_view kZipkinTracerName = "envoy.tracers.zipkin";

common::Result<std::shared_ptr<const RouteTracing>> convert_route_tracing(const envoy::config::route::v3::Tracing& t,
                                                                          const std::string& path);
common::Result<std::shared_ptr<const TracingProvider>> convert_tracing_provider(const google::protobuf::Any& any,
                                                                                const std::string& path);

}  // namespace waypoint::xds
