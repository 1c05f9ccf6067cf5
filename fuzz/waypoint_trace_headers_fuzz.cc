// libFuzzer target: the waypoint's trace-header reading (single `b3`, B3 multi headers,
// traceparent) and writing. The input is split into header values at '\n'. Whatever is read,
// the written headers must read back as the same context (the upstream joins our span).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "waypoint/tracing/trace_context.h"

using namespace waypoint;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  static const char* const kNames[] = {"b3",           "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
                                       "x-b3-sampled", "x-b3-flags",   "traceparent", "tracestate"};
  router::HeaderList h;
  for (size_t i = 0; i < 8 && !input.empty(); ++i) {
    const size_t nl = input.find('\n');
    h.add(kNames[i], std::string(input.substr(0, nl)));
    input = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
  }
  (void)tracing::parse_b3_single(h.get("b3").value_or(""));
  const tracing::Incoming in = tracing::extract(h);
  uint64_t n = 0;
  const tracing::SpanIds s = tracing::child_of(in, true, [&] { return ++n; });
  tracing::inject(s, in, h);
  const tracing::Incoming back = tracing::extract(h);
  if (!back.has_context() || !(back.trace_id == s.trace_id) || back.span_id != s.span_id ||
      back.sampled != std::optional<bool>(s.sampled)) {
    std::abort();
  }
  return 0;
}
