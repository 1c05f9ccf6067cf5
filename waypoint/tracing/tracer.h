// Tracer: the waypoint's Zipkin tracer (Envoy's, as Istio configures it: 128-bit trace ids for
// new traces, no shared span context, so each request gets its own SERVER span whose parent is
// the caller's span).
//   - begin() at request start, on the worker: reads the incoming context (trace_context.h),
//     decides sampling (the caller's decision when it made one, else `sampling_percent`), and
//     for a sampled request writes the new span's context into the request headers the
//     upstream receives. An unsampled request's headers are left exactly as received.
//   - end() at completion, on the worker: builds the span (Envoy's and Istio's tags) and hands
//     it to the exporter through a bounded lock-free queue; a full queue drops the span and
//     counts it (envoy_tracing_zipkin_spans_dropped). No lock on this path.
//   - the exporter thread (start()/stop()) drains the queue and POSTs batches to the collector
//     when `batch_size` spans are waiting or `flush_interval` passed since the oldest one;
//     stop() sends what is left.
// Threading: begin()/end() from any worker concurrently; start()/stop() on the control thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/admin/metrics.h"
#include "waypoint/route_model.h"
#include "waypoint/router/random.h"
#include "waypoint/telemetry.h"
#include "waypoint/tracing/collector_client.h"
#include "waypoint/tracing/span.h"
#include "waypoint/tracing/trace_context.h"

namespace waypoint::tracing {

struct TracerOptions {
  CollectorAddress collector;
  std::string collector_path = "/api/v2/spans";
  double sampling_percent = 1.0;  // Istio's default (mesh defaultConfig.tracing.sampling)
  LocalEndpoint local;
  size_t queue_capacity = 8192;
  size_t batch_size = 5;                           // Envoy's min_flush_spans
  std::chrono::milliseconds flush_interval{5000};  // Envoy's flush_interval
  std::chrono::milliseconds post_timeout{5000};
};

// The tracing config xDS gave the request's virtual host (Istio's Telemetry, docs/tracing.md);
// null parts fall back to TracerOptions (the environment). `collector` is the provider's
// collector_cluster endpoint, resolved by the caller from the config snapshot; null with a
// reporting provider = no endpoint: no span.
struct RequestTracing {
  const RouteTracing* route = nullptr;
  const TracingProvider* provider = nullptr;
  std::shared_ptr<const CollectorAddress> collector;
};

// The span of one request between begin() and end(); empty when the request is not sampled.
struct ActiveSpan {
  bool sampled = false;
  SpanIds ids;
  std::string name;
  std::shared_ptr<const CollectorAddress> collector;  // null = TracerOptions::collector
  std::string collector_path;                         // with `collector`
  uint32_t max_path_tag_length = 0;                   // 0 = not truncated
  std::vector<std::pair<std::string, std::string>> custom_tags;
  std::chrono::system_clock::time_point start_wall;
  std::chrono::steady_clock::time_point start;
};

class Tracer {
 public:
  Tracer(TracerOptions opts, common::metrics::Registry& registry);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  void start();
  void stop();

  // No collector at all (neither `x.collector` nor TracerOptions::collector), or span reporting
  // disabled by `x.provider`: not sampled, headers untouched.
  ActiveSpan begin(router::HeaderList& headers, router::Random& random, std::string name,
                   const RequestTracing& x = {}) const;
  void end(ActiveSpan& span, const RequestRecord& rec);

  const TracerOptions& options() const { return opts_; }

 private:
  struct Queue;
  void run();
  void flush(std::vector<Span*>& batch);

  TracerOptions opts_;
  std::unique_ptr<Queue> queue_;
  common::metrics::Counter* spans_sent_;
  common::metrics::Counter* spans_dropped_;
  common::metrics::Counter* reports_sent_;
  common::metrics::Counter* reports_dropped_;
  common::metrics::Counter* reports_failed_;
  std::thread thread_;
  std::mutex mu_;  // exporter sleep/stop only; workers never take it
  std::condition_variable cv_;
  bool stopping_ = false;
};

// Span tags Envoy's HTTP connection manager and Istio set, from the request's telemetry record.
std::vector<std::pair<std::string, std::string>> request_tags(const RequestRecord& rec);

}  // namespace waypoint::tracing
