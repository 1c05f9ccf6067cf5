#include "waypoint/tracing/collector_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace waypoint::tracing {

namespace asio = boost::asio;
namespace beast = boost::beast;

common::Result<CollectorAddress> parse_collector_address(std::string_view v) {
  CollectorAddress a;
  size_t colon;
  if (!v.empty() && v.front() == '[') {
    const size_t close = v.find(']');
    if (close == std::string_view::npos || close + 1 >= v.size() || v[close + 1] != ':') {
      return common::make_error("collector address \"" + std::string(v) + "\": expected [ipv6]:port");
    }
    a.host = std::string(v.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = v.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return common::make_error("collector address \"" + std::string(v) + "\": expected host:port");
    }
    a.host = std::string(v.substr(0, colon));
  }
  a.port = std::string(v.substr(colon + 1));
  unsigned port = 0;
  for (char c : a.port) {
    if (c < '0' || c > '9' || port > 65535) {
      port = 0;
      break;
    }
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (a.port.empty() || port == 0 || port > 65535) {
    return common::make_error("collector address \"" + std::string(v) + "\": invalid port");
  }
  return a;
}

common::Result<unsigned> post_spans(const CollectorAddress& to, const std::string& path, const std::string& body,
                                    std::chrono::milliseconds timeout) {
  asio::io_context io;
  std::string error = "timed out";
  unsigned status = 0;
  constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::ip::tcp::resolver resolver(io);
        auto [rec, results] = co_await resolver.async_resolve(to.host, to.port, kTuple);
        if (rec) {
          error = "resolve " + to.host + ": " + rec.message();
          co_return;
        }
        beast::tcp_stream stream(io);
        stream.expires_after(timeout);
        auto [cec, ep] = co_await stream.async_connect(results, kTuple);
        if (cec) {
          error = "connect " + to.host + ":" + to.port + ": " + cec.message();
          co_return;
        }
        beast::http::request<beast::http::string_body> req{beast::http::verb::post, path, 11};
        req.set(beast::http::field::host, to.host + ":" + to.port);
        req.set(beast::http::field::content_type, "application/json");
        req.set(beast::http::field::user_agent, "ambient-waypoint");
        req.keep_alive(false);
        req.body() = body;
        req.prepare_payload();
        auto [wec, wn] = co_await beast::http::async_write(stream, req, kTuple);
        if (wec) {
          error = "send: " + wec.message();
          co_return;
        }
        beast::flat_buffer buf;
        beast::http::response<beast::http::string_body> res;
        auto [rdec, rn] = co_await beast::http::async_read(stream, buf, res, kTuple);
        if (rdec) {
          error = "response: " + rdec.message();
          co_return;
        }
        status = res.result_int();
        boost::system::error_code ignored;
        stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      },
      asio::detached);
  // The stream's own deadline ends connect/write/read; this bounds the resolver too.
  io.run_for(timeout + std::chrono::milliseconds(500));
  if (status == 0) return common::make_error(error);
  return status;
}

}  // namespace waypoint::tracing
