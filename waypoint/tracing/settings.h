// Where the waypoint's tracing settings come from, read once at startup:
//   - PROXY_CONFIG: Istio's per-proxy ProxyConfig as JSON (what the injector and the
//     `proxy.istio.io/config` annotation produce); `tracing.zipkin.address` (host:port) and
//     `tracing.sampling` (percent, 0-100; Istio's mesh `defaultConfig.tracing.sampling`).
//   - ZIPKIN_ADDRESS, TRACING_SAMPLING: the same two values as plain variables; they win.
//   - TRACING_FLUSH_INTERVAL (duration, default 5s) and TRACING_BATCH_SIZE (default 5):
//     Envoy's flush_interval / min_flush_spans.
// No collector address = options with an empty `collector`: only a virtual host whose xDS
// config names a provider (Istio Telemetry, docs/tracing.md) is traced; every other request's
// trace headers pass through untouched (facts §5.7). The result is always engaged.
// Every malformed value fails the load naming the variable (and the JSON field).
// Threading: pure; called on the main thread before the runtime starts.
#pragma once

#include <optional>

#include "common/env.h"
#include "common/result.h"
#include "waypoint/config.h"
#include "waypoint/tracing/tracer.h"

namespace waypoint::tracing {

common::Result<std::optional<TracerOptions>> tracing_from_env(const common::env::EnvLookup& env, const Config& cfg);

}  // namespace waypoint::tracing
