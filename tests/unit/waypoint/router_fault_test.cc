// Fault injection (waypoint-facts §5.5), mirroring and CORS decisions.
#include <catch2/catch.hpp>

#include <cmath>

#include "tests/unit/waypoint/route_builders.h"
#include "waypoint/router/grpc_status.h"
#include "waypoint/router/router.h"

using namespace waypoint;
using namespace waypoint::router;
using namespace waypoint::test;
using std::chrono::milliseconds;

namespace {

FaultPolicy fault(std::optional<int64_t> delay_ms, FractionalPercent delay_pct, std::optional<uint32_t> abort_status,
                  FractionalPercent abort_pct) {
  FaultPolicy f;
  if (delay_ms) {
    FaultDelay d;
    d.fixed_delay = milliseconds(*delay_ms);
    d.percentage = delay_pct;
    f.delay = d;
  }
  if (abort_status) {
    FaultAbort a;
    a.kind = FaultAbort::Kind::Http;
    a.http_status = *abort_status;
    a.percentage = abort_pct;
    f.abort = a;
  }
  return f;
}

// Two-sided p < 0.001 binomial bound.
bool within_binomial(int hits, int n, double p) {
  return std::abs(hits - n * p) <= 3.29 * std::sqrt(n * p * (1 - p));
}

}  // namespace

TEST_CASE("FractionalPercent: random % denominator < numerator", "[waypoint][router][fault]") {
  struct Row {
    FractionalPercent f;
    uint64_t random;
    bool expect;
  };
  std::vector<Row> rows = {
      {{50, 100}, 49, true},          {{50, 100}, 50, false},    {{50, 100}, 149, true},
      {{0, 100}, 0, false},           {{100, 100}, 99, true},    {{1000, 1000000}, 999, true},
      {{1000, 1000000}, 1000, false}, {{1, 10000}, 10000, true}, {{1, 10000}, 10001, false},
  };
  for (const auto& row : rows) {
    INFO(row.f.numerator << "/" << row.f.denominator << " random " << row.random);
    CHECK(fraction_enabled(row.f, row.random) == row.expect);
  }
}

TEST_CASE("delay is decided first, then abort, each with its own percentage", "[waypoint][router][fault]") {
  const auto req = request("GET", "/calc");
  FaultPolicy both = fault(5000, FractionalPercent::all(), 503, FractionalPercent::all());
  auto delay = decide_fault_delay(both, req, 0);
  REQUIRE(delay);
  CHECK(*delay == milliseconds(5000));
  auto abort = decide_fault_abort(both, req, 0, false);
  REQUIRE(abort);
  CHECK(abort->status == 503);
  CHECK(abort->body == "fault filter abort");
  CHECK_FALSE(abort->grpc_status);

  // Delay only, abort never.
  FaultPolicy delay_only = fault(100, FractionalPercent::all(), 503, FractionalPercent::none());
  CHECK(decide_fault_delay(delay_only, req, 7));
  CHECK_FALSE(decide_fault_abort(delay_only, req, 7, false));

  // A zero delay is no delay.
  CHECK_FALSE(decide_fault_delay(fault(0, FractionalPercent::all(), std::nullopt, {}), req, 0));
  // No delay / no abort configured.
  CHECK_FALSE(decide_fault_delay(fault(std::nullopt, {}, 503, FractionalPercent::all()), req, 0));
  CHECK_FALSE(decide_fault_abort(fault(100, FractionalPercent::all(), std::nullopt, {}), req, 0, false));

  // Independent percentages: delay 50 %, abort 20 % (MILLION denominator as Istio writes it).
  FaultPolicy pct = fault(10, {500000, 1000000}, 503, {200000, 1000000});
  Random rng(11);
  const int n = 10000;
  int delays = 0, aborts = 0, both_hits = 0;
  for (int i = 0; i < n; ++i) {
    bool d = decide_fault_delay(pct, req, rng.next()).has_value();
    bool a = decide_fault_abort(pct, req, rng.next(), false).has_value();
    delays += d;
    aborts += a;
    both_hits += d && a;
  }
  INFO("delays " << delays << " aborts " << aborts << " both " << both_hits);
  CHECK(within_binomial(delays, n, 0.5));
  CHECK(within_binomial(aborts, n, 0.2));
  CHECK(within_binomial(both_hits, n, 0.1));
}

TEST_CASE("gRPC aborts answer 200 with grpc-status", "[waypoint][router][fault]") {
  const auto req = request("POST", "/calc.Calculator/Add", {{"content-type", "application/grpc"}});
  FaultPolicy f;
  FaultAbort a;
  a.kind = FaultAbort::Kind::Grpc;
  a.grpc_status = 14;
  f.abort = a;
  auto r = decide_fault_abort(f, req, 0, true);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->grpc_status == std::optional<uint32_t>(14));

  // An HTTP abort seen by a gRPC client carries the mapped grpc-status.
  FaultPolicy http = fault(std::nullopt, {}, 503, FractionalPercent::all());
  r = decide_fault_abort(http, req, 0, true);
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->grpc_status == std::optional<uint32_t>(14));
  r = decide_fault_abort(fault(std::nullopt, {}, 403, FractionalPercent::all()), req, 0, true);
  CHECK(r->grpc_status == std::optional<uint32_t>(7));
}

TEST_CASE("HTTP status to grpc-status: Envoy's table, one for local replies and aborts", "[waypoint][router][fault]") {
  using waypoint::router::grpc_status_of_http;
  CHECK(grpc_status_of_http(400) == 13);  // INTERNAL
  CHECK(grpc_status_of_http(401) == 16);  // UNAUTHENTICATED
  CHECK(grpc_status_of_http(403) == 7);   // PERMISSION_DENIED
  CHECK(grpc_status_of_http(404) == 12);  // UNIMPLEMENTED
  for (uint32_t s : {429u, 502u, 503u, 504u}) CHECK(grpc_status_of_http(s) == 14);  // UNAVAILABLE
  for (uint32_t s : {405u, 408u, 500u, 501u}) CHECK(grpc_status_of_http(s) == 2);   // UNKNOWN
}

TEST_CASE("header-driven faults", "[waypoint][router][fault]") {
  FaultPolicy f;
  FaultAbort a;
  a.kind = FaultAbort::Kind::Header;
  a.percentage = FractionalPercent{50, 100};
  f.abort = a;
  FaultDelay d;
  d.header_delay = true;
  f.delay = d;

  auto r = decide_fault_abort(f, request("GET", "/", {{"x-envoy-fault-abort-request", "429"}}), 10, false);
  REQUIRE(r);
  CHECK(r->status == 429);
  CHECK_FALSE(decide_fault_abort(f, request("GET", "/"), 10, false));  // no header, no abort
  CHECK_FALSE(decide_fault_abort(f, request("GET", "/", {{"x-envoy-fault-abort-request", "700"}}), 10, false));
  r = decide_fault_abort(f, request("GET", "/", {{"x-envoy-fault-abort-grpc-request", "8"}}), 10, true);
  REQUIRE(r);
  CHECK(r->grpc_status == std::optional<uint32_t>(8));
  // The header percentage can lower the configured 50 % but not raise it.
  auto with_pct = [](std::string pct) {
    return request("GET", "/",
                   {{"x-envoy-fault-abort-request", "503"}, {"x-envoy-fault-abort-request-percentage", pct}});
  };
  CHECK_FALSE(decide_fault_abort(f, with_pct("10"), 20, false));
  CHECK(decide_fault_abort(f, with_pct("10"), 5, false));
  CHECK_FALSE(decide_fault_abort(f, with_pct("100"), 60, false));

  auto delay = decide_fault_delay(f, request("GET", "/", {{"x-envoy-fault-delay-request", "250"}}), 0);
  REQUIRE(delay);
  CHECK(*delay == milliseconds(250));
  CHECK_FALSE(decide_fault_delay(f, request("GET", "/"), 0));
}

TEST_CASE("fault applicability: header matchers, downstream nodes, max active faults", "[waypoint][router][fault]") {
  FaultPolicy f = fault(std::nullopt, {}, 503, FractionalPercent::all());
  CHECK(fault_applies(f, request("GET", "/"), 1000));
  f.headers.push_back(header("x-chaos", exact("on")));
  CHECK_FALSE(fault_applies(f, request("GET", "/"), 0));
  CHECK(fault_applies(f, request("GET", "/", {{"x-chaos", "on"}}), 0));
  f.max_active_faults = 2;
  CHECK(fault_applies(f, request("GET", "/", {{"x-chaos", "on"}}), 1));
  CHECK_FALSE(fault_applies(f, request("GET", "/", {{"x-chaos", "on"}}), 2));
  f.downstream_nodes = {"client"};
  CHECK_FALSE(fault_applies(f, request("GET", "/", {{"x-chaos", "on"}}), 0));
  CHECK(fault_applies(f, request("GET", "/", {{"x-chaos", "on"}, {"x-envoy-downstream-service-node", "client"}}), 0));
}

TEST_CASE("the most specific fault and CORS configuration applies", "[waypoint][router][fault]") {
  VirtualHost vh;
  Route route = route_to("r", match_prefix("/"), "c");
  ClusterWeight cw;
  CHECK(effective_fault_policy(vh, route, &cw) == nullptr);
  vh.filters.fault = fault(1, FractionalPercent::all(), std::nullopt, {});
  CHECK(effective_fault_policy(vh, route, &cw) == &*vh.filters.fault);
  route.filters.fault = fault(2, FractionalPercent::all(), std::nullopt, {});
  CHECK(effective_fault_policy(vh, route, nullptr) == &*route.filters.fault);
  cw.filters.fault = fault(3, FractionalPercent::all(), std::nullopt, {});
  CHECK(effective_fault_policy(vh, route, &cw) == &*cw.filters.fault);

  CHECK(effective_cors_policy(vh, route) == nullptr);
  vh.filters.cors = CorsPolicy{};
  CHECK(effective_cors_policy(vh, route) == &*vh.filters.cors);
  route.filters.cors = CorsPolicy{};
  CHECK(effective_cors_policy(vh, route) == &*route.filters.cors);
}

TEST_CASE("mirrors: per-policy percentages, route overrides virtual host, -shadow host", "[waypoint][router][mirror]") {
  VirtualHost vh;
  MirrorPolicy vh_mirror;
  vh_mirror.cluster = "vhost-mirror";
  vh.mirror_policies.push_back(vh_mirror);
  RouteAction a;
  a.cluster = "calculate";
  Random rng(5);
  auto fired = decide_mirrors(vh, a, rng);
  REQUIRE(fired.size() == 1);
  CHECK(fired[0]->cluster == "vhost-mirror");

  MirrorPolicy all;
  all.cluster = "dark-v3";
  MirrorPolicy never = all;
  never.cluster = "never";
  never.fraction = FractionalPercent::none();
  MirrorPolicy tenth = all;
  tenth.cluster = "tenth";
  tenth.fraction = FractionalPercent{100000, 1000000};
  a.mirror_policies = {all, never, tenth};
  const int n = 10000;
  int dark = 0, tenths = 0, nevers = 0, vhost = 0;
  for (int i = 0; i < n; ++i) {
    for (const MirrorPolicy* p : decide_mirrors(vh, a, rng)) {
      dark += p->cluster == "dark-v3";
      tenths += p->cluster == "tenth";
      nevers += p->cluster == "never";
      vhost += p->cluster == "vhost-mirror";
    }
  }
  CHECK(dark == n);
  CHECK(nevers == 0);
  CHECK(vhost == 0);
  INFO("tenth " << tenths);
  CHECK(within_binomial(tenths, n, 0.1));

  MirrorPolicy m;
  CHECK(shadow_authority(m, "calculate.demo.svc.cluster.local:8080") == "calculate.demo.svc.cluster.local-shadow:8080");
  CHECK(shadow_authority(m, "calculate") == "calculate-shadow");
  m.disable_shadow_host_suffix_append = true;
  CHECK(shadow_authority(m, "calculate:8080") == "calculate:8080");
  m.host_rewrite_literal = "mirror.internal";
  CHECK(shadow_authority(m, "calculate:8080") == "mirror.internal");
}

TEST_CASE("CORS: simple requests, preflights, unmatched origins", "[waypoint][router][cors]") {
  CorsPolicy p;
  p.allow_origin = {exact("https://calc.example.com"), regex("https://.*\\.dev\\.example\\.com")};
  p.allow_methods = "GET,POST";
  p.allow_headers = "content-type,x-user";
  p.expose_headers = "x-version";
  p.max_age = "600";
  p.allow_credentials = true;

  CHECK(decide_cors(p, request("GET", "/"), 0).kind == CorsDecision::Kind::NotCors);

  auto simple = decide_cors(p, request("GET", "/", {{"origin", "https://calc.example.com"}}), 0);
  CHECK(simple.kind == CorsDecision::Kind::Forward);
  CHECK(simple.response_headers.get("access-control-allow-origin") ==
        std::optional<std::string_view>("https://calc.example.com"));
  CHECK(simple.response_headers.get("access-control-allow-credentials") == std::optional<std::string_view>("true"));
  CHECK(simple.response_headers.get("access-control-expose-headers") == std::optional<std::string_view>("x-version"));

  auto other = decide_cors(p, request("GET", "/", {{"origin", "https://evil.example.org"}}), 0);
  CHECK(other.kind == CorsDecision::Kind::Forward);
  CHECK(other.response_headers.empty());

  HeaderList pre{{"origin", "https://a.dev.example.com"}, {"access-control-request-method", "POST"}};
  auto preflight = decide_cors(p, request("OPTIONS", "/calc", pre), 0);
  REQUIRE(preflight.kind == CorsDecision::Kind::Preflight);
  const HeaderList& h = preflight.response.headers;
  CHECK(preflight.response.status == 200);
  CHECK(h.get("access-control-allow-origin") == std::optional<std::string_view>("https://a.dev.example.com"));
  CHECK(h.get("access-control-allow-methods") == std::optional<std::string_view>("GET,POST"));
  CHECK(h.get("access-control-allow-headers") == std::optional<std::string_view>("content-type,x-user"));
  CHECK(h.get("access-control-max-age") == std::optional<std::string_view>("600"));

  // OPTIONS without access-control-request-method is an ordinary request.
  auto options = decide_cors(p, request("OPTIONS", "/", {{"origin", "https://calc.example.com"}}), 0);
  CHECK(options.kind == CorsDecision::Kind::Forward);

  // Unmatched preflight: forwarded by default (Istio FORWARD), answered without allow-origin on IGNORE.
  HeaderList bad_pre{{"origin", "https://evil.example.org"}, {"access-control-request-method", "DELETE"}};
  CHECK(decide_cors(p, request("OPTIONS", "/", bad_pre), 0).kind == CorsDecision::Kind::Forward);
  p.forward_not_matching_preflights = false;
  auto ignored = decide_cors(p, request("OPTIONS", "/", bad_pre), 0);
  CHECK(ignored.kind == CorsDecision::Kind::Preflight);
  CHECK_FALSE(ignored.response.headers.contains("access-control-allow-origin"));

  // "*" for methods/headers echoes what the browser asked for; a matcher accepting "*" admits all.
  CorsPolicy open;
  open.allow_origin = {exact("*")};
  open.allow_methods = "*";
  open.allow_headers = "*";
  HeaderList ask{{"origin", "https://x.test"},
                 {"access-control-request-method", "PUT"},
                 {"access-control-request-headers", "x-a,x-b"}};
  auto echoed = decide_cors(open, request("OPTIONS", "/", ask), 0);
  REQUIRE(echoed.kind == CorsDecision::Kind::Preflight);
  CHECK(echoed.response.headers.get("access-control-allow-origin") ==
        std::optional<std::string_view>("https://x.test"));
  CHECK(echoed.response.headers.get("access-control-allow-methods") == std::optional<std::string_view>("PUT"));
  CHECK(echoed.response.headers.get("access-control-allow-headers") == std::optional<std::string_view>("x-a,x-b"));
  CHECK_FALSE(echoed.response.headers.contains("access-control-allow-credentials"));

  open.filter_enabled = FractionalPercent::none();
  CHECK(decide_cors(open, request("OPTIONS", "/", ask), 0).kind == CorsDecision::Kind::NotCors);
}
