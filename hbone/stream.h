// Stream: one HBONE tunnel = one HTTP/2 CONNECT stream on a Connection.
//
// After the CONNECT succeeds the stream is a bidirectional byte pipe:
//   - receive: wait_readable() then readable()/consume(). consume() is what reopens the HTTP/2
//     flow-control window, so the peer can never get more than one window ahead of whatever
//     the reader has actually passed on (end-to-end back-pressure).
//   - send: wait_writable() then prepare_write()/commit_write(), or write(); bytes queue in the
//     stream until the session frames them. shutdown_write() sends END_STREAM after them.
// Threading: every member runs on the owning connection's executor (one worker thread); no
// locks. The stream keeps its connection alive; the connection drops its references when the
// stream closes, so there is no leak on either side.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "common/wakeup.h"
#include "hbone/byte_queue.h"

namespace hbone {

class Connection;

using Header = std::pair<std::string, std::string>;

// What a CONNECT request carried (server side) or will carry (client side).
struct ConnectRequest {
  std::string method;     // "CONNECT" (server side may see others; they get 400)
  std::string authority;  // ip:port or [v6]:port
  std::string baggage;
  std::string forwarded;
  std::string traceparent;
  std::vector<Header> extra;  // client side: additional headers to send
};

class Stream : public std::enable_shared_from_this<Stream> {
 public:
  Stream(std::shared_ptr<Connection> conn, int32_t id);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int32_t id() const { return id_; }
  void set_id(int32_t id) { id_ = id; }  // client side: known after submit
  Connection& connection() { return *conn_; }

  // Server side: answer the CONNECT. 200 opens the tunnel; anything else ends the stream.
  void respond(int status, const std::vector<Header>& headers = {});

  // Client side: the response status (0 while pending) and its headers.
  int response_status() const { return status_; }
  const std::vector<Header>& response_headers() const { return response_headers_; }

  // Receive side. wait_readable() returns true when readable() is non-empty, false at clean
  // end of stream or on error (see failed()).
  boost::asio::awaitable<bool> wait_readable();
  std::span<const uint8_t> readable() const { return recv_.front(); }
  void consume(size_t n);
  bool remote_closed() const { return remote_eof_; }

  // Direct delivery (copy_bidirectional's relay): while a sink socket is set and nothing is
  // queued, received DATA is written straight from the connection's read buffer to it
  // (non-blocking), saving a copy of every byte when the socket keeps up; whatever it does not
  // take is queued as usual, so order and back-pressure are unchanged. nullptr turns it off;
  // a sink that gets closed is noticed (is_open) before every write.
  // Bytes written this way never appear in readable(); take_direct_bytes() counts them.
  void set_direct_sink(boost::asio::ip::tcp::socket* sink) { sink_ = sink; }
  uint64_t take_direct_bytes() { return std::exchange(direct_bytes_, 0); }

  // Send side. wait_writable() returns false when the stream can no longer send.
  boost::asio::awaitable<bool> wait_writable();
  std::span<uint8_t> prepare_write(size_t want) { return send_.prepare(want); }
  void commit_write(size_t n);
  boost::asio::awaitable<bool> write(std::span<const uint8_t> data);
  void shutdown_write();

  // Abort with RST_STREAM (default CANCEL).
  void reset(uint32_t h2_error = 0x8);

  // Asio AsyncReadStream / AsyncWriteStream: lets generic code (asio::async_read, Beast
  // parsers in the waypoint) run over a tunnel. EOF = clean END_STREAM; a reset or a dead
  // connection is connection_reset. Completions are posted, never run inside the initiating
  // call (Asio's rule): composed operations re-initiate from the handler, and with buffered
  // bytes an inline completion nests one stack level per read until the stack overflows.
  using executor_type = boost::asio::any_io_executor;
  executor_type get_executor() { return executor(); }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [self = shared_from_this(), buffers](auto handler) {
          auto ex = executor_for(handler, self->executor());
          if (boost::asio::buffer_size(buffers) == 0 || self->read_ready()) {
            // Fast path (the common case under load: the bytes are already queued): complete
            // without a coroutine frame, still posted.
            boost::system::error_code ec;
            std::size_t n = 0;
            if (boost::asio::buffer_size(buffers) == 0) {
            } else if (!self->recv_.empty()) {
              auto d = self->readable();
              n = boost::asio::buffer_copy(buffers, boost::asio::buffer(d.data(), d.size()));
              self->consume(n);
            } else {
              ec = self->end_error();
            }
            boost::asio::post(ex, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
            return;
          }
          boost::asio::co_spawn(
              self->executor(),
              [self, buffers, h = std::move(handler), ex]() mutable -> boost::asio::awaitable<void> {
                boost::system::error_code ec;
                std::size_t n = 0;
                if (boost::asio::buffer_size(buffers) == 0) {
                } else if (co_await self->wait_readable()) {
                  auto d = self->readable();
                  n = boost::asio::buffer_copy(buffers, boost::asio::buffer(d.data(), d.size()));
                  self->consume(n);
                } else {
                  ec = self->end_error();
                }
                boost::asio::post(ex, [h = std::move(h), ec, n]() mutable { std::move(h)(ec, n); });
              },
              boost::asio::detached);
        },
        token);
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [self = shared_from_this(), buffers](auto handler) {
          auto ex = executor_for(handler, self->executor());
          const WriteState state = self->write_state();
          if (boost::asio::buffer_size(buffers) == 0 || state != WriteState::Full) {
            // Fast path (room in the send queue, or no longer writable): no coroutine frame.
            boost::system::error_code ec;
            std::size_t n = 0;
            if (boost::asio::buffer_size(buffers) == 0) {
            } else if (state == WriteState::Ready) {
              auto room = self->prepare_write(boost::asio::buffer_size(buffers));
              n = boost::asio::buffer_copy(boost::asio::buffer(room.data(), room.size()), buffers);
              self->commit_write(n);
            } else {
              ec = boost::asio::error::connection_reset;
            }
            boost::asio::post(ex, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
            return;
          }
          boost::asio::co_spawn(
              self->executor(),
              [self, buffers, h = std::move(handler), ex]() mutable -> boost::asio::awaitable<void> {
                boost::system::error_code ec;
                std::size_t n = 0;
                if (boost::asio::buffer_size(buffers) == 0) {
                } else if (co_await self->wait_writable()) {
                  auto room = self->prepare_write(boost::asio::buffer_size(buffers));
                  n = boost::asio::buffer_copy(boost::asio::buffer(room.data(), room.size()), buffers);
                  self->commit_write(n);
                } else {
                  ec = boost::asio::error::connection_reset;
                }
                boost::asio::post(ex, [h = std::move(h), ec, n]() mutable { std::move(h)(ec, n); });
              },
              boost::asio::detached);
        },
        token);
  }

  bool failed() const { return failed_; }
  const std::string& failure() const { return failure_; }
  bool closed() const { return closed_; }

  // --- used by Connection (same thread) ---
  size_t on_data(const uint8_t* data, size_t n);  // returns bytes delivered directly (window to return)
  void on_remote_eof();
  void on_response(int status);
  void on_close(uint32_t h2_error);
  void fail(std::string why);
  size_t frame_out(uint8_t* out, size_t max);   // moves queued send bytes into a frame
  size_t send_queued() const { return send_.size(); }
  // Bytes queued in this stream (receive + send): what the overload manager accounts.
  size_t buffered() const { return recv_.size() + send_.size(); }
  bool write_shutdown() const { return write_shutdown_; }
  ConnectRequest& request() { return request_; }
  std::vector<Header>& mutable_response_headers() { return response_headers_; }
  size_t& header_bytes() { return header_bytes_; }
  boost::asio::awaitable<bool> wait_response();

 private:
  // What wait_writable() would decide right now: Ready (room: true at once), Closed (false),
  // Full (it would wait: the queue at its limit, or the connection paused by overload).
  enum class WriteState : uint8_t { Ready, Closed, Full };
  WriteState write_state() const;
  // wait_readable() would return at once: bytes queued, or the end (clean or not) reached.
  bool read_ready() const { return !recv_.empty() || remote_eof_ || failed_ || closed_; }
  // What a read past the last byte reports: EOF after a clean END_STREAM, else a reset.
  boost::system::error_code end_error() const {
    return failed_ && !remote_eof_ ? boost::system::error_code(boost::asio::error::connection_reset)
                                   : boost::system::error_code(boost::asio::error::eof);
  }
  void wake_readers();
  void wake_writers();
  // Reports a change of buffered() to the connection (overload accounting).
  void sync_accounting();
  boost::asio::any_io_executor executor();
  template <typename Handler>
  static auto executor_for(const Handler& h, const boost::asio::any_io_executor& fallback) {
    return boost::asio::get_associated_executor(h, fallback);
  }

  std::shared_ptr<Connection> conn_;
  int32_t id_;
  ByteQueue recv_;
  ByteQueue send_;
  common::Wakeup read_signal_;
  common::Wakeup write_signal_;
  ConnectRequest request_;
  std::vector<Header> response_headers_;
  size_t header_bytes_ = 0;
  int status_ = 0;
  bool remote_eof_ = false;
  bool write_shutdown_ = false;
  boost::asio::ip::tcp::socket* sink_ = nullptr;
  uint64_t direct_bytes_ = 0;
  size_t accounted_ = 0;  // buffered() as last reported to the connection
  bool closed_ = false;
  bool failed_ = false;
  bool responded_ = false;
  std::string failure_;
};

}  // namespace hbone
