// Bidirectional copy between a TCP socket and an HBONE stream, with real back-pressure in both
// directions and half-close carried across (socket EOF -> END_STREAM, END_STREAM -> shutdown).
//
// socket -> stream: the socket is read straight into the stream's send queue, and only when
// that queue has room, so a slow peer stalls the socket reader (TCP back-pressure) instead of
// growing memory. Reads grow 1 KiB -> 16 KiB after 128 KiB -> 256 KiB after 10 MiB, like upstream,
// so idle tunnels stay small and bulk ones make few syscalls.
// stream -> socket: bytes are written from the stream's receive queue and only then consumed,
// which is what reopens the HTTP/2 window.
// Progress: the overloads taking a CopyResult& update it as bytes move (plain fields, same
// thread), so the caller can report a long connection's bytes before it ends (ztunnel's byte
// counters) without a per-chunk atomic. Bytes the stream delivered directly to the socket are
// counted when the copy next wakes; a reader on the same thread may fold them in earlier with
// Stream::take_direct_bytes().
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

// The same copies, accumulating into the caller's `progress` while they run (to_stream is
// a -> b for the socket pair). `progress` must outlive the copy.
boost::asio::awaitable<void> copy_bidirectional(boost::asio::ip::tcp::socket& socket, std::shared_ptr<Stream> stream,
                                                CopyResult& progress);
boost::asio::awaitable<void> copy_bidirectional(boost::asio::ip::tcp::socket& a, boost::asio::ip::tcp::socket& b,
                                                CopyResult& progress);

}  // namespace hbone
