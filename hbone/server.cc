#include "hbone/server.h"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hbone {
namespace asio = boost::asio;
using asio::ip::tcp;

asio::awaitable<void> serve_connection(tcp::socket socket, TlsContext ctx, Settings settings,
                                       ConnectHandler handler, ServeHooks hooks) {
  boost::system::error_code ec;
  auto peer = std::make_shared<PeerInfo>();
  peer->remote = socket.remote_endpoint(ec);
  peer->local = socket.local_endpoint(ec);
  auto tls = std::make_unique<TlsStream>(std::move(socket), *ctx);
  // Asio's engine turns buffer release on per SSL; bulk tunnels want the buffers kept.
  SSL_clear_mode(tls->native_handle(), SSL_MODE_RELEASE_BUFFERS);

  // Bound the handshake: a peer that trickles (or never sends) its ClientHello is closed.
  asio::steady_timer deadline(tls->get_executor());
  deadline.expires_after(settings.handshake_timeout);
  bool timed_out = false;
  deadline.async_wait([&tls, &timed_out](boost::system::error_code e) {
    if (!e) {
      timed_out = true;
      boost::system::error_code ignored;
      tls->lowest_layer().close(ignored);
    }
  });
  auto [hec] = co_await tls->async_handshake(asio::ssl::stream_base::server, asio::as_tuple(asio::use_awaitable));
  deadline.cancel();
  if (hec || timed_out) {
    std::string why = timed_out ? "handshake timeout" : hec.message();
    std::string spiffe = common::tls::verify_failure(tls->native_handle());
    if (!spiffe.empty()) why += " (" + spiffe + ")";
    else if (auto ossl = common::tls::drain_openssl_errors(); !ossl.empty()) why += " (" + ossl + ")";
    if (hooks.on_handshake_error) hooks.on_handshake_error(why, peer->remote);
    co_return;
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(tls->native_handle(), &alpn, &alpn_len);
  if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
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
