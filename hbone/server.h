// HBONE server side: takes an accepted TCP socket through the mutual-TLS handshake (bounded by
// Settings::handshake_timeout), checks ALPN h2, then runs an HTTP/2 server Connection whose
// CONNECT requests go to the handler with the peer's verified identity.
// Threading: runs on the socket's executor (one worker) for the connection's whole life.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <optional>

#include "common/identity/identity.h"
#include "hbone/connection.h"
#include "hbone/settings.h"
#include "hbone/tls_glue.h"

namespace hbone {

struct PeerInfo {
  std::optional<common::Identity> identity;
  boost::asio::ip::tcp::endpoint remote;
  boost::asio::ip::tcp::endpoint local;
};

using ConnectHandler = std::function<void(std::shared_ptr<Stream>, std::shared_ptr<const PeerInfo>)>;

struct ServeHooks {
  // The connection is up (after TLS and ALPN); e.g. to register it for drain.
  std::function<void(const std::shared_ptr<Connection>&)> on_connection;
  // The handshake failed; `why` names the reason (for logs and metrics).
  std::function<void(const std::string& why, const boost::asio::ip::tcp::endpoint& remote)> on_handshake_error;
};

boost::asio::awaitable<void> serve_connection(boost::asio::ip::tcp::socket socket, TlsContext ctx,
                                              Settings settings, ConnectHandler handler, ServeHooks hooks);

}  // namespace hbone
