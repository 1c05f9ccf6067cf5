// Trace headers at the waypoint (waypoint/tracing/trace_context): B3 multi and single and W3C
// traceparent read, joined (new span id, parent = the caller's span) and written back; bad
// values start a new trace and never fail the request.
#include <catch2/catch.hpp>

#include "waypoint/tracing/trace_context.h"

using namespace waypoint;
using namespace waypoint::tracing;

namespace {

router::HeaderList headers(std::initializer_list<router::HeaderField> f) {
  return router::HeaderList(f);
}

// Deterministic ids for the new span: 0x11.., 0x22.., ...
struct Ids {
  uint64_t n = 0;
  uint64_t operator()() { return 0x1111111111111111ULL * (++n % 15 + 1); }
};

std::string get(const router::HeaderList& h, std::string_view name) {
  return std::string(h.get(name).value_or("<absent>"));
}

}  // namespace

TEST_CASE("B3 multi headers are joined: same trace, new span, parent = the caller's span") {
  auto h = headers({{"x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"},
                    {"x-b3-spanid", "a2fb4a1d1a96d312"},
                    {"x-b3-parentspanid", "0020000000000001"},
                    {"x-b3-sampled", "1"}});
  const Incoming in = extract(h);
  REQUIRE(in.format == Format::B3Multi);
  REQUIRE(in.has_context());
  CHECK_FALSE(in.malformed);
  CHECK(in.trace_id.hex() == "463ac35c9f6413ad48485a3953bb6124");
  CHECK(in.sampled == std::optional<bool>(true));
  const SpanIds s = child_of(in, /*random_decision=*/false, Ids{});
  CHECK(s.sampled);  // the caller's decision beats the local one
  CHECK(s.parent_id == 0xa2fb4a1d1a96d312ULL);
  CHECK(s.span_id != 0xa2fb4a1d1a96d312ULL);
  inject(s, in, h);
  CHECK(get(h, "x-b3-traceid") == "463ac35c9f6413ad48485a3953bb6124");
  CHECK(get(h, "x-b3-spanid") == hex64(s.span_id));
  CHECK(get(h, "x-b3-parentspanid") == "a2fb4a1d1a96d312");
  CHECK(get(h, "x-b3-sampled") == "1");
  CHECK(get(h, "traceparent") == "00-463ac35c9f6413ad48485a3953bb6124-" + hex64(s.span_id) + "-01");
  CHECK(get(h, "b3") == "<absent>");  // not invented when the caller did not use it
  CHECK(h.size() == 5);
}

TEST_CASE("a 64-bit B3 trace id stays 64-bit in B3 and is zero-padded in traceparent") {
  auto h = headers({{"x-b3-traceid", "48485a3953bb6124"}, {"x-b3-spanid", "a2fb4a1d1a96d312"}});
  const Incoming in = extract(h);
  REQUIRE(in.has_context());
  CHECK_FALSE(in.sampled.has_value());
  const SpanIds s = child_of(in, true, Ids{});
  CHECK(s.sampled);
  inject(s, in, h);
  CHECK(get(h, "x-b3-traceid") == "48485a3953bb6124");
  CHECK(get(h, "traceparent").substr(0, 36) == "00-000000000000000048485a3953bb6124-");
}

TEST_CASE("x-b3-sampled: 0 is honoured even when the local sampler says yes") {
  auto h = headers({{"x-b3-traceid", "48485a3953bb6124"}, {"x-b3-spanid", "a2fb4a1d1a96d312"}, {"x-b3-sampled", "0"}});
  CHECK_FALSE(child_of(extract(h), true, Ids{}).sampled);
  auto t =
      headers({{"x-b3-traceid", "48485a3953bb6124"}, {"x-b3-spanid", "a2fb4a1d1a96d312"}, {"x-b3-sampled", "true"}});
  CHECK(child_of(extract(t), false, Ids{}).sampled);
}

TEST_CASE("a sampling decision alone starts a new trace with that decision") {
  auto only = headers({{"x-b3-sampled", "1"}});
  const Incoming in = extract(only);
  CHECK_FALSE(in.has_context());
  const SpanIds s = child_of(in, false, Ids{});
  CHECK(s.sampled);
  CHECK(s.parent_id == 0);
  CHECK(s.trace_id.wide);
  auto single = headers({{"b3", "0"}});
  CHECK_FALSE(child_of(extract(single), true, Ids{}).sampled);
  auto debug = headers({{"x-b3-flags", "1"}});
  CHECK(child_of(extract(debug), false, Ids{}).sampled);
}

TEST_CASE("single b3 header: all its forms, and it is rewritten when present") {
  auto full = parse_b3_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
  REQUIRE(full);
  CHECK(full->trace_id.hex() == "80f198ee56343ba864fe8b2a57d3eff7");
  CHECK(full->span_id == 0xe457b5a2e4d86bd1ULL);
  CHECK(full->sampled == std::optional<bool>(true));
  auto two = parse_b3_single("80f198ee56343ba8-e457b5a2e4d86bd1");
  REQUIRE(two);
  CHECK_FALSE(two->sampled.has_value());
  auto dbg = parse_b3_single("80f198ee56343ba8-e457b5a2e4d86bd1-d");
  REQUIRE(dbg);
  CHECK(dbg->debug);
  for (const char* bad :
       {"", "2", "x", "80f198ee56343ba8", "80f198ee56343ba8-", "80f198ee56343ba8-e457b5a2e4d86bd1-2",
        "80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9", "80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-1",
        "0000000000000000-e457b5a2e4d86bd1", "80f198ee56343ba8-0000000000000000", "80f198ee56343ba8--1",
        "80f198ee56343ba-e457b5a2e4d86bd1", "8g f198ee56343ba8-e457b5a2e4d86bd1"}) {
    INFO(bad);
    CHECK_FALSE(parse_b3_single(bad));
  }
  // The single header wins over the multi headers, and both are rewritten consistently.
  auto h = headers({{"b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"},
                    {"x-b3-traceid", "48485a3953bb6124"},
                    {"x-b3-spanid", "a2fb4a1d1a96d312"}});
  const Incoming in = extract(h);
  CHECK(in.format == Format::B3Single);
  const SpanIds s = child_of(in, false, Ids{});
  inject(s, in, h);
  CHECK(get(h, "b3") == "80f198ee56343ba864fe8b2a57d3eff7-" + hex64(s.span_id) + "-1-e457b5a2e4d86bd1");
  CHECK(get(h, "x-b3-traceid") == "80f198ee56343ba864fe8b2a57d3eff7");
  CHECK(get(h, "x-b3-parentspanid") == "e457b5a2e4d86bd1");
}

TEST_CASE("traceparent is joined when no B3 context came, its sampled flag honoured, tracestate kept") {
  auto h = headers({{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                    {"tracestate", "congo=t61rcWkgMzE"}});
  const Incoming in = extract(h);
  REQUIRE(in.format == Format::TraceParent);
  CHECK(in.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c");
  CHECK(in.span_id == 0xb7ad6b7169203331ULL);
  const SpanIds s = child_of(in, false, Ids{});
  CHECK(s.sampled);
  inject(s, in, h);
  CHECK(get(h, "traceparent") == "00-0af7651916cd43dd8448eb211c80319c-" + hex64(s.span_id) + "-01");
  CHECK(get(h, "x-b3-traceid") == "0af7651916cd43dd8448eb211c80319c");
  CHECK(get(h, "x-b3-parentspanid") == "b7ad6b7169203331");
  CHECK(get(h, "tracestate") == "congo=t61rcWkgMzE");
  auto off = headers({{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}});
  CHECK_FALSE(child_of(extract(off), true, Ids{}).sampled);
  // B3 takes precedence over traceparent (Envoy's Zipkin extractor).
  auto both = headers({{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                       {"x-b3-traceid", "48485a3953bb6124"},
                       {"x-b3-spanid", "a2fb4a1d1a96d312"}});
  CHECK(extract(both).format == Format::B3Multi);
}

TEST_CASE("malformed trace headers start a new trace and never throw") {
  const std::vector<std::vector<router::HeaderField>> bad = {
      {{"x-b3-traceid", "xyz"}, {"x-b3-spanid", "a2fb4a1d1a96d312"}},
      {{"x-b3-traceid", "48485a3953bb6124"}, {"x-b3-spanid", "a2fb4a1d1a96d31"}},
      {{"x-b3-traceid", "00000000000000000000000000000000"}, {"x-b3-spanid", "a2fb4a1d1a96d312"}},
      {{"x-b3-traceid", "48485a3953bb6124"}},
      {{"x-b3-spanid", "a2fb4a1d1a96d312"}},
      {{"x-b3-traceid", "48485a3953bb6124"}, {"x-b3-spanid", "a2fb4a1d1a96d312"}, {"x-b3-parentspanid", "zz"}},
      {{"x-b3-sampled", "yes"}},
      {{"b3", "not-a-context"}},
      {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"}},
      {{"traceparent", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
      {{"traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01"}},
      {{"traceparent", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"}},
  };
  for (const auto& fields : bad) {
    router::HeaderList h;
    for (const auto& f : fields) h.add(f.name, f.value);
    INFO(fields.front().name << ": " << fields.front().value);
    const Incoming in = extract(h);
    CHECK(in.malformed);
    CHECK_FALSE(in.has_context());
    const SpanIds s = child_of(in, true, Ids{});
    CHECK(s.parent_id == 0);
    CHECK(s.trace_id.wide);
    inject(s, in, h);
    CHECK(get(h, "x-b3-traceid") == s.trace_id.hex());
    CHECK(get(h, "x-b3-spanid") == hex64(s.span_id));
    CHECK(get(h, "x-b3-parentspanid") == "<absent>");
  }
}

TEST_CASE("no trace headers: a new 128-bit root trace") {
  router::HeaderList h;
  const Incoming in = extract(h);
  CHECK(in.format == Format::None);
  CHECK_FALSE(in.malformed);
  const SpanIds s = child_of(in, true, Ids{});
  CHECK(s.sampled);
  CHECK(s.trace_id.hex().size() == 32);
  CHECK(s.parent_id == 0);
  CHECK_FALSE(child_of(in, false, Ids{}).sampled);
}

TEST_CASE("ids are never zero even when the random source yields zeros") {
  uint64_t seq[] = {0, 0, 5, 0, 7, 0, 9};
  size_t i = 0;
  const SpanIds s = child_of(Incoming{}, true, [&] { return seq[i++ % 7]; });
  CHECK(s.trace_id.high != 0);
  CHECK(s.trace_id.low != 0);
  CHECK(s.span_id != 0);
}
