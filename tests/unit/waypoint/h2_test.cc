// The waypoint's inner HTTP/2 and gRPC with real clients: curl --http2-prior-knowledge, h2load,
// python3-h2 and python grpcio reach the waypoint through a "client ztunnel" bridge (a plain
// TCP port whose connections each become a real HBONE CONNECT tunnel to the VIP, with TLS
// 1.3 and the client's identity), exactly as app bytes ride a ztunnel's tunnel. Upstream, a
// real grpcio server sits behind the "destination ztunnel" and is reached over HTTP/2 inside
// HBONE. Also: protocol sniffing on a port of unknown protocol (HTTP/1.1, HTTP/2 and raw
// bytes on the same service port) and the sniffer as a table.
// Needs /usr/bin/python3 with python3-h2 and python3-grpcio, curl and h2load
// (scripts/install-deps.sh); fails, never skips, without them.
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <thread>

#include "hbone/copy.h"
#include "tests/unit/waypoint/external_client.h"
#include "tests/unit/waypoint/fixture.h"
#include "tests/unit/waypoint/route_builders.h"
#include "waypoint/http/h2_session.h"
#include "waypoint/http/sniff.h"

using namespace wptest;
using namespace waypoint;

namespace {

std::string script(const char* name) {
  auto p = std::filesystem::path(AMBIENT_SOURCE_DIR) / "tests" / "unit" / "waypoint" / name;
  REQUIRE(std::filesystem::exists(p));
  return p.string();
}

// The client node's ztunnel, reduced to its data path: every TCP connection accepted on
// 127.0.0.1 becomes one HBONE CONNECT stream to the waypoint for `authority`.
struct Bridge {
  Bridge(Fixture& f, std::string authority)
      : f(f), authority(std::move(authority)), acc(f.io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(f.io, run(), asio::detached);
  }
  Fixture& f;
  std::string authority;
  tcp::acceptor acc;
  int tunnels = 0;

  uint16_t port() const { return acc.local_endpoint().port(); }
  asio::awaitable<void> run() {
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(f.io, carry(std::move(sock)), asio::detached);
    }
  }
  asio::awaitable<void> carry(tcp::socket sock) {
    auto t = co_await f.tunnel(authority);
    if (!t) co_return;
    ++tunnels;
    co_await hbone::copy_bidirectional(sock, t.value());
  }
};

// A TCP echo server (the app behind the TCP chain of a port of unknown protocol).
struct Echo {
  explicit Echo(asio::io_context& io) : acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.4"), 0)) {
    asio::co_spawn(io, run(), asio::detached);
  }
  tcp::acceptor acc;
  uint16_t port() const { return acc.local_endpoint().port(); }
  asio::awaitable<void> run() {
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(acc.get_executor(), serve(std::move(sock)), asio::detached);
    }
  }
  static asio::awaitable<void> serve(tcp::socket s) {
    std::array<char, 4096> b;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(b), kTuple);
      if (n > 0) co_await asio::async_write(s, asio::buffer(b.data(), n), kTuple);
      if (ec) break;
    }
  }
};

std::shared_ptr<Cluster> cluster_of(std::string name, std::vector<std::pair<std::string, uint16_t>> eps,
                                    UpstreamProtocol proto) {
  auto c = std::make_shared<Cluster>();
  c->name = name;
  c->discovery = Cluster::Discovery::Static;
  c->policy.lb_policy = LbPolicy::LeastRequest;
  c->policy.upstream_protocol = proto;
  ClusterLoadAssignment cla;
  cla.cluster_name = name;
  for (auto& [ip, port] : eps) {
    Endpoint e;
    e.address = ip;
    e.port = port;
    cla.endpoints.push_back(e);
  }
  c->load_assignment = cla;
  return c;
}

uint16_t free_port(const char* ip) {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address(ip), 0));
  return a.local_endpoint().port();
}

bool has(const std::string& out, const std::string& needle) {
  return out.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("sniffing tells HTTP/2 prior knowledge, HTTP/1.x and other bytes apart, as http_inspector") {
  using http::Sniffed;
  struct Row {
    std::string bytes;
    Sniffed want;
  };
  const std::vector<Row> rows = {
      {"", Sniffed::NeedMore},
      {"PRI * HTTP/2.0\r\n", Sniffed::NeedMore},
      {std::string(http::kH2Preface), Sniffed::Http2},
      {std::string(http::kH2Preface) + "\x00\x00\x00\x04", Sniffed::Http2},
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Sniffed::Http1},
      {"POST /x?y=1 HTTP/1.0\r\n", Sniffed::Http1},
      {"GET / HTTP/1.1\n", Sniffed::Http1},
      {"GET /a", Sniffed::NeedMore},
      {"GET / HTTP/1.1\r", Sniffed::NeedMore},
      {"GET / HTTP/2.0\r\n", Sniffed::Other},
      {"GET / HTTP/1.1x\r\n", Sniffed::Other},
      {"GET  / HTTP/1.1\r\n", Sniffed::Other},
      {"\x16\x03\x01\x02\x00", Sniffed::Other},  // a TLS ClientHello
      {"SSH-2.0-OpenSSH_9.2\r\n", Sniffed::Other},
      {"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", Sniffed::Other},
      {std::string(9000, 'G'), Sniffed::Other},
  };
  for (const auto& r : rows) {
    INFO(r.bytes);
    CHECK(http::sniff(r.bytes) == r.want);
  }
}

TEST_CASE("curl and h2load over HTTP/2 prior knowledge: routed by header, local replies over HTTP/2") {
  Fixture f;
  Route dog = Fixture::route_to("v2");
  dog.match.headers.push_back(waypoint::test::header("version", waypoint::test::exact("dog")));
  Route none = Fixture::route_to("empty");
  none.match = waypoint::test::match_prefix("/nohost");
  Route v1 = Fixture::route_to("v1");
  v1.match = waypoint::test::match_prefix("/");
  v1.match.headers.push_back(waypoint::test::present("x-no-such-header", false));
  auto snap = f.snapshot(Fixture::config_of({dog, none, Route(v1)}));
  snap->clusters["empty"] = cluster_of("empty", {}, UpstreamProtocol::Http1);
  // The route set above matches "/" only without x-no-such-header: a request carrying it is NR.
  f.proxy->set_config(snap);
  Bridge bridge(f, vip_authority());
  const std::string base = "http://127.0.0.1:" + std::to_string(bridge.port());
  const std::string curl = "curl -s --noproxy '*' --http2-prior-knowledge -w ' %{http_code} %{http_version}\\n' ";
  const std::string cmd = curl + "-H 'version: dog' " + base + "/a; " + curl + base + "/b; " + curl +
                          "-H 'x-no-such-header: 1' " + base + "/nr; " + curl + base + "/nohost; " +
                          // Bodies stream: 2 MB go to v1, whose test app refuses bodies over 1 MiB by
                          // closing the connection without an answer (503 UC, on its own stream).
                          "head -c 2000000 /dev/zero | " + curl + "--data-binary @- " + base + "/big; " +
                          "h2load -n 200 -c 2 -m 10 " + base + "/load 2>&1";
  int status = 0;
  const std::string out = run_client(f, cmd, status);
  INFO(out);
  CHECK(status == 0);
  CHECK(has(out, "v2 200 2\n"));
  CHECK(has(out, "v1 200 2\n"));
  CHECK(has(out, " 404 2\n"));
  CHECK(has(out, "no healthy upstream 503 2\n"));
  CHECK(has(out, "reset reason: connection termination 503 2\n"));
  CHECK(has(out, "200 succeeded, 0 failed, 0 errored"));
  CHECK(has(out, "status codes: 200 2xx"));
  // h2load multiplexed 10 streams on each of its 2 connections: 2 tunnels for it, 5 for curl.
  CHECK(bridge.tunnels == 7);
  CHECK(f.v1.requests == 201);
  CHECK(f.v2.requests == 1);
  REQUIRE(!f.v2.seen.empty());
  CHECK(f.v2.seen[0].path == "/a");
  CHECK(f.has_metric("request_protocol=\"http\""));
  CHECK(f.has_metric("response_flags=\"NR\""));
  CHECK(f.has_metric("response_flags=\"UH\""));
}

TEST_CASE(
    "python3-h2: a malformed stream is reset alone, streams run concurrently, a cancel is DC, "
    "a connection error is GOAWAY") {
  Fixture f;
  Route dog = Fixture::route_to("v2");
  dog.match.headers.push_back(waypoint::test::header("version", waypoint::test::exact("dog")));
  f.set_routes({dog, Fixture::route_to("v1")});
  Bridge bridge(f, vip_authority());
  int status = 0;
  const std::string out = run_client(
      f, "/usr/bin/python3 " + script("h2_inner_client.py") + " 127.0.0.1 " + std::to_string(bridge.port()) + " 2>&1",
      status, [&] { return f.registry.render().find("response_flags=\"DC\"") != std::string::npos; });
  INFO(out);
  CHECK(status == 0);
  CHECK(has(out, "RESPONSE dog 200 v2\n"));
  CHECK(has(out, "HEADER dog x-backend: v2\n"));
  CHECK(has(out, "RESET nopath 1\n"));  // PROTOCOL_ERROR on that stream only
  CHECK(has(out, "RESPONSE after 200 v1\n"));
  for (int i = 0; i < 3; ++i) CHECK(has(out, "RESPONSE slow" + std::to_string(i) + " 200 v1\n"));
  CHECK(has(out, "RESPONSE last 200 v1\n"));
  CHECK(has(out, "GOAWAY 1\n"));
  CHECK(bridge.tunnels == 1);
  // The three slow requests were in flight at once: one tunnel, several upstream connections.
  CHECK(f.v1.connections >= 2);
  CHECK(f.has_metric("response_flags=\"DC\""));
}

TEST_CASE(
    "grpcio client and server through the waypoint: HTTP/2 upstream inside HBONE, trailers, "
    "streaming, errors and local replies as grpc-status") {
  Fixture f;
  const uint16_t gport = free_port("127.0.0.2");
  Route grpc_route = Fixture::route_to("grpc");
  grpc_route.match = waypoint::test::match_prefix("/calc.Calc/");
  Route empty_route = Fixture::route_to("empty");
  empty_route.match = waypoint::test::match_prefix("/calc.Empty/");
  auto snap = f.snapshot(Fixture::config_of({grpc_route, empty_route}));
  // 127.0.0.2 is the HBONE pod calc-v1: the waypoint reaches it through the destination ztunnel.
  snap->clusters["grpc"] = cluster_of("grpc", {{"127.0.0.2", gport}}, UpstreamProtocol::Http2);
  snap->clusters["empty"] = cluster_of("empty", {}, UpstreamProtocol::Http2);
  f.proxy->set_config(snap);
  Bridge bridge(f, vip_authority());
  int status = 0;
  const std::string out =
      run_client(f,
                 "/usr/bin/python3 " + script("grpc_through_waypoint.py") + " 127.0.0.2:" + std::to_string(gport) +
                     " 127.0.0.1:" + std::to_string(bridge.port()) + " 2>&1",
                 status);
  INFO(out);
  CHECK(status == 0);
  CHECK(has(out, "UNARY echo:hello ua=grpc-python/"));
  CHECK(has(out, "TRAILER x-app-trailer=t-hello\n"));
  for (int i = 0; i < 5; ++i) CHECK(has(out, "UNARY echo:n" + std::to_string(i) + " ua=grpc-python/"));
  CHECK(has(out, "STREAM item-0,item-1,item-2,item-3\n"));
  CHECK(has(out, "ERROR fail NOT_FOUND no such thing\n"));
  CHECK(has(out, "ERROR noroute UNIMPLEMENTED"));
  CHECK(has(out, "ERROR nohost UNAVAILABLE no healthy upstream\n"));
  // Eight RPCs to the app shared one HTTP/2 connection = one CONNECT to the destination ztunnel.
  int to_app = 0;
  for (const auto& a : f.zt_authorities) to_app += a == "127.0.0.2:" + std::to_string(gport) ? 1 : 0;
  CHECK(to_app == 1);
  CHECK(f.has_metric("grpc_response_status=\"0\""));
  CHECK(f.has_metric("grpc_response_status=\"5\""));
  CHECK(f.has_metric("grpc_response_status=\"12\""));
  CHECK(f.has_metric("grpc_response_status=\"14\""));
  CHECK(f.has_metric("request_protocol=\"grpc\""));
}

// The ingress gateway role's entry (Proxy::serve_gateway, as waypoint/ingress/listeners hands it a
// plaintext connection): every TCP connection accepted on 127.0.0.1 is passed to the waypoint's
// worker with the route `route_name`.
struct GatewayEntry {
  GatewayEntry(Fixture& f, std::string route_name)
      : f(f), route_name(std::move(route_name)), acc(f.io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(f.io, run(), asio::detached);
  }
  Fixture& f;
  std::string route_name;
  tcp::acceptor acc;

  uint16_t port() const { return acc.local_endpoint().port(); }
  asio::awaitable<void> run() {
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(kTuple);
      if (ec) co_return;
      tcp::socket moved(f.rt.worker(0));
      boost::system::error_code aec;
      moved.assign(tcp::v4(), sock.release(), aec);
      REQUIRE_FALSE(aec);
      f.proxy->serve_gateway(0, std::move(moved), route_name);
    }
  }
};

TEST_CASE("ingress gateway entry: grpcio over h2c prior knowledge, trailers and errors as grpc-status") {
  Fixture f;
  const uint16_t gport = free_port("127.0.0.2");
  Route grpc_route = Fixture::route_to("grpc");
  grpc_route.match = waypoint::test::match_prefix("/calc.Calc/");
  Route empty_route = Fixture::route_to("empty");
  empty_route.match = waypoint::test::match_prefix("/calc.Empty/");
  auto snap = f.snapshot(Fixture::config_of({grpc_route, empty_route}));
  snap->clusters["grpc"] = cluster_of("grpc", {{"127.0.0.2", gport}}, UpstreamProtocol::Http2);
  snap->clusters["empty"] = cluster_of("empty", {}, UpstreamProtocol::Http2);
  f.proxy->set_config(snap);
  GatewayEntry gw(f, http_route_name(80, kHost));
  int status = 0;
  const std::string out =
      run_client(f,
                 "/usr/bin/python3 " + script("grpc_through_waypoint.py") + " 127.0.0.2:" + std::to_string(gport) +
                     " 127.0.0.1:" + std::to_string(gw.port()) + " 2>&1",
                 status);
  INFO(out);
  CHECK(status == 0);
  CHECK(has(out, "UNARY echo:hello ua=grpc-python/"));
  CHECK(has(out, "TRAILER x-app-trailer=t-hello\n"));
  CHECK(has(out, "STREAM item-0,item-1,item-2,item-3\n"));
  CHECK(has(out, "ERROR fail NOT_FOUND no such thing\n"));
  CHECK(has(out, "ERROR noroute UNIMPLEMENTED"));
  CHECK(has(out, "ERROR nohost UNAVAILABLE no healthy upstream\n"));
  CHECK(f.has_metric("reporter=\"source\""));  // a gateway's own requests
  CHECK(f.has_metric("grpc_response_status=\"0\""));
  CHECK(f.has_metric("request_protocol=\"grpc\""));
}

TEST_CASE("ingress gateway entry: HTTP/1.1 and h2c on one port; require_tls answers 301 to https") {
  Fixture f;
  RouteConfig rc = Fixture::config_of({Fixture::route_to("v1")});
  VirtualHost secure;
  secure.name = "secure.example.com:80";
  secure.domains = {"secure.example.com", "secure.example.com:80"};
  secure.require_tls = true;  // an httpsRedirect server's host without routes
  rc.virtual_hosts.insert(rc.virtual_hosts.begin(), secure);
  f.proxy->set_config(f.snapshot(rc));
  GatewayEntry gw(f, http_route_name(80, kHost));
  const std::string base = "http://127.0.0.1:" + std::to_string(gw.port());
  const std::string fmt = " -o /dev/null -w '%{http_version} %{http_code} %header{x-backend} %header{location}\\n' ";
  const std::string cmd = "curl -s --noproxy '*' --http1.1" + fmt + base + "/h1; curl -s --noproxy '*' " +
                          "--http2-prior-knowledge" + fmt + base + "/h2; curl -s --noproxy '*' --http1.1 -H " +
                          "'Host: secure.example.com' -H 'X-Forwarded-Proto: https'" + fmt + base +
                          "/a?b=c; curl -s --noproxy '*' --http2-prior-knowledge -H 'Host: secure.example.com:80'" +
                          fmt + base + "/x";
  int status = 0;
  const std::string out = run_client(f, cmd, status);
  INFO(out);
  CHECK(status == 0);
  CHECK(has(out, "1.1 200 v1 \n"));
  CHECK(has(out, "2 200 v1 \n"));
  // The client's own X-Forwarded-Proto is replaced by what it used (plaintext): redirected.
  CHECK(has(out, "1.1 301  https://secure.example.com/a?b=c\n"));
  CHECK(has(out, "2 301  https://secure.example.com:80/x\n"));
  CHECK(f.v1.requests == 2);
}

TEST_CASE("a port of unknown protocol: HTTP/1.1 and HTTP/2 are routed, other bytes go to the TCP chain") {
  Fixture f;
  Echo echo(f.io);
  auto snap = f.snapshot(Fixture::config_of({Fixture::route_to("v1")}));
  const std::string tcp_name = tcp_cluster_name(80, kHost);
  snap->clusters[tcp_name] = cluster_of(tcp_name, {{"127.0.0.4", echo.port()}}, UpstreamProtocol::Http1);
  f.proxy->set_config(snap);
  Bridge bridge(f, vip_authority());
  const std::string base = "http://127.0.0.1:" + std::to_string(bridge.port());
  const std::string cmd =
      "curl -s --noproxy '*' --http1.1 -w ' %{http_version}\\n' " + base +
      "/h1; curl -s --noproxy '*' --http2-prior-knowledge -w ' %{http_version}\\n' " + base +
      "/h2; printf 'HELO not-http\\r\\n' | socat -t 2 - TCP:127.0.0.1:" + std::to_string(bridge.port()) + " 2>&1";
  int status = 0;
  const std::string out = run_client(f, cmd, status);
  INFO(out);
  CHECK(status == 0);
  CHECK(has(out, "v1 1.1\n"));
  CHECK(has(out, "v1 2\n"));
  CHECK(has(out, "HELO not-http\r\n"));
  CHECK(f.v1.requests == 2);
}

TEST_CASE("drain: an inner HTTP/2 client gets GOAWAY, and the request it had in flight still completes") {
  Fixture f;
  f.set_routes({Fixture::route_to("v1")});
  int first = 0, inflight = 0;
  bool usable_before = false, usable_after = true, run_ended = false;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    auto client = http::H2Session::client(http::AnyStream(t.value()), {});
    asio::co_spawn(f.io, client->run(), [&](std::exception_ptr) { run_ended = true; });
    auto r1 = co_await client->wait(client->submit(get("/one")));
    first = r1.ok ? r1.response.status : -1;
    usable_before = client->usable();
    const int32_t slow = client->submit(get("/sleep/300"));
    // Let the request reach the waypoint before it drains.
    asio::steady_timer pause(f.io, std::chrono::milliseconds(100));
    co_await pause.async_wait(kTuple);
    f.proxy->drain();
    auto r2 = co_await client->wait(slow);
    inflight = r2.ok ? r2.response.status : -1;
    usable_after = client->usable();
    client->close();
    asio::steady_timer t2(f.io);
    for (int i = 0; i < 100 && !run_ended; ++i) {
      t2.expires_after(std::chrono::milliseconds(10));
      co_await t2.async_wait(kTuple);
    }
  });
  CHECK(run_ended);
  CHECK(first == 200);
  CHECK(usable_before);
  CHECK(inflight == 200);
  CHECK_FALSE(usable_after);  // GOAWAY seen: no new streams on this connection
}
