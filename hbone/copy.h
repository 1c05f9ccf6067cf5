// Bidirectional copy between a TCP socket and an HBONE stream, with real back-pressure in both
// directions and half-close carried across (socket EOF -> END_STREAM, END_STREAM -> shutdown).
//
// socket -> stream: the socket is read straight into the stream's send queue, and only when
// that queue has room, so a slow peer stalls the socket reader (TCP back-pressure) instead of
// growing memory. Reads grow 1 KiB -> 16 KiB after 128 KiB -> 256 KiB after 10 MiB, like upstream,
// so idle tunnels stay small and bulk ones make few syscalls.
// stream -> socket: bytes are written from the stream's receive queue and only then consumed,
// which is what reopens the HTTP/2 window.
// Threading: both directions run on the socket's executor, which must be the stream's.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "hbone/stream.h"

namespace hbone {

struct CopyResult {
  uint64_t to_stream = 0;  // bytes read from the socket and sent into the tunnel
  uint64_t to_socket = 0;  // bytes received from the tunnel and written to the socket
  std::string error;       // empty on a clean close of both directions
};

boost::asio::awaitable<CopyResult> copy_bidirectional(boost::asio::ip::tcp::socket& socket,
                                                      std::shared_ptr<Stream> stream);

// Plain TCP <-> TCP copy (passthrough and inbound plaintext paths), same buffering policy.
boost::asio::awaitable<CopyResult> copy_bidirectional(boost::asio::ip::tcp::socket& a,
                                                      boost::asio::ip::tcp::socket& b);

}  // namespace hbone
