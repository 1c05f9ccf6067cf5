// Rate limiting at the waypoint, the pure parts: the token bucket's arithmetic under an injected
// clock (and concurrent takers), the local filter's decision and headers, descriptor building from
// route actions, and the RLS wire codec (waypoint/ratelimit/).
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "waypoint/ratelimit/decide.h"
#include "waypoint/ratelimit/global_filter.h"
#include "waypoint/ratelimit/rls_codec.h"
#include "waypoint/ratelimit/stats.h"

using namespace waypoint;
using namespace waypoint::ratelimit;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kSec = 1'000'000'000ULL;
constexpr uint64_t kT0 = 1000 * kSec;  // an arbitrary clock origin

std::shared_ptr<LocalRateLimit> local(uint32_t max, uint32_t per_fill, std::chrono::milliseconds interval,
                                      std::string prefix) {
  auto c = std::make_shared<LocalRateLimit>();
  c->stat_prefix = prefix;
  c->max_tokens = max;
  c->tokens_per_fill = per_fill;
  c->fill_interval = interval;
  c->filter_enabled = FractionalPercent::all();
  c->filter_enforced = FractionalPercent::all();
  c->bucket = std::make_unique<TokenBucket>(max, per_fill, interval, kT0);
  c->stats = stats_for(prefix);
  return c;
}

}  // namespace

TEST_CASE("token bucket: 5 per minute, the 6th request is limited until the fill", "[ratelimit]") {
  TokenBucket b(5, 5, std::chrono::minutes(1), kT0);
  for (uint32_t i = 0; i < 5; ++i) {
    auto r = b.consume(kT0 + i * kSec);
    CHECK(r.allowed);
    CHECK(r.remaining == 4 - i);
  }
  auto sixth = b.consume(kT0 + 5 * kSec);
  CHECK_FALSE(sixth.allowed);
  CHECK(sixth.remaining == 0);
  CHECK(sixth.reset_seconds == 55);
  CHECK_FALSE(b.consume(kT0 + 59 * kSec).allowed);
  // The fill at one minute brings the bucket back to 5.
  auto after = b.consume(kT0 + 60 * kSec);
  CHECK(after.allowed);
  CHECK(after.remaining == 4);
  CHECK(after.reset_seconds == 60);
}

TEST_CASE("token bucket: fills add tokens_per_fill, capped at max_tokens", "[ratelimit]") {
  TokenBucket b(10, 3, 1s, kT0);
  for (int i = 0; i < 10; ++i) REQUIRE(b.consume(kT0).allowed);
  REQUIRE_FALSE(b.consume(kT0).allowed);
  // Two fills: 6 tokens.
  auto r = b.consume(kT0 + 2 * kSec);
  CHECK(r.allowed);
  CHECK(r.remaining == 5);
  // A long idle time never exceeds max_tokens.
  auto later = b.consume(kT0 + 3600 * kSec);
  CHECK(later.allowed);
  CHECK(later.remaining == 9);
  // A clock reading from before the bucket's start (another worker's) counts as the start.
  TokenBucket c(1, 1, 1s, kT0);
  CHECK(c.consume(kT0 - kSec).allowed);
  CHECK_FALSE(c.consume(kT0 - kSec).allowed);
}

TEST_CASE("token bucket: concurrent takers never take more than the bucket holds", "[ratelimit]") {
  TokenBucket b(1000, 1000, std::chrono::hours(1), kT0);
  std::atomic<uint32_t> allowed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 600; ++i)
        if (b.consume(kT0 + 1).allowed) allowed.fetch_add(1);
    });
  }
  for (auto& t : ts) t.join();
  CHECK(allowed.load() == 1000);
}

TEST_CASE("local rate limit: limited requests get 429 material, x-ratelimit headers, counters", "[ratelimit]") {
  auto c = local(2, 2, 10s, "unit_local_a");
  c->x_ratelimit_headers = true;
  c->response_headers_to_add.push_back({"x-local-rate-limit", "true", AppendAction::OverwriteIfExistsOrAdd, false});
  router::HeaderList req;
  auto a = decide_local(*c, 0, 0, kT0 + kSec, req);
  CHECK(a.consulted);
  CHECK_FALSE(a.limited);
  CHECK(a.x_ratelimit_headers.get("x-ratelimit-limit") == std::optional<std::string_view>("2"));
  CHECK(a.x_ratelimit_headers.get("x-ratelimit-remaining") == std::optional<std::string_view>("1"));
  CHECK(a.x_ratelimit_headers.get("x-ratelimit-reset") == std::optional<std::string_view>("9"));
  CHECK_FALSE(decide_local(*c, 0, 0, kT0 + kSec, req).limited);
  auto limited = decide_local(*c, 0, 0, kT0 + kSec, req);
  CHECK(limited.limited);
  CHECK(limited.status == 429);
  REQUIRE(limited.reply_headers != nullptr);
  CHECK(limited.reply_headers->at(0).key == "x-local-rate-limit");
  CHECK(limited.x_ratelimit_headers.get("x-ratelimit-remaining") == std::optional<std::string_view>("0"));
  CHECK(c->stats->enabled.load() == 3);
  CHECK(c->stats->ok.load() == 2);
  CHECK(c->stats->rate_limited.load() == 1);
  CHECK(c->stats->enforced.load() == 1);
  std::string text;
  render_stats(text);
  CHECK(text.find("envoy_http_local_rate_limit_rate_limited{stat_prefix=\"unit_local_a\"} 1") != std::string::npos);
}

TEST_CASE("local rate limit: disabled and not-enforced fractions", "[ratelimit]") {
  auto c = local(1, 1, 10s, "unit_local_b");
  c->filter_enabled = FractionalPercent::none();
  router::HeaderList req;
  for (int i = 0; i < 3; ++i) CHECK_FALSE(decide_local(*c, 0, 0, kT0, req).consulted);
  c->filter_enabled = FractionalPercent::all();
  c->filter_enforced = {50, 100};
  c->request_headers_to_add_when_not_enforced.push_back(
      {"x-rate-limited", "shadow", AppendAction::OverwriteIfExistsOrAdd, false});
  CHECK_FALSE(decide_local(*c, 0, 0, kT0, req).limited);  // the one token
  // Out of tokens; random 70 % 100 >= 50: not enforced, the request is marked instead.
  auto shadow = decide_local(*c, 0, 70, kT0, req);
  CHECK_FALSE(shadow.limited);
  CHECK(req.get("x-rate-limited") == std::optional<std::string_view>("shadow"));
  // random 10 % 100 < 50: enforced.
  CHECK(decide_local(*c, 0, 10, kT0, req).limited);
}

TEST_CASE("effective config: the route's wins over the virtual host's", "[ratelimit]") {
  VirtualHost vh;
  Route r;
  CHECK(effective_local(vh, r) == nullptr);
  vh.filters.local_ratelimit = local(1, 1, 1s, "unit_vh");
  CHECK(effective_local(vh, r) == vh.filters.local_ratelimit.get());
  r.filters.local_ratelimit = local(1, 1, 1s, "unit_route");
  CHECK(effective_local(vh, r) == r.filters.local_ratelimit.get());
}

TEST_CASE("descriptors from actions", "[ratelimit]") {
  router::HttpRequest req;
  req.method = "GET";
  req.path = "/calculate";
  req.authority = "calc";
  req.headers.add("x-user", "alice");

  auto policies = std::make_shared<RateLimitPolicies>();
  RateLimitEntry e;
  RateLimitAction g;
  g.kind = RateLimitAction::Kind::GenericKey;
  g.descriptor_value = "calc";
  RateLimitAction ra;
  ra.kind = RateLimitAction::Kind::RemoteAddress;
  RateLimitAction rh;
  rh.kind = RateLimitAction::Kind::RequestHeaders;
  rh.header_name = "x-user";
  rh.descriptor_key = "user";
  e.actions = {g, ra, rh};
  policies->entries.push_back(e);
  // A second descriptor that needs an absent header: dropped; with skip_if_absent: kept.
  RateLimitEntry missing;
  RateLimitAction absent = rh;
  absent.header_name = "x-absent";
  missing.actions = {g, absent};
  policies->entries.push_back(missing);
  RateLimitEntry skipped = missing;
  skipped.actions[1].skip_if_absent = true;
  policies->entries.push_back(skipped);
  // header_value_match with expect_match false on a header that matches: dropped.
  RateLimitEntry hvm;
  RateLimitAction m;
  m.kind = RateLimitAction::Kind::HeaderValueMatch;
  m.descriptor_value = "GETs";
  HeaderMatcher hm;
  hm.name = ":method";
  hm.spec = StringMatcher{StringMatcher::Kind::Exact, "GET", {}, false};
  m.headers.push_back(hm);
  hvm.actions = {m};
  policies->entries.push_back(hvm);
  RateLimitEntry hvm_not = hvm;
  hvm_not.actions[0].expect_match = false;
  policies->entries.push_back(hvm_not);
  // Another stage: not this filter's.
  RateLimitEntry other_stage;
  other_stage.stage = 1;
  other_stage.actions = {g};
  policies->entries.push_back(other_stage);

  RouteAction action;
  action.rate_limits = policies;
  VirtualHost vh;
  auto d = build_descriptors(vh, action, 0, req, "10.0.0.7", "inbound-vip|8080|http|calc", "");
  REQUIRE(d.size() == 3);
  CHECK(d[0] == Descriptor{{"generic_key", "calc"}, {"remote_address", "10.0.0.7"}, {"user", "alice"}});
  CHECK(d[1] == Descriptor{{"generic_key", "calc"}});
  CHECK(d[2] == Descriptor{{"header_match", "GETs"}});

  // The virtual host's apply when the route has none, or when the route includes them.
  auto vh_policies = std::make_shared<RateLimitPolicies>();
  RateLimitEntry dc;
  RateLimitAction dca;
  dca.kind = RateLimitAction::Kind::DestinationCluster;
  dc.actions = {dca};
  vh_policies->entries.push_back(dc);
  vh.rate_limits = vh_policies;
  CHECK(build_descriptors(vh, action, 0, req, "10.0.0.7", "c1", "").size() == 3);
  action.include_vh_rate_limits = true;
  auto both = build_descriptors(vh, action, 0, req, "10.0.0.7", "c1", "");
  REQUIRE(both.size() == 4);
  CHECK(both[3] == Descriptor{{"destination_cluster", "c1"}});
  RouteAction bare;
  auto only_vh = build_descriptors(vh, bare, 0, req, "10.0.0.7", "c1", "");
  REQUIRE(only_vh.size() == 1);
}

TEST_CASE("RLS codec: request bytes are protobuf's encoding", "[ratelimit]") {
  RlsRequest r;
  r.domain = "d";
  r.descriptors = {{{"k", "v"}}};
  // domain: tag 0x0a len 1 'd'; descriptors: tag 0x12 len 8 { entries: 0x0a len 6 { 0x0a 1 'k' 0x12 1 'v' } }
  const std::string want = std::string(
      "\x0a\x01"
      "d"
      "\x12\x08\x0a\x06\x0a\x01"
      "k"
      "\x12\x01"
      "v",
      13);
  CHECK(encode_request(r) == want);
  r.hits_addend = 3;
  CHECK(encode_request(r) == want + std::string("\x18\x03", 2));
}

TEST_CASE("RLS codec: response round trip, unknown fields skipped", "[ratelimit]") {
  RlsResponse resp;
  resp.overall_code = RlsResponse::OverLimit;
  resp.statuses.push_back({2, 5, 2, 0, 42});
  resp.statuses.push_back({1, 100, 1, 99, 0});
  resp.response_headers_to_add = {{"x-from-rls", "yes"}};
  resp.request_headers_to_add = {{"x-rls-req", "1"}};
  std::string bytes = encode_response(resp);
  // raw_body (5) and an unknown fixed32 (#99) the decoder must skip.
  bytes += std::string(
      "\x2a\x03"
      "abc",
      5);
  bytes += std::string("\x9d\x06\x01\x02\x03\x04", 6);
  auto d = decode_response(bytes);
  REQUIRE(d);
  CHECK(d->overall_code == RlsResponse::OverLimit);
  REQUIRE(d->statuses.size() == 2);
  CHECK(d->statuses[0].requests_per_unit == 5);
  CHECK(d->statuses[0].unit == 2);
  CHECK(d->statuses[0].reset_seconds == 42);
  CHECK(d->statuses[1].limit_remaining == 99);
  CHECK(d->response_headers_to_add == resp.response_headers_to_add);
  CHECK(d->request_headers_to_add == resp.request_headers_to_add);

  auto h = x_ratelimit_headers(d->statuses);
  CHECK(h.get("x-ratelimit-limit") == std::optional<std::string_view>("5, 5;w=60"));
  CHECK(h.get("x-ratelimit-remaining") == std::optional<std::string_view>("0"));
  CHECK(h.get("x-ratelimit-reset") == std::optional<std::string_view>("42"));
}

TEST_CASE("RLS codec: malformed input is an error naming the problem", "[ratelimit]") {
  CHECK(decode_response(std::string("\x08", 1)).error().find("truncated varint") != std::string::npos);
  CHECK(decode_response(std::string("\x12\x05\x08", 3)).error().find("runs past the end") != std::string::npos);
  CHECK(decode_response(std::string("\x0b", 1)).error().find("wire type") != std::string::npos);
  CHECK(decode_response(std::string("\x0a\x00", 2)).error().find("overall_code") != std::string::npos);
  CHECK(decode_response(std::string("\x12\x02\x08\x80", 4)).error().find("statuses") != std::string::npos);
  CHECK(decode_response(std::string(11, '\xff')).error().find("varint") != std::string::npos);
  CHECK(decode_response("").value().overall_code == RlsResponse::Unknown);

  CHECK(grpc_unframe(grpc_frame("abc")).value() == "abc");
  CHECK_FALSE(grpc_unframe(std::string("\x00\x00\x00\x00", 4)));
  CHECK_FALSE(grpc_unframe(std::string("\x01\x00\x00\x00\x00", 5)));
  CHECK_FALSE(
      grpc_unframe(std::string("\x00\x00\x00\x00\x02"
                               "a",
                               6)));
  CHECK_FALSE(
      grpc_unframe(std::string("\x00\x00\x00\x00\x00"
                               "a",
                               6)));
}
