// DestinationRule traffic policy on the real data path: HBONE client -> waypoint (TLS 1.3,
// HTTP/2 CONNECT) -> "destination ztunnel" -> HTTP/1.1 backends, as data_path_test. Circuit
// breakers (503 UO under concurrent requests, retry overflow), outlier ejection and return,
// consistent hashing by header and generated cookie, priority failover, and
// max_requests_per_connection. Waits are bounded polls; nothing asserts on durations.
#include <nlohmann/json.hpp>
#include <set>

#include "tests/unit/waypoint/fixture.h"

using namespace wptest;
using namespace waypoint;

namespace {

constexpr std::string_view kOverflow =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

// The fixture's snapshot with cluster `name` replaced by a copy that `edit` changes.
template <typename F>
void publish(Fixture& f, std::vector<Route> routes, const std::string& name, F edit) {
  auto snap = f.snapshot(Fixture::config_of(std::move(routes)));
  auto c = std::make_shared<Cluster>(*snap->clusters.at(name));
  edit(*c);
  snap->clusters[name] = c;
  f.proxy->set_config(snap);
}

asio::awaitable<http::ReadResponseResult> one_request(Fixture& f, http::Request req) {
  auto t = co_await f.tunnel(vip_authority());
  if (!t) {
    http::ReadResponseResult bad;
    bad.error = http::ReadError::Reset;
    co_return bad;
  }
  http::AnyStream s(t.value());
  http::ReadBuffer buf;
  co_return co_await exchange(s, buf, req);
}

asio::awaitable<void> pause(Fixture& f, int ms) {
  asio::steady_timer t(f.io, std::chrono::milliseconds(ms));
  co_await t.async_wait(kTuple);
}

std::string header(const http::ReadResponseResult& r, std::string_view name) {
  return std::string(r.response.headers.get(name).value_or(""));
}

bool ejected_in_dump(Fixture& f, const std::string& cluster, const std::string& host) {
  for (const auto& c : f.proxy->cluster_status()) {
    if (c.value("name", "") != cluster) continue;
    for (const auto& h : c["hosts"]) {
      if (h.value("address", "") == host) return h.value("healthFlags", "") == "/failed_outlier_check";
    }
  }
  return false;
}

}  // namespace

TEST_CASE("max_pending_requests 1: concurrent requests overflow with 503 UO and the overflow counter") {
  Fixture f;
  publish(f, {Fixture::route_to("v1")}, "v1", [](Cluster& c) {
    c.policy.circuit_breakers.max_connections = 1;
    c.policy.circuit_breakers.max_pending_requests = 1;
  });
  constexpr int kN = 6;
  std::vector<http::ReadResponseResult> results(kN);
  int done = 0;
  f.run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < kN; ++i) {
      asio::co_spawn(
          f.io,
          [&, i]() -> asio::awaitable<void> {
            results[i] = co_await one_request(f, get("/sleep/400"));
            ++done;
          },
          asio::detached);
    }
    for (int i = 0; i < 400 && done < kN; ++i) co_await pause(f, 25);
  });
  REQUIRE(done == kN);
  int ok = 0, overflow = 0;
  for (const auto& r : results) {
    REQUIRE(r.error == http::ReadError::None);
    if (r.response.status == 200) ++ok;
    if (r.response.status == 503) {
      CHECK(r.response.body == kOverflow);
      CHECK(header(r, "x-envoy-overloaded") == "true");
      ++overflow;
    }
  }
  CHECK(ok + overflow == kN);
  CHECK(ok >= 2);  // the one on the connection and the one that waited
  CHECK(overflow >= 1);
  CHECK(f.v1.connections == 1);  // max_connections held
  CHECK(f.has_metric("envoy_cluster_upstream_rq_pending_overflow{cluster_name=\"v1\"} " + std::to_string(overflow)));
  CHECK(f.has_metric("response_flags=\"UO\""));
}

TEST_CASE("max_retries 0: the retry is not made, the upstream's 503 is returned, retry overflow counted") {
  Fixture f;
  Route r = Fixture::route_to("v1");
  RetryPolicy rp;
  rp.retry_on = retry_on::k5xx;
  rp.num_retries = 2;
  rp.backoff_base = Duration(1);
  std::get<RouteAction>(r.action).retry_policy = rp;
  publish(f, {r}, "v1", [](Cluster& c) { c.policy.circuit_breakers.max_retries = 0; });
  http::ReadResponseResult res;
  f.run([&]() -> asio::awaitable<void> { res = co_await one_request(f, get("/status/503")); });
  REQUIRE(res.error == http::ReadError::None);
  CHECK(res.response.status == 503);
  CHECK(header(res, "x-backend") == "v1");  // the upstream's answer, not a local reply
  CHECK(f.v1.requests == 1);
  CHECK(f.has_metric("envoy_cluster_upstream_rq_retry_overflow{cluster_name=\"v1\"} 1"));

  // The same route with Envoy's default max_retries (3) does retry.
  Fixture g;
  publish(g, {r}, "v1", [](Cluster&) {});
  g.run([&]() -> asio::awaitable<void> { res = co_await one_request(g, get("/status/503")); });
  CHECK(g.v1.requests == 3);
}

TEST_CASE("outlier detection: a 5xx backend is ejected, the other answers, it returns after the ejection time") {
  Fixture f;
  Route r = Fixture::route_to("all");
  publish(f, {r}, "all", [](Cluster& c) {
    c.policy.lb_policy = LbPolicy::RoundRobin;
    c.policy.healthy_panic_threshold_percent = 0;
    OutlierDetection od;
    od.consecutive_5xx = 3;
    od.interval = Duration(100);
    od.base_ejection_time = Duration(600);
    od.max_ejection_percent = 100;
    c.policy.outlier_detection = od;
  });
  f.v1.forced_status = 500;
  const std::string v1_key = "127.0.0.2:" + std::to_string(f.v1.port());
  int failures = 0, after_ejection_v2 = 0, after_ejection_total = 0;
  bool dumped_ejected = false, came_back = false;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    for (int i = 0; i < 20 && failures < 3; ++i) {
      auto res = co_await exchange(s, buf, get("/"));
      if (res.response.status == 500) ++failures;
    }
    dumped_ejected = ejected_in_dump(f, "all", v1_key);
    for (int i = 0; i < 8; ++i) {
      auto res = co_await exchange(s, buf, get("/"));
      ++after_ejection_total;
      if (res.response.status == 200 && res.response.body == "v2") ++after_ejection_v2;
    }
    f.v1.forced_status = 0;  // v1 recovers; the sweep after base_ejection_time returns it
    for (int i = 0; i < 200 && !came_back; ++i) {
      auto res = co_await exchange(s, buf, get("/"));
      came_back = res.response.status == 200 && res.response.body == "v1";
      if (!came_back) co_await pause(f, 20);
    }
  });
  CHECK(failures == 3);
  CHECK(dumped_ejected);
  CHECK(after_ejection_v2 == after_ejection_total);
  CHECK(came_back);
  CHECK(f.has_metric("envoy_cluster_outlier_detection_ejections_enforced_total{cluster_name=\"all\"} 1"));
}

TEST_CASE("ring hash by header: 200 requests stick per key and spread over both backends") {
  Fixture f;
  Route r = Fixture::route_to("all");
  HashPolicy hp;
  hp.kind = HashPolicy::Kind::Header;
  hp.name = "x-user";
  std::get<RouteAction>(r.action).hash_policy = {hp};
  publish(f, {r}, "all", [](Cluster& c) { c.policy.lb_policy = LbPolicy::RingHash; });
  std::map<std::string, std::set<std::string>> by_user;
  int answered = 0;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    for (int i = 0; i < 200; ++i) {
      const std::string user = "user-" + std::to_string(i % 20);
      const http::Request rq = get("/", {{"x-user", user}});
      auto res = co_await exchange(s, buf, rq);
      if (res.error != http::ReadError::None || res.response.status != 200) continue;
      ++answered;
      by_user[user].insert(res.response.body);
    }
  });
  CHECK(answered == 200);
  std::set<std::string> used;
  for (const auto& [user, backends] : by_user) {
    INFO(user);
    CHECK(backends.size() == 1);
    used.insert(*backends.begin());
  }
  const std::set<std::string> both = {std::string("v1"), std::string("v2")};
  CHECK(used == both);
}

TEST_CASE("maglev by cookie with ttl: the first answer sets the cookie, later requests stick to one backend") {
  Fixture f;
  Route r = Fixture::route_to("all");
  HashPolicy hp;
  hp.kind = HashPolicy::Kind::Cookie;
  hp.name = "session";
  hp.cookie_ttl = Duration(3600000);
  hp.cookie_path = "/";
  std::get<RouteAction>(r.action).hash_policy = {hp};
  publish(f, {r}, "all", [](Cluster& c) { c.policy.lb_policy = LbPolicy::Maglev; });
  std::string set_cookie;
  std::set<std::string> backends;
  std::set<std::string> later_cookies;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    auto first = co_await exchange(s, buf, get("/"));
    set_cookie = header(first, "set-cookie");
    const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
    backends.insert(first.response.body);
    for (int i = 0; i < 30; ++i) {
      const http::Request rq = get("/", {{"cookie", cookie}});
      auto res = co_await exchange(s, buf, rq);
      backends.insert(res.response.body);
      later_cookies.insert(header(res, "set-cookie"));
    }
  });
  CHECK(set_cookie.starts_with("session=\""));
  CHECK(set_cookie.ends_with("; Max-Age=3600; Path=/; HttpOnly"));
  CHECK(backends.size() == 1);
  CHECK(later_cookies.size() == 1);
  CHECK(later_cookies.count(std::string()) == 1);
}

TEST_CASE("priority failover: priority 0 takes all traffic until its pod fails, then priority 1 answers") {
  Fixture f;
  publish(f, {Fixture::route_to("all")}, "all", [](Cluster& c) {
    c.load_assignment->endpoints[1].priority = 1;  // v2 is in another zone
    c.policy.healthy_panic_threshold_percent = 0;
    OutlierDetection od;
    od.consecutive_5xx = 2;
    od.base_ejection_time = Duration(60000);
    od.max_ejection_percent = 100;
    c.policy.outlier_detection = od;
  });
  std::map<std::string, int> before, after;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    for (int i = 0; i < 20; ++i) ++before[(co_await exchange(s, buf, get("/"))).response.body];
    f.v1.forced_status = 503;
    for (int i = 0; i < 2; ++i) co_await exchange(s, buf, get("/"));
    for (int i = 0; i < 20; ++i) {
      auto res = co_await exchange(s, buf, get("/"));
      ++after[res.response.status == 200 ? res.response.body : "error"];
    }
  });
  CHECK(before == std::map<std::string, int>{{"v1", 20}});
  CHECK(after == std::map<std::string, int>{{"v2", 20}});
}

TEST_CASE("max_requests_per_connection 2: six requests use three upstream connections") {
  Fixture f;
  publish(f, {Fixture::route_to("v3")}, "v3", [](Cluster& c) { c.policy.max_requests_per_connection = 2; });
  int ok = 0;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    for (int i = 0; i < 6; ++i) ok += (co_await exchange(s, buf, get("/"))).response.status == 200 ? 1 : 0;
  });
  CHECK(ok == 6);
  CHECK(f.v3.requests == 6);
  CHECK(f.v3.connections == 3);
}
