// HBONE client side: dial a peer's 15008 (packet-marked socket, bounded connect), run the
// mutual-TLS handshake expecting one of the given SPIFFE identities, check ALPN h2, and start
// an HTTP/2 client Connection. Threading: the returned connection lives on `exec`.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "common/identity/identity.h"
#include "common/result.h"
#include "hbone/connect_result.h"
#include "hbone/connection.h"
#include "hbone/settings.h"
#include "hbone/tls_glue.h"

namespace hbone {

struct DialOptions {
  boost::asio::ip::tcp::endpoint target;
  std::vector<common::Identity> expected;  // server must present one of these
  uint32_t mark = 0;                       // SO_MARK (0 = none)
  std::chrono::milliseconds connect_timeout{10'000};
  Settings settings = Settings::client_defaults();
  // Creates the TCP socket (e.g. inside a pod's network namespace) with its TCP options
  // (keepalive, user timeout); nullptr = ::socket here with upstream's default options.
  // Returns an fd or -1.
  std::function<int(int family)> socket_factory;
};

// On failure, stage() tells whether TCP, TLS or HTTP/2 set-up failed.
boost::asio::awaitable<ConnectResult<std::shared_ptr<Connection>>> dial(boost::asio::any_io_executor exec,
                                                                       TlsContext ctx, DialOptions opts);

// Opens a marked, non-blocking TCP connection with a deadline (shared by HBONE and
// passthrough paths). The socket comes from `socket_factory` (which sets its options) or,
// without one, gets sockopt::SocketConfig's defaults.
boost::asio::awaitable<common::Result<boost::asio::ip::tcp::socket>> connect_tcp(
    boost::asio::any_io_executor exec, boost::asio::ip::tcp::endpoint target, uint32_t mark,
    std::chrono::milliseconds timeout, std::optional<boost::asio::ip::address> bind_source = std::nullopt,
    std::function<int(int family)> socket_factory = nullptr);

}  // namespace hbone
