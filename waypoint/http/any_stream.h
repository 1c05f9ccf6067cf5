// AnyStream: one byte stream that is either an HBONE tunnel (hbone::Stream) or a plain TCP
// socket, as an Asio AsyncReadStream/AsyncWriteStream, so the HTTP/1.1 codec (Beast) and the
// upgrade relay are written once for the downstream tunnel, HBONE upstreams and plain TCP
// upstreams (endpoints that are not in the mesh).
// abort() ends the stream at once (RST_STREAM / close): pending reads and writes complete with
// an error. That is how timeouts stop an exchange, because hbone::Stream operations do not
// support Asio per-operation cancellation.
// Threading: every member on the stream's executor (one worker).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <utility>

#include "hbone/stream.h"

namespace waypoint::http {

class AnyStream {
 public:
  using executor_type = boost::asio::any_io_executor;

  explicit AnyStream(std::shared_ptr<hbone::Stream> s) : tunnel_(std::move(s)) {}
  explicit AnyStream(boost::asio::ip::tcp::socket s) : socket_(std::move(s)) {}
  AnyStream(AnyStream&&) = default;
  AnyStream& operator=(AnyStream&&) = default;

  executor_type get_executor() { return tunnel_ ? tunnel_->get_executor() : socket_->get_executor(); }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& b, Token&& token) {
    if (tunnel_) return tunnel_->async_read_some(b, std::forward<Token>(token));
    return socket_->async_read_some(b, std::forward<Token>(token));
  }
  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& b, Token&& token) {
    if (tunnel_) return tunnel_->async_write_some(b, std::forward<Token>(token));
    return socket_->async_write_some(b, std::forward<Token>(token));
  }

  // Half-close: END_STREAM / shutdown(SHUT_WR).
  void shutdown_write() {
    if (tunnel_) {
      tunnel_->shutdown_write();
    } else {
      boost::system::error_code ec;
      socket_->shutdown(boost::asio::socket_base::shutdown_send, ec);
    }
  }
  void abort() {
    if (tunnel_) {
      if (!tunnel_->closed()) tunnel_->reset();
    } else {
      boost::system::error_code ec;
      socket_->close(ec);
    }
  }
  // Still usable for another request (keep-alive reuse check).
  bool usable() const {
    if (tunnel_) return !tunnel_->closed() && !tunnel_->failed() && !tunnel_->remote_closed();
    return socket_->is_open();
  }
  bool is_tunnel() const { return tunnel_ != nullptr; }
  hbone::Stream* tunnel() { return tunnel_.get(); }

 private:
  std::shared_ptr<hbone::Stream> tunnel_;
  std::optional<boost::asio::ip::tcp::socket> socket_;
};

}  // namespace waypoint::http
