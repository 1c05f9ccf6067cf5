#include "waypoint/tracing/trace_context.h"

#include "common/hex.h"
#include "hbone/headers.h"

namespace waypoint::tracing {

namespace {

// B3 says lower-hex; upper case is accepted on read (some clients send it) and written lower.
using common::hex_value;

std::optional<uint64_t> parse_hex64(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    const int d = hex_value(c);
    if (d < 0) return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

// B3 sampling values: "1"/"true" sampled, "0"/"false" not, "d" debug (single header only).
std::optional<bool> parse_sampled(std::string_view v) {
  if (v == "1" || v == "true") return true;
  if (v == "0" || v == "false") return false;
  return std::nullopt;
}

uint64_t load_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void store_be64(uint64_t v, uint8_t* p) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

Incoming from_multi(const router::HeaderList& h) {
  Incoming in;
  auto tid = h.get("x-b3-traceid");
  auto sid = h.get("x-b3-spanid");
  auto smp = h.get("x-b3-sampled");
  auto flags = h.get("x-b3-flags");
  if (!tid && !sid && !smp && !flags) return in;
  in.format = Format::B3Multi;
  if (smp) {
    in.sampled = parse_sampled(*smp);
    if (!in.sampled) in.malformed = true;
  }
  if (flags && *flags == "1") in.debug = true;
  if (tid || sid) {
    auto t = tid ? parse_trace_id(*tid) : std::nullopt;
    auto s = sid ? parse_span_id(*sid) : std::nullopt;
    if (auto p = h.get("x-b3-parentspanid"); p && !parse_span_id(*p)) t.reset();
    if (t && s) {
      in.trace_id = *t;
      in.span_id = *s;
    } else {
      in.malformed = true;
    }
  }
  return in;
}

}  // namespace

std::string hex64(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kDigits[v & 0xf];
    v >>= 4;
  }
  return out;
}

std::string TraceId::hex() const {
  return wide ? hex64(high) + hex64(low) : hex64(low);
}

std::optional<TraceId> parse_trace_id(std::string_view s) {
  TraceId t;
  if (s.size() == 32) {
    auto hi = parse_hex64(s.substr(0, 16));
    auto lo = parse_hex64(s.substr(16));
    if (!hi || !lo) return std::nullopt;
    t = TraceId{*hi, *lo, true};
  } else if (s.size() == 16) {
    auto lo = parse_hex64(s);
    if (!lo) return std::nullopt;
    t = TraceId{0, *lo, false};
  } else {
    return std::nullopt;
  }
  if (!t.valid()) return std::nullopt;
  return t;
}

std::optional<uint64_t> parse_span_id(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  auto v = parse_hex64(s);
  if (!v || *v == 0) return std::nullopt;
  return v;
}

// b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]] | {SamplingState}
std::optional<Incoming> parse_b3_single(std::string_view v) {
  Incoming in;
  in.format = Format::B3Single;
  auto sampling = [&](std::string_view s) {
    if (s == "d") {
      in.debug = true;
      in.sampled = true;
      return true;
    }
    if (s == "1" || s == "0") {
      in.sampled = s == "1";
      return true;
    }
    return false;
  };
  if (v.size() == 1) {
    if (!sampling(v)) return std::nullopt;
    return in;
  }
  std::string_view parts[4];
  size_t n = 0;
  size_t start = 0;
  for (;;) {
    const size_t dash = v.find('-', start);
    if (n == 4) return std::nullopt;
    parts[n++] = v.substr(start, dash == std::string_view::npos ? std::string_view::npos : dash - start);
    if (dash == std::string_view::npos) break;
    start = dash + 1;
  }
  if (n < 2) return std::nullopt;
  auto t = parse_trace_id(parts[0]);
  auto s = parse_span_id(parts[1]);
  if (!t || !s) return std::nullopt;
  if (n >= 3 && !sampling(parts[2])) return std::nullopt;
  if (n == 4 && !parse_span_id(parts[3])) return std::nullopt;
  in.trace_id = *t;
  in.span_id = *s;
  return in;
}

Incoming extract(const router::HeaderList& h) {
  bool malformed = false;
  if (auto b3 = h.get("b3")) {
    if (auto in = parse_b3_single(*b3)) return *in;
    malformed = true;
  }
  Incoming in = from_multi(h);
  if (in.has_context() || in.sampled) {
    in.malformed = in.malformed || malformed;
    return in;
  }
  malformed = malformed || in.malformed;
  if (auto tp = h.get("traceparent")) {
    if (auto t = hbone::parse_traceparent(*tp)) {
      Incoming w;
      w.format = Format::TraceParent;
      w.trace_id = TraceId{load_be64(t->trace_id.data()), load_be64(t->trace_id.data() + 8), true};
      w.span_id = load_be64(t->parent_id.data());
      w.sampled = (t->flags & 1) != 0;
      w.malformed = malformed;
      return w;
    }
    malformed = true;
  }
  Incoming none;
  none.debug = in.debug;
  none.malformed = malformed;
  return none;
}

void inject(const SpanIds& span, const Incoming& in, router::HeaderList& h) {
  const std::string tid = span.trace_id.hex();
  const std::string sid = hex64(span.span_id);
  h.set("x-b3-traceid", tid);
  h.set("x-b3-spanid", sid);
  if (span.parent_id != 0) {
    h.set("x-b3-parentspanid", hex64(span.parent_id));
  } else {
    h.remove("x-b3-parentspanid");
  }
  h.set("x-b3-sampled", span.sampled ? "1" : "0");
  if (in.format == Format::B3Single || h.contains("b3")) {
    std::string b3 = tid + "-" + sid + "-" + (span.debug ? "d" : span.sampled ? "1" : "0");
    if (span.parent_id != 0) b3 += "-" + hex64(span.parent_id);
    h.set("b3", std::move(b3));
  }
  hbone::TraceParent tp;
  store_be64(span.trace_id.high, tp.trace_id.data());
  store_be64(span.trace_id.low, tp.trace_id.data() + 8);
  store_be64(span.span_id, tp.parent_id.data());
  tp.flags = span.sampled ? 1 : 0;
  h.set("traceparent", tp.to_string());
}

}  // namespace waypoint::tracing
