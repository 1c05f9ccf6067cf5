// HBONE over real TLS 1.3 and real HTTP/2 on loopback: handshake identity checks, CONNECT
// status propagation, echo integrity of a multi-megabyte transfer with half-close, pooling.
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <catch2/catch.hpp>
#include <random>

#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"
#include "hbone/client.h"
#include "hbone/copy.h"
#include "hbone/pool.h"
#include "hbone/server.h"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

struct Fixture {
  asio::io_context io;
  common::LocalCaProvider ca{common::LocalCa::generate("cluster.local").value(), std::chrono::hours(1)};
  common::Identity server_id{"cluster.local", "ns-b", "server"};
  common::Identity client_id{"cluster.local", "ns-a", "client"};
  hbone::TlsContexts server_tls = make(server_id);
  hbone::TlsContexts client_tls = make(client_id);
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  int connections = 0;
  std::vector<std::string> authorities;

  hbone::TlsContexts make(const common::Identity& id) {
    auto creds = ca.issue(id);
    REQUIRE(creds.ok());
    auto t = hbone::make_tls_contexts(std::make_shared<common::tls::Credentials>(creds.value()));
    REQUIRE(t.ok());
    return t.value();
  }

  // Server: 401 for authority "deny:1", else 200 and echo everything back.
  void serve() {
    asio::co_spawn(io, [this]() -> asio::awaitable<void> {
      for (;;) {
        auto [ec, sock] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        connections++;
        asio::co_spawn(io,
                       hbone::serve_connection(std::move(sock), server_tls.server, hbone::Settings{},
                                               [this](std::shared_ptr<hbone::Stream> s,
                                                      std::shared_ptr<const hbone::PeerInfo> peer) {
                                                 asio::co_spawn(io, echo(std::move(s), peer), asio::detached);
                                               },
                                               {}),
                       asio::detached);
      }
    }, asio::detached);
  }

  asio::awaitable<void> echo(std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> peer) {
    authorities.push_back(s->request().authority);
    if (!peer->identity || !(*peer->identity == client_id)) {
      s->respond(403);
      co_return;
    }
    if (s->request().authority == "127.0.0.9:1") {
      s->respond(401);
      co_return;
    }
    s->respond(200);
    while (co_await s->wait_readable()) {
      auto d = s->readable();
      std::vector<uint8_t> copy(d.begin(), d.end());
      s->consume(copy.size());
      if (!co_await s->write(copy)) co_return;
    }
    s->shutdown_write();
  }

  hbone::DialOptions server_opts() {
    std::vector<common::Identity> ids;
    ids.push_back(server_id);
    return dial_opts(ids);
  }
  hbone::DialOptions dial_opts(std::vector<common::Identity> expected) {
    hbone::DialOptions o;
    o.target = acceptor.local_endpoint();
    o.expected = std::move(expected);
    return o;
  }
};

asio::awaitable<std::string> roundtrip(hbone::Stream& s, std::string payload) {
  std::string got;
  co_await s.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
  s.shutdown_write();
  while (co_await s.wait_readable()) {
    auto d = s.readable();
    got.append(reinterpret_cast<const char*>(d.data()), d.size());
    s.consume(d.size());
  }
  co_return got;
}

template <typename F>
void run(Fixture& f, F body) {
  bool done = false;
  asio::co_spawn(f.io, [&]() -> asio::awaitable<void> {
    co_await body();
    done = true;
    f.acceptor.close();
    // Let the server side see the clients' GOAWAY/close and finish its connections before the
    // loop stops (otherwise their frames are destroyed mid-flight and LSan reports them).
    asio::steady_timer grace(f.io, std::chrono::milliseconds(300));
    co_await grace.async_wait(asio::as_tuple(asio::use_awaitable));
    f.io.stop();
  }, asio::detached);
  f.io.run_for(std::chrono::seconds(60));
  REQUIRE(done);
}

}  // namespace

TEST_CASE("hbone tunnel echoes data with half-close and verified identities") {
  Fixture f;
  f.serve();
  std::string result, error;
  run(f, [&]() -> asio::awaitable<void> {
    auto conn = co_await hbone::dial(f.io.get_executor(), f.client_tls.client, f.server_opts());
    if (!conn) {
      error = conn.error();
      co_return;
    }
    hbone::ConnectRequest req;
    req.authority = "127.0.0.1:8080";
    req.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    auto s = co_await conn.value()->open(req);
    if (!s) {
      error = s.error();
      co_return;
    }
    std::string msg = "hello through hbone";
    result = co_await roundtrip(*s.value(), msg);
    conn.value()->drain();
  });
  CHECK(error == "");
  CHECK(result == "hello through hbone");
  REQUIRE(f.authorities.size() == 1);
  CHECK(f.authorities[0] == "127.0.0.1:8080");
}

TEST_CASE("hbone client refuses a server whose identity is not expected") {
  Fixture f;
  f.serve();
  std::string error;
  run(f, [&]() -> asio::awaitable<void> {
    common::Identity other{"cluster.local", "ns-b", "someone-else"};
    std::vector<common::Identity> ids;
    ids.push_back(other);
    auto opts = f.dial_opts(ids);
    auto conn = co_await hbone::dial(f.io.get_executor(), f.client_tls.client, opts);
    error = conn ? "" : conn.error();
  });
  CHECK(error.find("TLS handshake") != std::string::npos);
}

TEST_CASE("hbone CONNECT error status reaches the client") {
  Fixture f;
  f.serve();
  std::string error;
  bool second_ok = false;
  run(f, [&]() -> asio::awaitable<void> {
    auto conn = co_await hbone::dial(f.io.get_executor(), f.client_tls.client, f.server_opts());
    if (!conn) {
      error = conn.error();
      co_return;
    }
    hbone::ConnectRequest req;
    req.authority = "127.0.0.9:1";
    auto s = co_await conn.value()->open(req);
    error = s ? "" : s.error();
    // The connection survives a refused stream.
    req.authority = "127.0.0.1:1";
    auto s2 = co_await conn.value()->open(req);
    second_ok = s2.ok();
    if (s2) s2.value()->reset();
    conn.value()->close();
  });
  CHECK(error == "status 401");
  CHECK(second_ok);
}

TEST_CASE("hbone carries megabytes intact through copy_bidirectional with back-pressure") {
  // Received DATA goes straight to the app socket while it keeps up and is queued when it
  // does not: a reader that stalls now and then makes the relay switch between the two
  // paths many times; order, content and byte counts must not notice.
  bool slow_reader = false;
  SECTION("app reads as fast as it can") {}
  SECTION("app stalls every 256 KiB") { slow_reader = true; }
  Fixture f;
  f.serve();
  // Local app socket pair: app <-> (copy) <-> tunnel <-> echo server.
  tcp::acceptor local(f.io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::string sent(24u << 20, '\0');
  std::mt19937 rng(7);
  for (auto& c : sent) c = static_cast<char>(rng());
  std::string received;
  hbone::CopyResult copy_result;
  run(f, [&]() -> asio::awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    tcp::socket app(f.io);
    co_await app.async_connect(local.local_endpoint(), asio::use_awaitable);
    tcp::socket proxied = co_await local.async_accept(asio::use_awaitable);
    auto conn = co_await hbone::dial(f.io.get_executor(), f.client_tls.client, f.server_opts());
    if (!conn) co_return;
    hbone::ConnectRequest req;
    req.authority = "127.0.0.1:9";
    auto s = co_await conn.value()->open(req);
    if (!s) co_return;
    auto writer = [&]() -> asio::awaitable<void> {
      co_await asio::async_write(app, asio::buffer(sent), asio::use_awaitable);
      app.shutdown(tcp::socket::shutdown_send);
    };
    auto reader = [&]() -> asio::awaitable<void> {
      std::vector<char> buf(65536);
      size_t next_stall = 256u << 10;
      asio::steady_timer stall(f.io);
      for (;;) {
        auto [ec, n] = co_await app.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
        if (ec) break;
        received.append(buf.data(), n);
        if (slow_reader && received.size() >= next_stall) {
          next_stall += 256u << 10;
          stall.expires_after(std::chrono::milliseconds(2));
          co_await stall.async_wait(asio::as_tuple(asio::use_awaitable));
        }
      }
    };
    auto copier = [&]() -> asio::awaitable<void> {
      copy_result = co_await hbone::copy_bidirectional(proxied, s.value());
    };
    co_await (writer() && reader() && copier());
    conn.value()->close();
  });
  CHECK(copy_result.error == "");
  CHECK(copy_result.to_stream == sent.size());
  CHECK(copy_result.to_socket == sent.size());
  CHECK(received.size() == sent.size());
  CHECK(received == sent);
}

TEST_CASE("hbone pool multiplexes concurrent streams over one connection") {
  Fixture f;
  f.serve();
  auto pool = std::make_shared<hbone::Pool>(f.io.get_executor(), 100, std::chrono::minutes(5));
  int ok = 0;
  run(f, [&]() -> asio::awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    hbone::PoolKey key;
    key.src_identity = f.client_id.uri();
    key.dst_identities.push_back(f.server_id.uri());
    key.dst = "127.0.0.1:x";
    auto one = [&](std::string msg) -> asio::awaitable<void> {
      hbone::ConnectRequest req;
      req.authority = "127.0.0.1:80";
      auto s = co_await pool->connect(key, f.client_tls.client, f.server_opts(), req);
      if (!s) co_return;
      if (co_await roundtrip(*s.value(), msg) == msg) ok++;
    };
    std::string a = "a", b = "bb", c = "ccc", d = "dddd", e = "again";
    co_await (one(a) && one(b) && one(c) && one(d));
    co_await one(e);
    pool->drain();
  });
  CHECK(ok == 5);
  CHECK(f.connections == 1);
  CHECK(pool->dials() == 1);
}

TEST_CASE("hbone pool keeps one idle connection per key after a burst and closes the surplus") {
  // 6 concurrent streams at 2 per connection need 3 connections; when they all end, only
  // Pool::kIdleKeptPerKey stays pooled (the others get GOAWAY and their memory goes back),
  // and the next stream reuses the kept one instead of dialling.
  Fixture f;
  f.serve();
  auto pool = std::make_shared<hbone::Pool>(f.io.get_executor(), 2, std::chrono::minutes(5));
  int ok = 0;
  size_t pooled_during = 0, pooled_after = 0;
  run(f, [&]() -> asio::awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    hbone::PoolKey key;
    key.src_identity = f.client_id.uri();
    key.dst_identities.push_back(f.server_id.uri());
    key.dst = "127.0.0.1:x";
    auto one = [&](std::string msg, int hold_ms) -> asio::awaitable<void> {
      hbone::ConnectRequest req;
      req.authority = "127.0.0.1:80";
      auto s = co_await pool->connect(key, f.client_tls.client, f.server_opts(), req);
      if (!s) co_return;
      asio::steady_timer hold(f.io, std::chrono::milliseconds(hold_ms));
      co_await hold.async_wait(asio::as_tuple(asio::use_awaitable));
      pooled_during = std::max(pooled_during, pool->connections());
      if (co_await roundtrip(*s.value(), msg) == msg) ok++;
    };
    co_await (one("a", 300) && one("b", 300) && one("c", 300) && one("d", 300) && one("e", 300) && one("f", 300));
    asio::steady_timer settle(f.io, std::chrono::milliseconds(300));
    co_await settle.async_wait(asio::as_tuple(asio::use_awaitable));
    pooled_after = pool->connections();
    co_await one("again", 0);
    pool->drain();
  });
  CHECK(ok == 7);
  CHECK(pooled_during == 3);
  CHECK(pooled_after == hbone::Pool::kIdleKeptPerKey);
  CHECK(pool->dials() == 3);
  CHECK(f.connections == 3);
}

TEST_CASE("hbone stream works with Asio's generic composed operations") {
  Fixture f;
  f.serve();
  std::string got, error;
  run(f, [&]() -> asio::awaitable<void> {
    auto conn = co_await hbone::dial(f.io.get_executor(), f.client_tls.client, f.server_opts());
    if (!conn) co_return;
    hbone::ConnectRequest req;
    req.authority = "127.0.0.1:7";
    auto s = co_await conn.value()->open(req);
    if (!s) co_return;
    auto stream = s.value();
    std::string msg(100000, 'q');
    auto [wec, wn] = co_await asio::async_write(*stream, asio::buffer(msg), asio::as_tuple(asio::use_awaitable));
    if (wec || wn != msg.size()) error = "write";
    stream->shutdown_write();
    std::string buf;
    auto [rec, rn] =
        co_await asio::async_read(*stream, asio::dynamic_buffer(buf), asio::as_tuple(asio::use_awaitable));
    if (rec != asio::error::eof) error = "expected eof, got " + rec.message();
    got = buf;
    conn.value()->close();
  });
  CHECK(error == "");
  CHECK(got == std::string(100000, 'q'));
}

// Asio's rule for async operations: the handler is never invoked from inside the initiating
// call. Composed operations (asio::async_read, Beast's parsers) re-initiate read_some from
// the handler, so a read that completed inline while bytes were buffered nested one stack
// level per read: a request body read in small pieces overflowed the waypoint's stack (found
// under ASan by tests/66-waypoint-e2e, a 200 kB POST). 1-byte reads of 100,000 buffered bytes
// make that depth 100,000 frames, far past any thread's stack, unless each completion unwinds.
TEST_CASE("hbone stream completions never nest: 100,000 one-byte reads of buffered data") {
  Fixture f;
  f.serve();
  std::string got, error;
  run(f, [&]() -> asio::awaitable<void> {
    auto conn = co_await hbone::dial(f.io.get_executor(), f.client_tls.client, f.server_opts());
    if (!conn) co_return;
    hbone::ConnectRequest req;
    req.authority = "127.0.0.1:7";
    auto s = co_await conn.value()->open(req);
    if (!s) co_return;
    auto stream = s.value();
    const std::string msg(100000, 'r');
    co_await asio::async_write(*stream, asio::buffer(msg), asio::as_tuple(asio::use_awaitable));
    stream->shutdown_write();
    got.resize(msg.size());
    auto one_byte_at_a_time = [](const boost::system::error_code& ec, std::size_t) -> std::size_t {
      return ec ? 0 : 1;
    };
    auto [rec, rn] =
        co_await asio::async_read(*stream, asio::buffer(got), one_byte_at_a_time, asio::as_tuple(asio::use_awaitable));
    if (rec || rn != msg.size()) error = "read " + std::to_string(rn) + ": " + rec.message();
    conn.value()->close();
  });
  CHECK(error == "");
  CHECK(got == std::string(100000, 'r'));
}
