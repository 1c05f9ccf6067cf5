// ResolvedTracing (telemetry.h) -> the Envoy fields our waypoint and gateway read
// (docs/tracing.md): on every route of the RouteConfiguration, Route.tracing
// {random_sampling (per million), custom_tags}; on every virtual host,
// typed_per_filter_config["istio.tracing"] = HttpConnectionManager.Tracing {provider
// envoy.tracers.zipkin + ZipkinConfig{collector_cluster, /api/v2/spans, HTTP_JSON, 128-bit,
// shared_span_context false}, max_path_tag_length}; no provider when span reporting is
// disabled. The caller adds the collector cluster itself.
// Threading: pure function.
#pragma once

#include <string>
#include <string_view>

#include "controlplane/telemetry.h"

namespace envoy::config::route::v3 {
class RouteConfiguration;
}

namespace controlplane {

inline constexpr std::string_view kTracingConfigKey = "istio.tracing";

void attach_tracing(envoy::config::route::v3::RouteConfiguration& rc, const ResolvedTracing& t,
                    const std::string& collector_cluster);

}  // namespace controlplane
