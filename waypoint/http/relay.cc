#include "waypoint/http/relay.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace waypoint::http {

namespace asio = boost::asio;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// `pending` lives in relay()'s frame, which outlives both directions (no string is passed by
// value into these coroutines: GCC 12 has mis-destroyed such parameters under awaitable_operators).
asio::awaitable<void> one_way(AnyStream& from, AnyStream& to, const std::string& pending, uint64_t& count) {
  if (!pending.empty()) {
    auto [ec, n] = co_await asio::async_write(to, asio::buffer(pending), kTuple);
    if (ec) {
      from.abort();
      co_return;
    }
    count += n;
  }
  std::array<char, 16384> buf;
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), kTuple);
    if (n > 0) {
      auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), kTuple);
      if (wec) {
        from.abort();
        to.abort();
        co_return;
      }
      count += wn;
    }
    if (ec == asio::error::eof) {
      to.shutdown_write();
      co_return;
    }
    if (ec) {
      from.abort();
      to.abort();
      co_return;
    }
  }
}

}  // namespace

asio::awaitable<RelayResult> relay(AnyStream& a, AnyStream& b, std::string pending_a_to_b, std::string pending_b_to_a) {
  using namespace asio::experimental::awaitable_operators;
  RelayResult r;
  co_await (one_way(a, b, pending_a_to_b, r.a_to_b) && one_way(b, a, pending_b_to_a, r.b_to_a));
  co_return r;
}

}  // namespace waypoint::http
