// The HTTP/1.1 client that delivers one batch of spans to a Zipkin collector
// (`POST <path>`, `content-type: application/json`). A fresh connection per batch: batches are
// seconds apart, and a collector restart then costs nothing. Bounded by `timeout` end to end.
// Threading: blocking; called only on the tracer's exporter thread, never on a worker.
#pragma once

#include <chrono>
#include <string>

#include "common/result.h"

namespace waypoint::tracing {

// "host:port" or "[v6]:port"; the host may be a DNS name (zipkin.istio-system:9411).
struct CollectorAddress {
  std::string host;
  std::string port;
};
common::Result<CollectorAddress> parse_collector_address(std::string_view value);

// The collector's HTTP status (2xx = accepted), or an error when it could not be reached.
common::Result<unsigned> post_spans(const CollectorAddress& to, const std::string& path, const std::string& body,
                                    std::chrono::milliseconds timeout);

}  // namespace waypoint::tracing
