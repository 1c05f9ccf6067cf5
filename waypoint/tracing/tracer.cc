#include "waypoint/tracing/tracer.h"

#include <spdlog/spdlog.h>
#include <boost/lockfree/queue.hpp>
#include <map>
#include <tuple>

namespace waypoint::tracing {

struct Tracer::Queue {
  explicit Queue(size_t n) : q(n) {}
  boost::lockfree::queue<Span*> q;
};

Tracer::Tracer(TracerOptions opts, common::metrics::Registry& reg)
    : opts_(std::move(opts)),
      queue_(std::make_unique<Queue>(opts_.queue_capacity)),
      spans_sent_(reg.counter("envoy_tracing_zipkin_spans_sent", "Spans delivered to the Zipkin collector").get({})),
      spans_dropped_(
          reg.counter("envoy_tracing_zipkin_spans_dropped", "Spans dropped because the export queue was full").get({})),
      reports_sent_(reg.counter("envoy_tracing_zipkin_reports_sent", "Batches the collector accepted (2xx)").get({})),
      reports_dropped_(
          reg.counter("envoy_tracing_zipkin_reports_dropped", "Batches the collector refused (non-2xx)").get({})),
      reports_failed_(
          reg.counter("envoy_tracing_zipkin_reports_failed", "Batches that could not be delivered").get({})) {}

Tracer::~Tracer() {
  stop();
  Span* s = nullptr;
  while (queue_->q.pop(s)) delete s;
}

void Tracer::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void Tracer::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ActiveSpan Tracer::begin(router::HeaderList& headers, router::Random& random, std::string name,
                         const RequestTracing& x) const {
  ActiveSpan a;
  if (x.provider) {
    if (!x.provider->report || !x.collector) return a;
  } else if (opts_.collector.host.empty()) {
    return a;
  }
  const Incoming in = extract(headers);
  bool decision;
  if (x.route && x.route->random_sampling) {  // Route.tracing.random_sampling (Telemetry)
    const auto& f = *x.route->random_sampling;
    decision = random.next() % f.denominator < f.numerator;
  } else {
    // Basis points, as Envoy's random sampling (a FractionalPercent over 10000).
    const auto bp = static_cast<uint64_t>(opts_.sampling_percent * 100.0 + 0.5);
    decision = random.next() % 10000 < bp;
  }
  a.ids = child_of(in, decision, [&] { return random.next(); });
  if (!a.ids.sampled) return a;
  a.sampled = true;
  if (x.route) {  // custom tags read the request as received
    for (const auto& t : x.route->custom_tags) {
      if (t.kind == TracingCustomTag::Kind::Literal) {
        a.custom_tags.emplace_back(t.tag, t.value);
      } else if (auto v = headers.get(t.header)) {
        a.custom_tags.emplace_back(t.tag, std::string(*v));
      } else if (!t.default_value.empty()) {
        a.custom_tags.emplace_back(t.tag, t.default_value);
      }
    }
  }
  if (x.provider) {
    a.collector = x.collector;
    a.collector_path = x.provider->collector_path;
    a.max_path_tag_length = x.provider->max_path_tag_length;
  }
  inject(a.ids, in, headers);
  a.name = std::move(name);
  a.start_wall = std::chrono::system_clock::now();
  a.start = std::chrono::steady_clock::now();
  return a;
}

void Tracer::end(ActiveSpan& a, const RequestRecord& rec) {
  if (!a.sampled) return;
  a.sampled = false;
  auto* s = new Span;
  s->trace_id = a.ids.trace_id;
  s->id = a.ids.span_id;
  s->parent_id = a.ids.parent_id;
  s->debug = a.ids.debug;
  s->name = std::move(a.name);
  s->timestamp_us = std::chrono::duration_cast<std::chrono::microseconds>(a.start_wall.time_since_epoch()).count();
  s->duration_us = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - a.start).count());
  s->tags = request_tags(rec);
  if (a.max_path_tag_length > 0) {
    for (auto& [k, v] : s->tags) {
      if (k == "http.url" && v.size() > a.max_path_tag_length) v.resize(a.max_path_tag_length);
    }
  }
  for (auto& t : a.custom_tags) s->tags.push_back(std::move(t));
  s->collector = std::move(a.collector);
  s->collector_path = std::move(a.collector_path);
  if (!queue_->q.bounded_push(s)) {
    delete s;
    spans_dropped_->inc();
  }
}

void Tracer::run() {
  std::vector<Span*> batch;
  auto oldest = std::chrono::steady_clock::now();
  // Polling keeps the workers free of any wake-up call: they only push.
  constexpr auto kPoll = std::chrono::milliseconds(50);
  for (;;) {
    bool stopping;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, kPoll, [&] { return stopping_; });
      stopping = stopping_;
    }
    Span* s = nullptr;
    while (queue_->q.pop(s)) {
      if (batch.empty()) oldest = std::chrono::steady_clock::now();
      batch.push_back(s);
      if (batch.size() >= std::max<size_t>(opts_.batch_size, 1) * 20) flush(batch);  // cap one POST's size
    }
    const bool due = !batch.empty() && (batch.size() >= opts_.batch_size ||
                                        std::chrono::steady_clock::now() - oldest >= opts_.flush_interval);
    if (due || (stopping && !batch.empty())) flush(batch);
    if (stopping) return;
  }
}

void Tracer::flush(std::vector<Span*>& batch) {
  // One POST per collector: the environment's, and each xDS provider endpoint (usually one).
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<Span*>> by_collector;
  for (Span* s : batch) {
    const CollectorAddress& c = s->collector ? *s->collector : opts_.collector;
    const std::string& path = s->collector ? s->collector_path : opts_.collector_path;
    by_collector[{c.host, c.port, path}].push_back(s);
  }
  batch.clear();
  for (auto& [key, spans] : by_collector) {
    const auto& [host, port, path] = key;
    const std::string body = zipkin_json(spans, opts_.local);
    const size_t n = spans.size();
    for (Span* s : spans) delete s;
    auto r = post_spans(CollectorAddress{host, port}, path, body, opts_.post_timeout);
    if (!r) {
      reports_failed_->inc();
      spdlog::warn("tracing: {} spans not delivered to {}:{}: {}", n, host, port, r.error());
      continue;
    }
    if (r.value() < 200 || r.value() >= 300) {
      reports_dropped_->inc();
      spdlog::warn("tracing: collector {}:{} answered {} to {} spans", host, port, r.value(), n);
      continue;
    }
    reports_sent_->inc();
    spans_sent_->inc(n);
  }
}

std::vector<std::pair<std::string, std::string>> request_tags(const RequestRecord& rec) {
  std::vector<std::pair<std::string, std::string>> t;
  t.reserve(24);
  auto add = [&](std::string k, std::string v) { t.emplace_back(std::move(k), std::move(v)); };
  add("component", "proxy");
  add("span.kind", "server");
  if (!rec.request_id.empty()) add("guid:x-request-id", rec.request_id);
  add("http.url", "http://" + rec.authority + rec.path);
  add("http.method", rec.method);
  add("http.protocol", rec.protocol);
  add("downstream_cluster", "-");
  if (!rec.user_agent.empty()) add("user_agent", rec.user_agent);
  if (!rec.src_addr.empty()) add("peer.address", rec.src_addr);
  add("request_size", std::to_string(rec.request_bytes));
  add("response_size", std::to_string(rec.response_bytes));
  add("http.status_code", std::to_string(rec.response_code));
  add("response_flags", rec.response_flags);
  if (!rec.upstream_cluster.empty()) {
    add("upstream_cluster", rec.upstream_cluster);
    add("upstream_cluster.name", rec.upstream_cluster);
  }
  if (!rec.upstream_host.empty()) add("upstream_address", rec.upstream_host);
  // Envoy marks 5xx and requests that got no response (DC) as errors.
  if (rec.response_code >= 500 || rec.response_code == 0) add("error", "true");
  if (!rec.grpc_status.empty()) add("grpc.status_code", rec.grpc_status);
  // Recent waypoints: who called and who answered.
  if (rec.src) {
    add("istio.downstream.workload", rec.src->workload_name.empty() ? rec.src->name : rec.src->workload_name);
    add("istio.downstream.namespace", rec.src->ns);
  } else if (rec.src_identity) {
    add("istio.downstream.namespace", rec.src_identity->ns());
  }
  if (rec.dst) {
    add("istio.upstream.workload", rec.dst->workload_name.empty() ? rec.dst->name : rec.dst->workload_name);
    add("istio.upstream.namespace", rec.dst->ns);
  }
  return t;
}

}  // namespace waypoint::tracing
