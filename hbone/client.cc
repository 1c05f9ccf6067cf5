#include "hbone/client.h"

#include <netinet/in.h>
#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "hbone/connection_stats.h"
#include "hbone/socket_options.h"

namespace hbone {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
// IP_LOCAL_PORT_RANGE (Linux 6.3+): in <linux/in.h>, which clashes with glibc's <netinet/in.h>
// that lacks it. ABI value.
constexpr int kIpLocalPortRange = 51;
}  // namespace

asio::awaitable<common::Result<tcp::socket>> connect_tcp(asio::any_io_executor exec, tcp::endpoint target,
                                                         uint32_t mark, std::chrono::milliseconds timeout,
                                                         std::optional<asio::ip::address> bind_source,
                                                         std::function<int(int)> socket_factory) {
  using R = common::Result<tcp::socket>;
  tcp::socket sock(exec);
  boost::system::error_code ec;
  if (socket_factory) {
    int fd = socket_factory(target.address().is_v6() ? AF_INET6 : AF_INET);
    if (fd < 0) co_return R(common::make_error("socket in workload network namespace failed"));
    sock.assign(target.protocol(), fd, ec);
  } else {
    sock.open(target.protocol(), ec);
    // A factory owns its sockets' options; without one, upstream's defaults.
    if (!ec) (void)sockopt::apply_socket_config(sock.native_handle(), sockopt::SocketConfig{});
  }
  if (ec) co_return R(common::make_error("socket: " + ec.message()));
  if (mark != 0) {
    if (auto s = sockopt::set_mark(sock.native_handle(), mark); !s) co_return R(common::make_error(s.error()));
  }
  if (bind_source) {
    // Original-source preservation: bind the client's own IP (needs IP_TRANSPARENT).
    if (auto s = sockopt::set_transparent(sock.native_handle(), target.address().is_v6()); !s) {
      co_return R(common::make_error(s.error()));
    }
    // Pick the port at connect() time (by 4-tuple), not at bind(): a bind to port 0 must find
    // a port free for every destination, so TIME_WAIT sockets towards one app would starve
    // connects to all others. HAProxy's `usesrc clientip` does the same.
    int one = 1;
    ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    // Every connect from one client IP goes to the same app ip:port, and ztunnel closes first,
    // so each leaves a TIME_WAIT on that 4-tuple. Without a per-socket range, connect() walks
    // only even ports first and, once they are all held, re-walks the whole even half on every
    // connect before trying odd ones (10k TIME_WAITs: a second wave 10x slower than the first).
    // Any IP_LOCAL_PORT_RANGE (Linux 6.8+) makes it walk both parities in one pass from where
    // the last search ended. The widest range keeps the netns's own limits (the kernel only
    // narrows them). Older kernels refuse the option: harmless, they just keep the slow walk.
    const uint32_t whole_range = (65535u << 16) | 1u;
    ::setsockopt(sock.native_handle(), IPPROTO_IP, kIpLocalPortRange, &whole_range, sizeof(whole_range));
    sock.bind(tcp::endpoint(*bind_source, 0), ec);
    if (ec) co_return R(common::make_error("bind source " + bind_source->to_string() + ": " + ec.message()));
  }
  asio::steady_timer deadline(exec);
  deadline.expires_after(timeout);
  bool timed_out = false;
  deadline.async_wait([&sock, &timed_out](boost::system::error_code e) {
    if (!e) {
      timed_out = true;
      boost::system::error_code ignored;
      sock.close(ignored);
    }
  });
  auto [cec] = co_await sock.async_connect(target, asio::as_tuple(asio::use_awaitable));
  deadline.cancel();
  if (timed_out) co_return R(common::make_error("connect timeout to " + target.address().to_string()));
  if (cec) co_return R(common::make_error("connect " + target.address().to_string() + ":" +
                                          std::to_string(target.port()) + ": " + cec.message()));
  (void)sockopt::set_nodelay(sock.native_handle());
  co_return R(std::move(sock));
}

asio::awaitable<ConnectResult<std::shared_ptr<Connection>>> dial(asio::any_io_executor exec, TlsContext ctx,
                                                                 DialOptions opts) {
  using R = ConnectResult<std::shared_ptr<Connection>>;
  auto sock = co_await connect_tcp(exec, opts.target, opts.mark, opts.connect_timeout, std::nullopt,
                                   opts.socket_factory);
  if (!sock) co_return R(common::make_error(sock.error()));
  auto tls = std::make_unique<TlsSocket>(std::move(sock.value()), ctx->native_handle());
  // `opts.expected` lives in this coroutine frame for the whole handshake.
  common::tls::set_expected_identities(tls->native_handle(), &opts.expected);

  asio::steady_timer deadline(exec);
  deadline.expires_after(opts.settings.handshake_timeout);
  bool timed_out = false;
  deadline.async_wait([&tls, &timed_out](boost::system::error_code e) {
    if (!e) {
      timed_out = true;
      tls->close();
    }
  });
  auto hs = co_await tls->handshake(false);
  deadline.cancel();
  common::tls::set_expected_identities(tls->native_handle(), nullptr);
  if (timed_out || !hs) {
    auto& st = connection_stats();
    ConnectionStats::bump(st.handshake_failures[1][timed_out ? ConnectionStats::kTimeout : ConnectionStats::kTls]);
    if (timed_out) ConnectionStats::bump(st.timeouts[ConnectionStats::kHandshake]);
  }
  if (timed_out) co_return R(common::make_error("TLS handshake timeout"), ConnectStage::Tls);
  if (!hs) co_return R(common::make_error("TLS handshake: " + hs.error()), ConnectStage::Tls);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(tls->native_handle(), &alpn, &alpn_len);
  if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
    ConnectionStats::bump(connection_stats().handshake_failures[1][ConnectionStats::kAlpn]);
    co_return R(common::make_error("peer did not select ALPN h2"), ConnectStage::Http2);
  }
  auto conn = std::make_shared<Connection>(std::move(tls), Role::Client, opts.settings);
  if (auto st = conn->start(); !st) co_return R(common::make_error(st.error()), ConnectStage::Http2);
  co_return R(std::move(conn));
}

}  // namespace hbone
