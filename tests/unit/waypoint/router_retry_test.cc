// Retry evaluation (waypoint-facts §5.3) and timeout arithmetic (§5.4).
#include <catch2/catch.hpp>

#include "tests/unit/waypoint/route_builders.h"
#include "waypoint/router/router.h"

using namespace waypoint;
using namespace waypoint::router;
using namespace waypoint::test;
using std::chrono::milliseconds;

namespace {

RetryPolicy policy(const std::string& retry_on, uint32_t num_retries = 1) {
  RetryPolicy p;
  auto bits = parse_retry_on(retry_on);
  if (!bits.ok()) FAIL(bits.error());
  p.retry_on = bits.value();
  p.num_retries = num_retries;
  return p;
}

AttemptOutcome status(uint16_t s, const HeaderList* headers = nullptr) {
  AttemptOutcome o;
  o.status = s;
  o.response_headers = headers;
  return o;
}

AttemptOutcome failure(AttemptFailure f, bool sent = true) {
  AttemptOutcome o;
  o.failure = f;
  o.request_sent = sent;
  return o;
}

}  // namespace

TEST_CASE("retry_on parsing", "[waypoint][router][retry]") {
  auto all = parse_retry_on(
      "5xx, gateway-error,reset,reset-before-request,connect-failure,retriable-4xx,"
      "refused-stream,retriable-status-codes,retriable-headers,envoy-ratelimited,"
      "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable");
  REQUIRE(all.ok());
  CHECK(all.value() == (1u << 15) - 1);
  auto empty = parse_retry_on("");
  REQUIRE(empty.ok());
  CHECK(empty.value() == 0);
  auto bad = parse_retry_on("connect-failure,5xxx");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("'5xxx'") != std::string::npos);
}

TEST_CASE("which outcomes each retry_on class retries", "[waypoint][router][retry]") {
  const HeaderList grpc_unavailable{{"grpc-status", "14"}};
  const HeaderList grpc_internal{{"grpc-status", "13"}};
  const HeaderList ratelimited{{"x-envoy-ratelimited", "true"}};
  const HeaderList retry_me{{"x-retry-me", "yes"}};
  struct Row {
    std::string retry_on;
    AttemptOutcome outcome;
    bool retry;
  };
  std::vector<Row> rows = {
      {"5xx", status(500), true},
      {"5xx", status(503), true},
      {"5xx", status(404), false},
      {"5xx", status(200), false},
      {"5xx", failure(AttemptFailure::Reset), true},
      {"5xx", failure(AttemptFailure::ConnectFailure), true},
      {"5xx", failure(AttemptFailure::RefusedStream), true},
      {"5xx", failure(AttemptFailure::PerTryTimeout), true},
      {"gateway-error", status(502), true},
      {"gateway-error", status(504), true},
      {"gateway-error", status(500), false},
      {"gateway-error", failure(AttemptFailure::Reset), true},
      {"reset", failure(AttemptFailure::Reset), true},
      {"reset", failure(AttemptFailure::PerTryTimeout), true},
      {"reset", status(503), false},
      {"reset-before-request", failure(AttemptFailure::Reset, false), true},
      {"reset-before-request", failure(AttemptFailure::Reset, true), false},
      {"reset-before-request", failure(AttemptFailure::ConnectFailure), true},
      {"connect-failure", failure(AttemptFailure::ConnectFailure), true},
      {"connect-failure", failure(AttemptFailure::Reset), false},
      {"connect-failure", status(503), false},
      {"connect-failure", failure(AttemptFailure::PerTryTimeout), false},
      {"refused-stream", failure(AttemptFailure::RefusedStream), true},
      {"refused-stream", failure(AttemptFailure::Reset), false},
      {"retriable-4xx", status(409), true},
      {"retriable-4xx", status(429), false},
      {"retriable-status-codes", status(503), false},  // no codes listed
      {"unavailable", status(200, &grpc_unavailable), true},
      {"unavailable", status(200, &grpc_internal), false},
      {"internal", status(200, &grpc_internal), true},
      {"cancelled,unavailable", status(200), false},
      {"envoy-ratelimited", status(429, &ratelimited), true},
      // x-envoy-ratelimited decides alone: not retried under 5xx even with a 503.
      {"5xx", status(503, &ratelimited), false},
      // Overflow (circuit breaker) is never retried.
      {"5xx,reset,connect-failure", failure(AttemptFailure::Overflow), false},
      // Istio's default policy does not retry a plain 503.
      {"connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", status(503), false},
      {"connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
       failure(AttemptFailure::ConnectFailure), true},
  };
  const auto req = request("GET", "/");
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("row " << i << " retry_on " << rows[i].retry_on);
    RetryDecision d = should_retry(policy(rows[i].retry_on), rows[i].outcome, 0, req);
    CHECK((d == RetryDecision::Retry) == rows[i].retry);
    if (!rows[i].retry) CHECK(d == RetryDecision::NoRetry);
  }

  RetryPolicy codes = policy("retriable-status-codes");
  codes.retriable_status_codes = {503, 418};
  CHECK(should_retry(codes, status(418), 0, req) == RetryDecision::Retry);
  CHECK(should_retry(codes, status(500), 0, req) == RetryDecision::NoRetry);

  RetryPolicy by_header = policy("retriable-headers");
  by_header.retriable_headers.push_back(header("x-retry-me", exact("yes")));
  CHECK(should_retry(by_header, status(200, &retry_me), 0, req) == RetryDecision::Retry);
  CHECK(should_retry(by_header, status(500), 0, req) == RetryDecision::NoRetry);

  RetryPolicy only_get = policy("5xx");
  only_get.retriable_request_headers.push_back(header(":method", exact("GET")));
  CHECK(should_retry(only_get, status(503), 0, request("GET", "/")) == RetryDecision::Retry);
  CHECK(should_retry(only_get, status(503), 0, request("POST", "/")) == RetryDecision::NoRetry);
}

TEST_CASE("retry budget: num_retries (default 1) bounds the attempts", "[waypoint][router][retry]") {
  const auto req = request("GET", "/");
  RetryPolicy def = policy("5xx");
  CHECK(def.num_retries == 1);
  CHECK(should_retry(def, status(503), 0, req) == RetryDecision::Retry);
  CHECK(should_retry(def, status(503), 1, req) == RetryDecision::RetriesExhausted);
  // A success is final whatever the budget.
  CHECK(should_retry(def, status(200), 1, req) == RetryDecision::NoRetry);

  // Seeds: attempts 3 -> 1 try + 3 retries, then URX.
  RetryPolicy three = policy("5xx", 3);
  int attempts = 1;
  uint32_t retries = 0;
  while (should_retry(three, status(503), retries, req) == RetryDecision::Retry) {
    ++retries;
    ++attempts;
  }
  CHECK(attempts == 4);
  CHECK(should_retry(three, status(503), retries, req) == RetryDecision::RetriesExhausted);

  RetryPolicy none = policy("5xx", 0);
  CHECK(should_retry(none, status(503), 0, req) == RetryDecision::RetriesExhausted);
}

TEST_CASE("fully jittered exponential back-off", "[waypoint][router][retry]") {
  RetryPolicy p = policy("5xx", 10);  // base 25 ms, max 250 ms
  Random rng(99);
  struct Row {
    uint32_t retry;
    int64_t ceiling;
  };
  for (Row row : {Row{1, 25}, Row{2, 75}, Row{3, 175}, Row{4, 250}, Row{9, 250}}) {
    int64_t max_seen = 0;
    for (int i = 0; i < 2000; ++i) {
      auto d = retry_backoff(p, row.retry, rng.next());
      REQUIRE(d.count() >= 0);
      REQUIRE(d.count() < row.ceiling);
      max_seen = std::max(max_seen, static_cast<int64_t>(d.count()));
    }
    INFO("retry " << row.retry);
    CHECK(max_seen >= row.ceiling * 9 / 10);  // the whole range is used, not a fixed value
  }
  CHECK(retry_backoff(p, 1, 24) == milliseconds(24));
  CHECK(retry_backoff(p, 1, 25) == milliseconds(0));
  p.backoff_base = milliseconds(100);
  p.backoff_max = milliseconds(150);
  CHECK(retry_backoff(p, 5, 149) == milliseconds(149));
  CHECK(retry_backoff(p, 5, 150) == milliseconds(0));
}

TEST_CASE("previous-hosts predicate", "[waypoint][router][retry]") {
  RetryPolicy p = policy("5xx");
  std::vector<std::string> tried = {"10.0.0.1:8080"};
  CHECK_FALSE(should_select_another_host(p, "10.0.0.1:8080", tried));  // predicate not configured
  p.previous_hosts_predicate = true;
  CHECK(should_select_another_host(p, "10.0.0.1:8080", tried));
  CHECK_FALSE(should_select_another_host(p, "10.0.0.2:8080", tried));
}

TEST_CASE("route timeout vs per-try timeout", "[waypoint][router][timeout]") {
  struct Row {
    std::string name;
    int64_t route;
    std::optional<int64_t> per_try;
    int64_t expect_global, expect_per_try, expect_expected;
  };
  std::vector<Row> rows = {
      {"Envoy default when unset", kEnvoyDefaultRouteTimeout.count(), std::nullopt, 15000, 0, 15000},
      {"Istio's 0s: no timeout", 0, std::nullopt, 0, 0, 0},
      {"seed: 2s timeout", 2000, std::nullopt, 2000, 0, 2000},
      {"per-try below the route timeout", 8000, 2000, 8000, 2000, 2000},
      {"per-try >= route timeout is dropped", 2000, 2000, 2000, 0, 2000},
      {"per-try above route timeout dropped", 1000, 5000, 1000, 0, 1000},
      {"per-try without route timeout", 0, 3000, 0, 3000, 3000},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    RouteAction a;
    a.timeout = milliseconds(row.route);
    std::optional<RetryPolicy> p;
    if (row.per_try) {
      p = policy("5xx", 3);
      p->per_try_timeout = milliseconds(*row.per_try);
    }
    Timeouts t = compute_timeouts(a, p ? &*p : nullptr, request("GET", "/"), false);
    CHECK(t.global.count() == row.expect_global);
    CHECK(t.per_try.count() == row.expect_per_try);
    CHECK(t.expected.count() == row.expect_expected);
  }
}

TEST_CASE("attempt timers: per-try fires first until the route deadline is closer", "[waypoint][router][timeout]") {
  // Seeds' retry story: route 8 s, 3 retries, per try 2 s.
  Timeouts t{milliseconds(8000), milliseconds(2000), milliseconds(2000)};
  AttemptTimer a = attempt_timer(t, milliseconds(0));
  CHECK(a.timeout == milliseconds(2000));
  CHECK(a.per_try);
  CHECK_FALSE(a.expired);
  a = attempt_timer(t, milliseconds(6500));  // 1.5 s left: the route deadline fires first, not retriable
  CHECK(a.timeout == milliseconds(1500));
  CHECK_FALSE(a.per_try);
  a = attempt_timer(t, milliseconds(8000));
  CHECK(a.expired);

  Timeouts none{milliseconds(0), milliseconds(0), milliseconds(0)};
  a = attempt_timer(none, milliseconds(999999));
  CHECK(a.timeout == milliseconds(0));
  CHECK_FALSE(a.expired);

  Timeouts per_try_only{milliseconds(0), milliseconds(300), milliseconds(300)};
  a = attempt_timer(per_try_only, milliseconds(999999));
  CHECK(a.timeout == milliseconds(300));
  CHECK(a.per_try);
}

TEST_CASE("gRPC timeouts: grpc-timeout honoured, capped by max_grpc_timeout", "[waypoint][router][timeout]") {
  struct Row {
    std::string value;
    std::optional<int64_t> ms;
  };
  for (const auto& row : std::vector<Row>{{"2S", 2000},
                                          {"1H", 3600000},
                                          {"3M", 180000},
                                          {"250m", 250},
                                          {"1500u", 2},
                                          {"1n", 1},
                                          {"99999999m", 99999999},
                                          {"123456789m", std::nullopt},
                                          {"10", std::nullopt},
                                          {"S", std::nullopt},
                                          {"1x", std::nullopt},
                                          {"-1S", std::nullopt}}) {
    INFO(row.value);
    auto d = parse_grpc_timeout(row.value);
    CHECK(d.has_value() == row.ms.has_value());
    if (d && row.ms) CHECK(d->count() == *row.ms);
  }

  RouteAction a;
  a.timeout = milliseconds(0);
  a.max_grpc_timeout = milliseconds(0);  // Istio without a VS timeout: honour uncapped
  auto req = request("POST", "/pkg.Svc/Method", {{"grpc-timeout", "5S"}, {"content-type", "application/grpc"}});
  CHECK(compute_timeouts(a, nullptr, req, true).global == milliseconds(5000));
  CHECK(compute_timeouts(a, nullptr, req, false).global == milliseconds(0));  // not gRPC: route timeout
  a.max_grpc_timeout = milliseconds(2000);                                    // Istio with `timeout: 2s`
  CHECK(compute_timeouts(a, nullptr, req, true).global == milliseconds(2000));
  auto no_header = request("POST", "/pkg.Svc/Method");
  CHECK(compute_timeouts(a, nullptr, no_header, true).global == milliseconds(2000));
  a.max_grpc_timeout = milliseconds(10000);
  a.grpc_timeout_offset = milliseconds(100);
  CHECK(compute_timeouts(a, nullptr, req, true).global == milliseconds(4900));
  a.max_grpc_timeout.reset();  // absent: grpc-timeout ignored, the route timeout applies
  a.timeout = milliseconds(700);
  CHECK(compute_timeouts(a, nullptr, req, true).global == milliseconds(700));
}

TEST_CASE("effective retry policy: the route's, else the virtual host's", "[waypoint][router][retry]") {
  VirtualHost vh;
  RouteAction a;
  CHECK(effective_retry_policy(vh, a) == nullptr);
  vh.retry_policy = policy("connect-failure", 2);
  CHECK(effective_retry_policy(vh, a) == &*vh.retry_policy);
  a.retry_policy = policy("5xx", 0);
  CHECK(effective_retry_policy(vh, a) == &*a.retry_policy);
}

TEST_CASE("x-envoy-attempt-count only when the virtual host asks for it", "[waypoint][router][retry]") {
  VirtualHost vh;  // Istio's waypoint vhost: neither flag
  HeaderList up{{"x-envoy-attempt-count", "7"}};
  set_request_attempt_count(vh, 2, up);
  CHECK(up.get("x-envoy-attempt-count") == std::optional<std::string_view>("7"));  // untouched
  HeaderList down;
  set_response_attempt_count(vh, 2, down);
  CHECK_FALSE(down.contains("x-envoy-attempt-count"));

  vh.include_request_attempt_count = true;
  vh.include_attempt_count_in_response = true;
  HeaderList first;
  set_request_attempt_count(vh, 1, first);
  CHECK(first.get("x-envoy-attempt-count") == std::optional<std::string_view>("1"));
  set_request_attempt_count(vh, 3, up);
  CHECK(up.get_joined("x-envoy-attempt-count") == std::optional<std::string>("3"));  // replaced, not appended
  set_response_attempt_count(vh, 3, down);
  CHECK(down.get("x-envoy-attempt-count") == std::optional<std::string_view>("3"));
}
