// common/admin/http_admin.h and admin_servers.h: parser limits, and a real client on 127.0.0.1.
#include <zlib.h>

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "common/admin/admin_servers.h"
#include "common/admin/http_admin.h"
#include "common/admin/log.h"
#include "common/admin/pprof.h"

using namespace common::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Runs an io_context on a background thread for the lifetime of the object.
struct Loop {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  std::thread thread;
  void start() {
    thread = std::thread([this] { io.run(); });
  }
  ~Loop() {
    guard.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }
};

struct ClientResponse {
  int status = 0;
  std::string head;
  std::string body;
};

// A blocking client socket with a receive timeout so a broken server fails the test
// instead of hanging it.
struct Client {
  asio::io_context io;
  tcp::socket sock{io};
  std::string pending;

  explicit Client(uint16_t port, const asio::ip::address& host = asio::ip::make_address("127.0.0.1")) {
    sock.connect(tcp::endpoint(host, port));
    timeval tv{20, 0};
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  void send(std::string_view data) { asio::write(sock, asio::buffer(data)); }

  // Reads one response (Content-Length framed); nullopt on EOF/timeout before a full one.
  std::optional<ClientResponse> read() {
    char buf[4096];
    for (;;) {
      size_t end = pending.find("\r\n\r\n");
      if (end != std::string::npos) {
        ClientResponse r;
        r.head = pending.substr(0, end);
        r.status = std::stoi(r.head.substr(9, 3));
        size_t cl_pos = r.head.find("Content-Length: ");
        size_t len = cl_pos == std::string::npos ? 0 : std::stoul(r.head.substr(cl_pos + 16));
        if (pending.size() >= end + 4 + len) {
          r.body = pending.substr(end + 4, len);
          pending.erase(0, end + 4 + len);
          return r;
        }
      }
      boost::system::error_code ec;
      size_t n = sock.read_some(asio::buffer(buf), ec);
      if (ec) return std::nullopt;
      pending.append(buf, n);
    }
  }
  // True if the server closed the connection (EOF) without sending anything more.
  bool closed_by_peer() {
    char c;
    boost::system::error_code ec;
    size_t n = sock.read_some(asio::buffer(&c, 1), ec);
    return n == 0 && ec == asio::error::eof;
  }
};

ClientResponse get(uint16_t port, const std::string& target, const std::string& method = "GET",
                   const asio::ip::address& host = asio::ip::make_address("127.0.0.1")) {
  Client c(port, host);
  c.send(method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto r = c.read();
  REQUIRE(r.has_value());
  return *r;
}

// Independent of the server's encoder: zlib's inflate with automatic gzip header detection.
std::string gunzip(const std::string& in) {
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, 15 + 32) == Z_OK);
  std::string out;
  char buf[4096];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string("<inflate failed>");
}

ClientResponse get_with_header(uint16_t port, const std::string& target, const std::string& header) {
  Client c(port, asio::ip::make_address("127.0.0.1"));
  c.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n" + header + "\r\nConnection: close\r\n\r\n");
  auto r = c.read();
  REQUIRE(r.has_value());
  return *r;
}

}  // namespace

// ---- parser -------------------------------------------------------------------------------

TEST_CASE("parser: complete request with query, headers and body", "[http]") {
  Limits lim;
  std::string raw =
      "POST /logging?level=debug&x=a%20b+c&reset HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
      "X-Y:  v  \r\n\r\nbodyNEXT";
  auto r = parse_request(raw, lim);
  REQUIRE(r.status == ParseStatus::Complete);
  CHECK(r.consumed == raw.size() - 4);
  CHECK(r.keep_alive);
  CHECK(r.request.method == "POST");
  CHECK(r.request.path == "/logging");
  CHECK(r.request.body == "body");
  CHECK(r.request.header("x-y").value() == "v");
  CHECK(r.request.header("HOST").value() == "h");
  CHECK(r.request.query_param("level").value() == "debug");
  CHECK(r.request.query_param("x").value() == "a b c");
  CHECK(r.request.query_param("reset").value().empty());
  CHECK_FALSE(r.request.query_param("nope").has_value());
}

TEST_CASE("parser: incomplete input waits for more", "[http]") {
  Limits lim;
  CHECK(parse_request("", lim).status == ParseStatus::Incomplete);
  CHECK(parse_request("GET / HTTP/1.1\r\nHost: x\r\n", lim).status == ParseStatus::Incomplete);
  CHECK(parse_request("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", lim).status == ParseStatus::Incomplete);
}

TEST_CASE("parser: rejects malformed and unsupported requests", "[http]") {
  Limits lim;
  auto status_of = [&](const std::string& raw) {
    auto r = parse_request(raw, lim);
    INFO(raw);
    REQUIRE(r.status == ParseStatus::Error);
    return r.error_status;
  };
  CHECK(status_of("GARBAGE\r\n\r\n") == 400);
  CHECK(status_of("GET  / HTTP/1.1\r\n\r\n") == 400);
  CHECK(status_of("GET http://x/ HTTP/1.1\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\n folded\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nX: a\x01 b\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == 501);
  CHECK(status_of("GET / HTTP/2.0\r\n\r\n") == 505);
  CHECK(status_of("GET / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n") == 413);
  CHECK(status_of("GET / HTTP/1.1 trailing\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nX: \x7f\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/0.9\r\n\r\n") == 505);
  CHECK(status_of("GET / HTTP/1.x\r\n\r\n") == 400);
  // A request line longer than the header budget (no CRLF yet): 431 without waiting for more.
  CHECK(status_of("GET /" + std::string(20000, 'a')) == 431);
  // The budget covers request line and fields together: each fits alone, not both.
  CHECK(status_of("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nX: " + std::string(9000, 'b') + "\r\n\r\n") == 431);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 101; ++i) many += "X" + std::to_string(i) + ": v\r\n";
  CHECK(status_of(many + "\r\n") == 431);
  CHECK(status_of("GET / HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n") == 431);
}

TEST_CASE("parser: keep-alive defaults per version", "[http]") {
  Limits lim;
  CHECK(parse_request("GET / HTTP/1.1\r\n\r\n", lim).keep_alive);
  CHECK_FALSE(parse_request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", lim).keep_alive);
  CHECK_FALSE(parse_request("GET / HTTP/1.0\r\n\r\n", lim).keep_alive);
  CHECK(parse_request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", lim).keep_alive);
}

TEST_CASE("split_host_port and loopback checks", "[http]") {
  CHECK(split_host_port("127.0.0.1:15000").value() == std::make_pair(std::string("127.0.0.1"), uint16_t{15000}));
  CHECK(split_host_port("[::]:15020").value().first == "::");
  CHECK(split_host_port("localhost:0").value().second == 0);
  CHECK_FALSE(split_host_port("::1:15000").ok());
  CHECK_FALSE(split_host_port("127.0.0.1").ok());
  CHECK_FALSE(split_host_port("127.0.0.1:70000").ok());
  CHECK_FALSE(split_host_port(":15000").ok());
  CHECK(is_loopback_host("127.0.0.1"));
  CHECK(is_loopback_host("127.1.2.3"));
  CHECK(is_loopback_host("::1"));
  CHECK(is_loopback_host("localhost"));
  CHECK_FALSE(is_loopback_host("0.0.0.0"));
  CHECK_FALSE(is_loopback_host("::"));
  CHECK_FALSE(is_loopback_host("10.0.0.1"));
}

// ---- real server --------------------------------------------------------------------------

TEST_CASE("server: 200, 404, keep-alive, HEAD and HTTP/1.0 close", "[http]") {
  Loop loop;
  HttpServer server(loop.io, "test");
  server.route("/hello", [](const Request& r) {
    return Response::text(200, "hi " + r.method + " " + r.query_param("name").value_or("-"));
  });
  REQUIRE(server.listen("127.0.0.1:0").ok());
  REQUIRE(server.port() != 0);
  loop.start();

  auto ok = get(server.port(), "/hello?name=bob");
  CHECK(ok.status == 200);
  CHECK(ok.body == "hi GET bob");
  CHECK(get(server.port(), "/nope").status == 404);
  CHECK(get(server.port(), "/hello/extra").status == 404);

  Client c(server.port());
  c.send("GET /hello HTTP/1.1\r\n\r\nPOST /hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  auto r1 = c.read();
  auto r2 = c.read();
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r1->body == "hi GET -");
  CHECK(r2->body == "hi POST -");
  c.send("HEAD /hello HTTP/1.1\r\n\r\n");
  std::string head_resp;
  char buf[512];
  size_t n = c.sock.read_some(asio::buffer(buf));
  head_resp.assign(buf, n);
  CHECK_THAT(head_resp, Catch::StartsWith("HTTP/1.1 200 OK\r\n"));
  CHECK_THAT(head_resp, Catch::EndsWith("\r\n\r\n"));  // no body on HEAD

  Client old(server.port());
  old.send("GET /hello HTTP/1.0\r\n\r\n");
  auto r3 = old.read();
  REQUIRE(r3);
  CHECK_THAT(r3->head, Catch::Contains("Connection: close"));
  CHECK(old.closed_by_peer());
  server.stop();
}

TEST_CASE("server: bad and oversized requests get 400/431 and a close", "[http]") {
  Loop loop;
  HttpServer server(loop.io, "test");
  server.route("/", [](const Request&) { return Response::text(200, "root"); });
  REQUIRE(server.listen("127.0.0.1:0").ok());
  loop.start();

  Client bad(server.port());
  bad.send("THIS IS NOT HTTP\r\n\r\n");
  auto r = bad.read();
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(bad.closed_by_peer());

  Client big(server.port());
  big.send("GET / HTTP/1.1\r\nX-Big: " + std::string(32 * 1024, 'z') + "\r\n\r\n");
  auto r2 = big.read();
  REQUIRE(r2);
  CHECK(r2->status == 431);
  server.stop();
}

TEST_CASE("server: a bad request fails only its own connection", "[http]") {
  Loop loop;
  Limits lim;
  lim.max_body_bytes = 1024;
  HttpServer server(loop.io, "test", lim);
  server.route("/echo", [](const Request& r) { return Response::text(200, r.method + ":" + r.body); });
  REQUIRE(server.listen("127.0.0.1:0").ok());
  loop.start();

  Client keep(server.port());  // a keep-alive client that must survive the others' errors
  keep.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  auto k1 = keep.read();
  REQUIRE(k1);
  CHECK(k1->body == "GET:");

  struct Case {
    std::string raw;
    int status;
  };
  const Case cases[] = {
      {"GET /echo HTTP/1.1\r\nBad Name: v\r\n\r\n", 400},
      {"GET /echo HTTP/1.1\r\nX-Big: " + std::string(20 * 1024, 'z') + "\r\n\r\n", 431},
      {"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413},
      {"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501},
      {"GET /echo HTTP/3.0\r\n\r\n", 505},
  };
  for (const auto& c : cases) {
    INFO(c.raw.substr(0, 60));
    Client bad(server.port());
    bad.send(c.raw);
    auto r = bad.read();
    REQUIRE(r);
    CHECK(r->status == c.status);
    CHECK_THAT(r->head, Catch::Contains("Connection: close"));
    CHECK(bad.closed_by_peer());
  }

  keep.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
  auto k2 = keep.read();
  REQUIRE(k2);
  CHECK(k2->status == 200);
  CHECK(k2->body == "POST:ok");
  server.stop();
}

TEST_CASE("server: pipelined requests are answered in order, whole or a byte at a time", "[http]") {
  Loop loop;
  HttpServer server(loop.io, "test");
  server.route("/echo", [](const Request& r) {
    return Response::text(200, r.method + " " + r.query_param("n").value_or("-") + " " + r.body);
  });
  REQUIRE(server.listen("127.0.0.1:0").ok());
  loop.start();
  const std::string pipeline =
      "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
      "GET /nope HTTP/1.1\r\n\r\n"
      "GET /echo?n=4 HTTP/1.1\r\nConnection: close\r\n\r\n"
      "GET /echo?n=5 HTTP/1.1\r\n\r\n";  // after the close: never answered
  for (bool trickle : {false, true}) {
    INFO("trickle " << trickle);
    Client c(server.port());
    if (trickle) {
      for (char ch : pipeline) c.send(std::string_view(&ch, 1));
    } else {
      c.send(pipeline);
    }
    auto r1 = c.read();
    auto r2 = c.read();
    auto r3 = c.read();
    auto r4 = c.read();
    REQUIRE(r1);
    REQUIRE(r2);
    REQUIRE(r3);
    REQUIRE(r4);
    CHECK(r1->body == "GET 1 ");
    CHECK(r2->body == "POST 2 hello world");
    CHECK(r3->status == 404);
    CHECK(r4->body == "GET 4 ");
    CHECK_THAT(r4->head, Catch::Contains("Connection: close"));
    CHECK(c.closed_by_peer());
  }

  // A good request then garbage on one connection: the first is answered, the second gets 400.
  Client mixed(server.port());
  mixed.send("GET /echo?n=1 HTTP/1.1\r\n\r\nNOT HTTP AT ALL\r\n\r\n");
  auto m1 = mixed.read();
  auto m2 = mixed.read();
  REQUIRE(m1);
  REQUIRE(m2);
  CHECK(m1->status == 200);
  CHECK(m2->status == 400);
  CHECK(mixed.closed_by_peer());
  server.stop();
}

TEST_CASE("serialize_response: status line, fields in order, HEAD keeps the length", "[http]") {
  Response r = Response::text(413, "too big\n");
  r.content_encoding = "gzip";
  CHECK(serialize_response(r, false, false) ==
        "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Encoding: gzip\r\n"
        "Content-Length: 8\r\nConnection: close\r\n\r\ntoo big\n");
  CHECK(serialize_response(Response::json("{}"), true, true) ==
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n");
}

TEST_CASE("server: a slow client does not block others; header timeout closes it", "[http]") {
  Loop loop;
  Limits lim;
  lim.header_timeout = std::chrono::milliseconds(200);
  HttpServer server(loop.io, "test", lim);
  server.route("/", [](const Request&) { return Response::text(200, "root"); });
  REQUIRE(server.listen("127.0.0.1:0").ok());
  loop.start();

  Client slow(server.port());
  slow.send("GET / HTTP/1.1\r\nHo");  // and never finishes
  auto fast = get(server.port(), "/");
  CHECK(fast.status == 200);
  CHECK(fast.body == "root");
  // The slow client is disconnected once its header budget is spent.
  CHECK(slow.closed_by_peer());
  server.stop();
}

TEST_CASE("server: stop() closes idle keep-alive clients", "[http]") {
  Loop loop;
  HttpServer server(loop.io, "test");
  server.route("/", [](const Request&) { return Response::text(200, "root"); });
  REQUIRE(server.listen("127.0.0.1:0").ok());
  loop.start();
  Client c(server.port());
  c.send("GET / HTTP/1.1\r\n\r\n");
  REQUIRE(c.read());
  server.stop();
  CHECK(c.closed_by_peer());
}

TEST_CASE("server: localhost listens on 127.0.0.1 and [::1], one port", "[http]") {
  Loop loop;
  HttpServer server(loop.io, "admin");
  server.route("/ping", [](const Request&) { return Response::text(200, "pong"); });
  REQUIRE(server.listen("localhost:0").ok());
  loop.start();
  CHECK(get(server.port(), "/ping").body == "pong");  // 127.0.0.1
  // The test machine has ::1 on lo (as every suite's "[::]" listeners assume); a server that
  // bound only IPv4 refuses this connection and the test fails.
  const auto r = get(server.port(), "/ping", "GET", asio::ip::address_v6::loopback());
  CHECK(r.status == 200);
  CHECK(r.body == "pong");
}

TEST_CASE("server: listen errors are reported", "[http]") {
  asio::io_context io;
  HttpServer server(io, "test");
  CHECK_FALSE(server.listen("not-an-address").ok());
  CHECK_FALSE(server.listen("example.com:80").ok());
  HttpServer first(io, "a");
  REQUIRE(first.listen("127.0.0.1:0").ok());
  HttpServer second(io, "b");
  auto st = second.listen("127.0.0.1:" + std::to_string(first.port()));
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.error(), Catch::Contains("b"));
}

// ---- admin servers ------------------------------------------------------------------------

TEST_CASE("admin servers: readiness flip, metrics, logging, quitquitquit", "[http][admin]") {
  REQUIRE(common::log::init("info", common::log::Format::Plain).ok());
  Loop loop;
  common::metrics::Registry registry;
  registry.counter("things_total", "Things").get({})->inc(7);
  common::Readiness readiness;
  readiness.register_task("proxy");
  readiness.register_task("state manager");
  std::atomic<int> shutdowns{0};
  common::AdminHooks hooks;
  hooks.registry = &registry;
  hooks.readiness = &readiness;
  hooks.config_dump = [] { return std::string("{\"config\":{}}"); };
  hooks.shutdown = [&] { ++shutdowns; };
  common::AdminAddresses addrs{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"};
  auto servers = common::AdminServers::start(loop.io, loop.io, addrs, hooks);
  REQUIRE(servers.ok());
  auto& s = *servers.value();
  loop.start();

  // Readiness.
  auto nr = get(s.readiness().port(), "/healthz/ready");
  CHECK(nr.status == 500);
  CHECK(nr.body == "not ready, pending: proxy, state manager\n");
  readiness.mark_done("proxy");
  readiness.mark_done("state manager");
  auto rd = get(s.readiness().port(), "/healthz/ready");
  CHECK(rd.status == 200);
  CHECK(rd.body == "ready\n");

  // Stats on both paths.
  for (const char* path : {"/metrics", "/stats/prometheus"}) {
    auto m = get(s.stats().port(), path);
    CHECK(m.status == 200);
    CHECK_THAT(m.head, Catch::Contains("text/plain; version=0.0.4"));
    CHECK_THAT(m.body, Catch::Contains("things_total 7\n"));
  }
  CHECK(get(s.admin().port(), "/metrics").status == 404);  // stats live on their own port
  // OpenMetrics when asked for by Accept (as Prometheus asks): counter family named without
  // _total, samples unchanged, # EOF at the end.
  auto om = get_with_header(s.stats().port(), "/metrics",
                            "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
  CHECK(om.status == 200);
  CHECK_THAT(om.head, Catch::Contains("application/openmetrics-text; version=1.0.0"));
  CHECK_THAT(om.body, Catch::Contains("# TYPE things counter\n"));
  CHECK_THAT(om.body, Catch::Contains("# HELP things Things\n"));
  CHECK_THAT(om.body, Catch::Contains("things_total 7\n"));
  CHECK_THAT(om.body, Catch::EndsWith("# EOF\n"));
  auto plain = get_with_header(s.stats().port(), "/metrics", "Accept: text/plain");
  CHECK_THAT(plain.head, Catch::Contains("text/plain; version=0.0.4"));
  CHECK_THAT(plain.body, Catch::Contains("# TYPE things_total counter\n"));
  // gzip when the scraper accepts it; inflating gives the uncompressed exposition.
  auto gz = get_with_header(s.stats().port(), "/metrics", "Accept-Encoding: gzip, deflate");
  CHECK_THAT(gz.head, Catch::Contains("Content-Encoding: gzip"));
  REQUIRE(gz.body.size() > 2);
  CHECK(static_cast<unsigned char>(gz.body[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(gz.body[1]) == 0x8b);
  CHECK(gunzip(gz.body) == get(s.stats().port(), "/metrics").body);

  // Admin.
  auto dump = get(s.admin().port(), "/config_dump");
  CHECK(dump.status == 200);
  CHECK(dump.body == "{\"config\":{}}");
  CHECK_THAT(get(s.admin().port(), "/").body, Catch::Contains("/config_dump"));
  CHECK_THAT(get(s.admin().port(), "/logging").body, Catch::Contains("info"));
  CHECK(get(s.admin().port(), "/logging?level=debug").status == 405);  // GET cannot change
  CHECK(get(s.admin().port(), "/logging?level=debug", "POST").status == 200);
  CHECK(common::log::current_filter() == "debug");
  CHECK(get(s.admin().port(), "/logging?level=loud", "POST").status == 400);
  CHECK(common::log::current_filter() == "debug");
  CHECK(get(s.admin().port(), "/logging?reset", "POST").status == 200);
  CHECK(common::log::current_filter() == "info");

  CHECK(get(s.admin().port(), "/quitquitquit").status == 405);
  CHECK(shutdowns == 0);
  CHECK(get(s.admin().port(), "/quitquitquit", "POST").status == 200);
  // The hook is posted after the response; wait for it without a timing assertion.
  for (int i = 0; i < 2000 && shutdowns == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(shutdowns == 1);
  s.stop();
}

TEST_CASE("admin servers refuse a non-loopback admin address", "[http][admin]") {
  asio::io_context io;
  common::metrics::Registry registry;
  common::Readiness readiness;
  common::AdminHooks hooks;
  hooks.registry = &registry;
  hooks.readiness = &readiness;
  common::AdminAddresses addrs{"0.0.0.0:0", "127.0.0.1:0", "127.0.0.1:0"};
  auto r = common::AdminServers::start(io, io, addrs, hooks);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains("loopback"));
}

// ---- deferred routes and pprof --------------------------------------------------------------

TEST_CASE("server: a deferred route answers later without blocking other clients", "[http]") {
  Loop loop;
  HttpServer server(loop.io, "t");
  std::function<void(Response)> parked;
  std::mutex mu;
  server.route_async("/later", [&](const Request&, std::function<void(Response)> respond) {
    std::lock_guard<std::mutex> l(mu);
    parked = std::move(respond);
  });
  server.route("/now", [](const Request&) { return Response::text(200, "now\n"); });
  REQUIRE(server.listen("127.0.0.1:0").ok());
  loop.start();
  Client slow(server.port());
  slow.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
  // While /later waits, another client is served.
  CHECK(get(server.port(), "/now").body == "now\n");
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (parked) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::thread answer([&] {
    std::lock_guard<std::mutex> l(mu);
    REQUIRE(parked);
    parked(Response::text(202, "done\n"));  // from a foreign thread
  });
  answer.join();
  auto r = slow.read();
  REQUIRE(r.has_value());
  CHECK(r->status == 202);
  CHECK(r->body == "done\n");
  // Keep-alive continues after a deferred answer.
  slow.send("GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto r2 = slow.read();
  REQUIRE(r2.has_value());
  CHECK(r2->body == "now\n");
  auto paths = server.paths();
  CHECK(std::find(paths.begin(), paths.end(), "/later") != paths.end());
}

// Sanitizer builds (GCC says so with __SANITIZE_ADDRESS__, clang with __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN_BUILD 1
#endif
#endif

TEST_CASE("pprof: CPU profile of every thread in gperftools' format; heap explains itself", "[http][pprof]") {
  Loop loop;
  HttpServer server(loop.io, "admin");
  common::pprof::mount(server, loop.io);
  REQUIRE(server.listen("127.0.0.1:0").ok());
  loop.start();
  CHECK(get(server.port(), "/debug/pprof/profile?seconds=0").status == 400);
  CHECK(get(server.port(), "/debug/pprof/profile?seconds=x").status == 400);
  CHECK(get(server.port(), "/debug/pprof/heap").status == 501);
#if defined(TEST_ASAN_BUILD)
  auto off = get(server.port(), "/debug/pprof/profile?seconds=1");
  CHECK(off.status == 501);
  CHECK_THAT(off.body, Catch::Contains("sanitizer"));
#else
  // Something to sample: a busy thread for the length of the profile.
  std::atomic<bool> stop{false};
  std::thread spin([&] {
    volatile uint64_t x = 0;
    while (!stop) x = x * 31 + 7;
  });
  Client first(server.port());
  first.send("GET /debug/pprof/profile?seconds=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(get(server.port(), "/debug/pprof/profile?seconds=1").status == 409);  // one at a time
  auto r = first.read();
  stop = true;
  spin.join();
  REQUIRE(r.has_value());
  INFO(r->body.substr(0, 200));
  REQUIRE(r->status == 200);
  // gperftools' CPU profile header: words 0, 3, 0, <period in us>, 0, then samples.
  REQUIRE(r->body.size() > 5 * sizeof(uintptr_t));
  const auto* w = reinterpret_cast<const uintptr_t*>(r->body.data());
  CHECK(w[0] == 0);
  CHECK(w[1] == 3);
  CHECK(w[2] == 0);
  CHECK(w[3] > 0);
  CHECK(w[4] == 0);
  // At least one sample record after the header (count, depth, pcs...).
  CHECK(r->body.size() > 8 * sizeof(uintptr_t));
  // And the endpoint is free again.
  CHECK(get(server.port(), "/debug/pprof/profile?seconds=x").status == 400);
#endif
}
