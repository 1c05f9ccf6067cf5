// The waypoint data path end to end on loopback, with real TLS 1.3, real HBONE (HTTP/2
// CONNECT) on both legs and real HTTP/1.1 inside: a client HBONE connection to the waypoint,
// the waypoint's own HBONE connections to a "destination ztunnel" (an hbone server that checks
// the waypoint's identity and relays to the backend pod address), and plain HTTP/1.1 backends
// that count what reaches them. Routes are built in C++ (as the xDS conversion would).
#include <regex>

#include "tests/unit/waypoint/fixture.h"

using namespace wptest;
using namespace waypoint;

TEST_CASE("a request crosses both HBONE legs with the waypoint's identity and keeps trace headers") {
  Fixture f;
  f.set_routes({Fixture::route_to("v1")});
  http::ReadResponseResult res;
  const http::Request req = get(
      "/hello", {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, {"user-agent", "test"}});
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    res = co_await exchange(s, buf, req);
  });
  REQUIRE(res.error == http::ReadError::None);
  CHECK(res.response.status == 200);
  CHECK(res.response.body == "v1");
  REQUIRE(f.v1.seen.size() == 1);
  const auto& seen = f.v1.seen.front();
  CHECK(seen.path == "/hello");
  CHECK(std::string(seen.headers.get("traceparent").value_or("")) ==
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  auto rid = seen.headers.get("x-request-id");
  REQUIRE(rid);
  CHECK(rid->size() == 36);
  CHECK((*rid)[14] == '4');
  // A UUID4 as Envoy writes it: lower-case hex 8-4-4-4-12, version 4, RFC 4122 variant.
  CHECK(std::regex_match(std::string(*rid),
                         std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
  REQUIRE(f.zt_peers.size() == 1);
  CHECK(f.zt_peers[0] == f.waypoint_id.uri());
  CHECK(f.zt_authorities[0] == "127.0.0.2:" + std::to_string(f.v1.port()));
  CHECK(f.has_metric("istio_requests_total{reporter=\"waypoint\""));
  CHECK(f.has_metric("source_principal=\"spiffe://cluster.local/ns/default/sa/sleep\""));
  CHECK(f.has_metric("destination_workload=\"calc-v1\""));
  CHECK(f.has_metric("response_code=\"200\""));
}

TEST_CASE("keep-alive: several requests share one tunnel and one upstream connection") {
  Fixture f;
  f.set_routes({Fixture::route_to("v1")});
  int ok = 0;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    for (int i = 0; i < 5; ++i) {
      auto r = co_await exchange(s, buf, get("/n" + std::to_string(i)));
      if (r.error == http::ReadError::None && r.response.status == 200 && r.keep_alive) ++ok;
    }
  });
  CHECK(ok == 5);
  CHECK(f.v1.requests == 5);
  CHECK(f.v1.connections == 1);
  CHECK(f.zt_authorities.size() == 1);
}

TEST_CASE("header routing: version: dog goes to v2, everything else to v1") {
  Fixture f;
  Route dog = Fixture::route_to("v2");
  HeaderMatcher hm;
  hm.name = "version";
  StringMatcher sm;
  sm.kind = StringMatcher::Kind::Exact;
  sm.value = "dog";
  hm.spec = sm;
  dog.match.headers.push_back(hm);
  f.set_routes({dog, Fixture::route_to("v1")});
  std::vector<std::string> bodies;
  const std::vector<http::Request> reqs = {get("/", {{"version", "dog"}}), get("/", {{"version", "cat"}}), get("/")};
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    for (const auto& r : reqs) bodies.push_back((co_await exchange(s, buf, r)).response.body);
  });
  CHECK(bodies == std::vector<std::string>{"v2", "v1", "v1"});
}

TEST_CASE("weighted split 90/10 lands within a binomial bound") {
  Fixture f;
  Route r;
  r.name = "canary";
  RouteAction a;
  a.timeout = Duration(0);
  ClusterWeight w1, w2;
  w1.name = "v1";
  w1.weight = 90;
  w2.name = "v2";
  w2.weight = 10;
  a.weighted_clusters = {w1, w2};
  a.total_weight = 100;
  r.action = a;
  f.set_routes({r});
  constexpr int kN = 1000;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    for (int i = 0; i < kN; ++i) co_await exchange(s, buf, get("/"));
  });
  CHECK(f.v1.requests + f.v2.requests == kN);
  // mean 100, sd ~9.5: [50, 150] is beyond 5 sd either way (p < 1e-6).
  CHECK(f.v2.requests > 50);
  CHECK(f.v2.requests < 150);
}

TEST_CASE("route timeout: a slow backend gives 504 UT") {
  Fixture f;
  Route r = Fixture::route_to("v1");
  std::get<RouteAction>(r.action).timeout = Duration(300);
  f.set_routes({r});
  http::ReadResponseResult res;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    res = co_await exchange(s, buf, get("/sleep/3000"));
  });
  CHECK(res.response.status == 504);
  CHECK(res.response.body == "upstream request timeout");
  CHECK(f.has_metric("response_flags=\"UT\""));
}

TEST_CASE("retries: a 503 is retried num_retries times, counted at the backend, then URX") {
  Fixture f;
  Route r = Fixture::route_to("v1");
  RetryPolicy rp;
  rp.retry_on = retry_on::k5xx;
  rp.num_retries = 2;
  rp.backoff_base = Duration(1);
  std::get<RouteAction>(r.action).retry_policy = rp;
  auto rc = Fixture::config_of({r});
  rc.virtual_hosts[0].include_request_attempt_count = true;
  f.proxy->set_config(f.snapshot(rc));
  http::ReadResponseResult res;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    res = co_await exchange(s, buf, get("/status/503"));
  });
  CHECK(res.response.status == 503);
  REQUIRE(f.v1.requests == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(std::string(f.v1.seen[i].headers.get("x-envoy-attempt-count").value_or("")) == std::to_string(i + 1));
  }
  CHECK(f.has_metric("response_flags=\"URX\""));
}

TEST_CASE("fault abort 503 answers locally: FI, nothing reaches the backend") {
  Fixture f;
  Route r = Fixture::route_to("v1");
  FaultPolicy fp;
  FaultAbort ab;
  ab.http_status = 503;
  ab.percentage = FractionalPercent::all();
  fp.abort = ab;
  r.filters.fault = fp;
  f.set_routes({r});
  http::ReadResponseResult res;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    res = co_await exchange(s, buf, get("/"));
  });
  CHECK(res.response.status == 503);
  CHECK(res.response.body == "fault filter abort");
  CHECK(f.v1.requests == 0);
  CHECK(f.has_metric("response_flags=\"FI\""));
}

TEST_CASE("no route is 404 NR; an endpoint outside the mesh is reached over plain TCP") {
  Fixture f;
  Route only_api = Fixture::route_to("v3");
  only_api.match.path = "/api";
  f.set_routes({only_api});
  http::ReadResponseResult nr, plain;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    nr = co_await exchange(s, buf, get("/other"));
    plain = co_await exchange(s, buf, get("/api/x"));
  });
  CHECK(nr.response.status == 404);
  CHECK(plain.response.status == 200);
  CHECK(plain.response.body == "v3");
  CHECK(f.zt_authorities.empty());
}

TEST_CASE("a service this waypoint does not serve is refused at CONNECT, never forwarded") {
  Fixture f;
  f.set_routes({Fixture::route_to("v1")});
  std::string error;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel("10.96.0.99:80");
    if (!t) error = t.error();
  });
  CHECK(error.find("503") != std::string::npos);
  CHECK(f.v1.requests == 0);
}

TEST_CASE("WebSocket upgrade: the 101 comes back and bytes flow both ways afterwards") {
  Fixture f;
  f.set_routes({Fixture::route_to("v1")});
  http::Request req = get("/ws");
  req.upgrade = "websocket";
  http::ReadResponseResult res;
  std::string echoed;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    res = co_await exchange(s, buf, req);
    if (res.response.status != 101) co_return;
    const std::string msg = "frames after the upgrade";
    co_await asio::async_write(s, asio::buffer(msg), kTuple);
    s.shutdown_write();
    echoed = buf.take();
    std::array<char, 4096> b;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(b), kTuple);
      echoed.append(b.data(), n);
      if (ec) break;
    }
  });
  CHECK(res.response.status == 101);
  CHECK(std::string(res.response.headers.get("upgrade").value_or("")) == "websocket");
  CHECK(echoed == "frames after the upgrade");
}

TEST_CASE("mirror: the shadow cluster receives a copy with the -shadow host; the client sees the primary") {
  Fixture f;
  Route r = Fixture::route_to("v1");
  MirrorPolicy m;
  m.cluster = "v3";
  std::get<RouteAction>(r.action).mirror_policies.push_back(m);
  f.set_routes({r});
  http::ReadResponseResult res;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    res = co_await exchange(s, buf, get("/mirrored"));
    // The copy is fire-and-forget: give it a moment to land (bounded).
    asio::steady_timer tm(f.io);
    for (int i = 0; i < 100 && f.v3.requests == 0; ++i) {
      tm.expires_after(std::chrono::milliseconds(20));
      co_await tm.async_wait(kTuple);
    }
  });
  CHECK(res.response.body == "v1");
  REQUIRE(f.v3.requests == 1);
  CHECK(f.v3.seen[0].path == "/mirrored");
  CHECK(f.v3.seen[0].authority == kHost + "-shadow");
}
