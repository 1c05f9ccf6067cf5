// Trace context as the waypoint's Zipkin tracer reads and writes it on HTTP requests: B3
// (`x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags`, and the
// single `b3` header) and W3C trace context (`traceparent`, `tracestate`).
//
// Read order as Envoy's Zipkin extractor: single `b3`, then the B3 multi headers, then
// `traceparent`. A malformed context is ignored (a new trace starts), never an error for the
// request. A sampling decision without ids (`x-b3-sampled: 1`, `b3: 0`) is honoured for the
// new trace. Writing (`inject`) sets the B3 multi headers and `traceparent` to the waypoint's
// span; `b3` is rewritten only when the request carried it; `tracestate` is left as received.
//
// Threading: pure functions over plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "waypoint/router/http_message.h"

namespace waypoint::tracing {

// 64- or 128-bit trace id (B3 allows both; W3C and new traces are 128-bit).
struct TraceId {
  uint64_t high = 0;
  uint64_t low = 0;
  bool wide = false;  // 128-bit
  bool valid() const { return high != 0 || low != 0; }
  std::string hex() const;  // 16 or 32 lower-case hex digits
  bool operator==(const TraceId&) const = default;
};

enum class Format { None, B3Single, B3Multi, TraceParent };

// What a request carried.
struct Incoming {
  Format format = Format::None;
  TraceId trace_id;             // valid() when a full context was read
  uint64_t span_id = 0;         // the caller's span: our span's parent
  std::optional<bool> sampled;  // the caller's decision, when it made one
  bool debug = false;           // x-b3-flags: 1 / b3 "d"
  bool malformed = false;       // headers were present but unusable (ignored)
  bool has_context() const { return trace_id.valid() && span_id != 0; }
};

Incoming extract(const router::HeaderList& headers);

// Single-header parsers (exposed for tests and the fuzz target). nullopt on any syntax error.
std::optional<TraceId> parse_trace_id(std::string_view hex);  // 16 or 32 hex, non-zero
std::optional<uint64_t> parse_span_id(std::string_view hex);  // 16 hex, non-zero
std::optional<Incoming> parse_b3_single(std::string_view value);

// The waypoint's span on one request.
struct SpanIds {
  TraceId trace_id;
  uint64_t span_id = 0;
  uint64_t parent_id = 0;  // 0 = root span
  bool sampled = false;
  bool debug = false;
};

// Join the incoming trace (new span id, parent = incoming span) or start a new 128-bit one.
// `sampled`: the incoming decision, else `random_decision`. Ids come from `rand64` (non-zero).
template <typename Rand>
SpanIds child_of(const Incoming& in, bool random_decision, Rand&& rand64) {
  auto nonzero = [&] {
    uint64_t v = 0;
    while (v == 0) v = rand64();
    return v;
  };
  SpanIds s;
  if (in.has_context()) {
    s.trace_id = in.trace_id;
    s.parent_id = in.span_id;
  } else {
    s.trace_id = TraceId{nonzero(), nonzero(), true};
  }
  s.span_id = nonzero();
  s.debug = in.debug;
  s.sampled = in.debug || in.sampled.value_or(random_decision);
  return s;
}

// Writes the span's context for the upstream (see the file comment).
void inject(const SpanIds& span, const Incoming& in, router::HeaderList& headers);

std::string hex64(uint64_t v);

}  // namespace waypoint::tracing
