// The HTTP/1.1 heads the waypoint writes (write_request_stream / write_response_stream, which
// serialize them directly into a reused buffer, issue 9) are byte for byte what Boost.Beast's
// serializer writes for the same message built the way the waypoint built it before: fields
// the proxy sets (Host, Content-Length, Transfer-Encoding, Connection, Upgrade) replace the
// same-named fields of the list, case-insensitively, and follow them in Beast's spelling.
// One deliberate difference: Beast moved a field next to an earlier one of the same name; the
// list's order is now kept as it is (as Envoy does), checked on its own below.
// Each case writes over a real loopback TCP connection and reads back every byte.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "waypoint/http/body.h"
#include "waypoint/http/http1.h"

using namespace waypoint;
namespace asio = boost::asio;
namespace bh = boost::beast::http;
using asio::ip::tcp;

namespace {

template <bool IsRequest>
std::string beast_head(bh::message<IsRequest, bh::empty_body>& m) {
  bh::serializer<IsRequest, bh::empty_body> sr(m);
  sr.split(true);
  std::string out;
  boost::system::error_code ec;
  while (!sr.is_header_done()) {
    size_t taken = 0;
    sr.next(ec, [&](boost::system::error_code&, const auto& buffers) {
      for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
        const asio::const_buffer b = *it;
        out.append(static_cast<const char*>(b.data()), b.size());
        taken += b.size();
      }
    });
    REQUIRE(!ec);
    sr.consume(taken);
  }
  return out;
}

// The response head as the Beast-based writer produced it.
std::string reference_response_head(const http::Response& r, http::Protocol version, bool head, bool close,
                                    bool chunked) {
  bh::response<bh::empty_body> m;
  m.result(static_cast<unsigned>(r.status));
  m.version(version == http::Protocol::Http10 ? 10 : 11);
  for (const auto& f : r.headers.fields()) m.insert(f.name, f.value);
  const bool has_body = r.status != 101 && !(r.status < 200 || r.status == 204 || r.status == 304);
  const bool to_close = chunked && version == http::Protocol::Http10;
  if (r.status == 101) {
    m.set(bh::field::connection, "upgrade");
  } else {
    if (has_body && !head && !to_close) {
      if (chunked) {
        m.set(bh::field::transfer_encoding, "chunked");
      } else {
        m.set(bh::field::content_length, std::to_string(r.body_stream ? *r.content_length : r.body.size()));
      }
    }
    if (close || to_close) {
      m.set(bh::field::connection, "close");
    } else if (version == http::Protocol::Http10) {
      m.set(bh::field::connection, "keep-alive");
    }
  }
  return beast_head(m);
}

std::string reference_request_head(const http::Request& r, bool stream) {
  bh::request<bh::empty_body> m;
  m.method_string(r.head.method);
  m.target(r.head.path);
  m.version(11);
  m.set(bh::field::host, r.head.authority);
  for (const auto& f : r.head.headers.fields()) m.insert(f.name, f.value);
  if (!r.upgrade.empty()) {
    m.set(bh::field::connection, "upgrade");
    m.set(bh::field::upgrade, r.upgrade);
  }
  if (stream || !r.body.empty() || r.head.method == "POST" || r.head.method == "PUT" || r.head.method == "PATCH") {
    if (stream && !r.content_length) {
      m.set(bh::field::transfer_encoding, "chunked");
    } else {
      m.set(bh::field::content_length, std::to_string(stream ? *r.content_length : r.body.size()));
    }
  }
  return beast_head(m);
}

// Runs `write` on one end of a loopback connection; returns every byte the other end got.
template <typename Write>
std::string wire_bytes(Write write) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io);
  client.connect(acc.local_endpoint());
  tcp::socket server = acc.accept();
  auto done = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<http::StreamWriteResult> {
        http::AnyStream s(std::move(client));
        auto wr = co_await write(s);
        s.shutdown_write();
        co_return wr;
      },
      asio::use_future);
  io.run();
  REQUIRE(done.get().ok);
  std::string got;
  boost::system::error_code ec;
  asio::read(server, asio::dynamic_buffer(got), ec);
  REQUIRE(ec == asio::error::eof);
  return got;
}

std::string chunked(std::string_view body) {
  char size[24];
  const int n = std::snprintf(size, sizeof size, "%zx\r\n", body.size());
  return std::string(size, static_cast<size_t>(n)) + std::string(body) + "\r\n0\r\n\r\n";
}

router::HeaderList awkward_fields() {
  // Stale framing fields in any case, a duplicate, an empty value: all replaced or kept as Beast did.
  return {{"content-type", "text/plain"}, {"CONTENT-LENGTH", "999"},   {"x-dup", "1"},
          {"x-dup", "2"},                 {"transfer-encoding", "gzip"}, {"Connection", "keep-alive"},
          {"x-empty", ""}};
}

}  // namespace

TEST_CASE("response heads: in-memory bodies, HTTP/1.1 and 1.0, close or keep-alive, HEAD, bodiless statuses") {
  for (uint16_t status : {200, 404, 204, 304, 299}) {
    for (auto version : {http::Protocol::Http11, http::Protocol::Http10}) {
      for (bool close : {false, true}) {
        for (bool head : {false, true}) {
          http::Response r;
          r.status = status;
          r.headers = awkward_fields();
          r.body = "hello, body";
          std::string buffer = "left over from the previous message";
          const auto got = wire_bytes([&](http::AnyStream& s) {
            return http::write_response_stream(s, r, version, head, close, &buffer);
          });
          const bool has_body = !(status == 204 || status == 304) && !head;
          INFO("status " << status << " http/1." << (version == http::Protocol::Http10 ? 0 : 1) << " close " << close
                         << " head " << head);
          CHECK(got == reference_response_head(r, version, head, close, false) + (has_body ? r.body : ""));
        }
      }
    }
  }
}

TEST_CASE("response heads: streamed bodies, chunked on HTTP/1.1, until close on HTTP/1.0, announced length") {
  for (auto version : {http::Protocol::Http11, http::Protocol::Http10}) {
    for (bool announced : {false, true}) {
      http::Response r;
      r.headers = awkward_fields();
      r.body_stream = std::make_shared<http::StringBody>("streamed bytes");
      if (announced) r.content_length = 14;
      const auto got =
          wire_bytes([&](http::AnyStream& s) { return http::write_response_stream(s, r, version, false, false); });
      std::string body = "streamed bytes";
      if (!announced && version == http::Protocol::Http11) body = chunked(body);
      INFO("http/1." << (version == http::Protocol::Http10 ? 0 : 1) << " announced " << announced);
      CHECK(got == reference_response_head(r, version, false, false, !announced) + body);
    }
  }
}

TEST_CASE("response heads: 101 Switching Protocols keeps upgrade and sets Connection: upgrade") {
  http::Response r;
  r.status = 101;
  r.headers = {{"upgrade", "websocket"}, {"connection", "Upgrade"}, {"sec-websocket-accept", "abc="}};
  const auto got = wire_bytes(
      [&](http::AnyStream& s) { return http::write_response_stream(s, r, http::Protocol::Http11, false, false); });
  CHECK(got == reference_response_head(r, http::Protocol::Http11, false, false, false));
  CHECK(got.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
}

TEST_CASE("request heads: Host first, framing fields replaced, upgrade, streamed and in-memory bodies") {
  struct Case {
    std::string method;
    std::string body;
    bool stream;
    std::optional<uint64_t> length;
    std::string upgrade;
  };
  const Case cases[] = {
      {"GET", "", false, std::nullopt, ""},      {"POST", "", false, std::nullopt, ""},
      {"PUT", "data=1", false, std::nullopt, ""}, {"POST", "", true, std::nullopt, ""},
      {"POST", "", true, 6, ""},                 {"GET", "", false, std::nullopt, "websocket"},
      {"get", "", false, std::nullopt, ""},      {"PROPFIND", "", false, std::nullopt, ""},
  };
  for (const auto& c : cases) {
    http::Request r;
    r.head.method = c.method;
    r.head.path = "/a/b?c=d";
    r.head.authority = "reviews.default.svc.cluster.local:9080";
    r.head.headers = awkward_fields();
    r.head.headers.add("upgrade", "h2c");
    r.body = c.body;
    r.upgrade = c.upgrade;
    r.content_length = c.length;
    std::shared_ptr<http::BodyReader> stream;
    if (c.stream) stream = std::make_shared<http::StringBody>("stream");
    std::string buffer;
    const auto got = wire_bytes([&](http::AnyStream& s) { return http::write_request_stream(s, r, stream, &buffer); });
    std::string body = c.stream ? "stream" : c.body;
    if (c.stream && !c.length) body = chunked(body);
    INFO(c.method << " stream " << c.stream << " upgrade " << c.upgrade);
    CHECK(got == reference_request_head(r, c.stream) + body);
  }
}

TEST_CASE("fields keep the list's order, also a name repeated apart (Beast grouped those)") {
  http::Request r;
  r.head.method = "GET";
  r.head.path = "/";
  r.head.authority = "a:80";
  r.head.headers = {{"x-a", "1"}, {"x-b", "2"}, {"x-a", "3"}, {"host", "second"}};
  const auto got = wire_bytes([&](http::AnyStream& s) { return http::write_request_stream(s, r, nullptr); });
  CHECK(got == "GET / HTTP/1.1\r\nHost: a:80\r\nx-a: 1\r\nx-b: 2\r\nx-a: 3\r\nhost: second\r\n\r\n");
}
