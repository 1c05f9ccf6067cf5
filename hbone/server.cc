#include "hbone/server.h"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "hbone/connection_stats.h"

namespace hbone {
namespace asio = boost::asio;
using asio::ip::tcp;

asio::awaitable<void> serve_connection(tcp::socket socket, TlsContext ctx, Settings settings,
                                       ConnectHandler handler, ServeHooks hooks) {
  boost::system::error_code ec;
  auto peer = std::make_shared<PeerInfo>();
  peer->remote = socket.remote_endpoint(ec);
  peer->local = socket.local_endpoint(ec);
  auto tls = std::make_unique<TlsSocket>(std::move(socket), ctx->native_handle());

  // Bound the handshake: a peer that trickles (or never sends) its ClientHello is closed.
  asio::steady_timer deadline(tls->get_executor());
  deadline.expires_after(settings.handshake_timeout);
  bool timed_out = false;
  deadline.async_wait([&tls, &timed_out](boost::system::error_code e) {
    if (!e) {
      timed_out = true;
      tls->close();
    }
  });
  auto hs = co_await tls->handshake(true);
  deadline.cancel();
  if (!hs || timed_out) {
    std::string why = timed_out ? "handshake timeout" : hs.error();
    auto& st = connection_stats();
    ConnectionStats::bump(st.handshake_failures[0][timed_out ? ConnectionStats::kTimeout : ConnectionStats::kTls]);
    if (timed_out) ConnectionStats::bump(st.timeouts[ConnectionStats::kHandshake]);
    if (hooks.on_handshake_error) hooks.on_handshake_error(why, peer->remote);
    co_return;
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(tls->native_handle(), &alpn, &alpn_len);
  if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
    ConnectionStats::bump(connection_stats().handshake_failures[0][ConnectionStats::kAlpn]);
    if (hooks.on_handshake_error) hooks.on_handshake_error("no ALPN h2", peer->remote);
    co_return;
  }
  peer->identity = common::tls::peer_identity(tls->native_handle());

  auto conn = std::make_shared<Connection>(std::move(tls), Role::Server, settings);
  auto st = conn->start([handler = std::move(handler), peer](std::shared_ptr<Stream> s) {
    handler(std::move(s), peer);
  });
  if (!st) {
    if (hooks.on_handshake_error) hooks.on_handshake_error(st.error(), peer->remote);
    co_return;
  }
  if (hooks.on_connection) hooks.on_connection(conn);
}

}  // namespace hbone
