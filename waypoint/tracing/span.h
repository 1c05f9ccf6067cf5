// One finished span as the waypoint reports it to a Zipkin collector: ids, name, kind SERVER,
// start (µs since the epoch), duration (µs), the local endpoint and string tags (Envoy's HCM
// tags plus Istio's). Built on the worker at request completion, handed to the exporter
// thread by pointer and owned by it from then on.
// Threading: a plain value; one owner at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "waypoint/tracing/collector_client.h"
#include "waypoint/tracing/trace_context.h"

namespace waypoint::tracing {

struct Span {
  TraceId trace_id;
  uint64_t id = 0;
  uint64_t parent_id = 0;  // 0 = root
  std::string name;
  int64_t timestamp_us = 0;
  int64_t duration_us = 0;
  bool debug = false;
  std::vector<std::pair<std::string, std::string>> tags;
  // Where it goes: null = the tracer's configured collector (the environment's); else the
  // endpoint of the xDS provider's collector cluster, with its path.
  std::shared_ptr<const CollectorAddress> collector;
  std::string collector_path;
};

// The process-wide part of every span (from the waypoint's Config).
struct LocalEndpoint {
  std::string service_name;  // Istio's service cluster: "<canonical service>.<namespace>"
  std::string ipv4, ipv6;
  std::vector<std::pair<std::string, std::string>> tags;  // node_id, istio.* of the waypoint itself
};

// Zipkin v2 JSON (`POST /api/v2/spans`): an array of span objects.
std::string zipkin_json(const std::vector<Span*>& spans, const LocalEndpoint& local);

}  // namespace waypoint::tracing
