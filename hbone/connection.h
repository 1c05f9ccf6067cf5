// Connection: one HBONE connection — TLS 1.3 + an nghttp2 session — carrying many CONNECT
// streams, in either role.
//
// Server role: every CONNECT request is handed to the RequestHandler (posted, never called from
// inside nghttp2); non-CONNECT methods get 400 without reaching it. Client role: open() starts
// a CONNECT and resolves when the response arrives.
//
// I/O: one read loop feeds nghttp2_session_mem_recv; writes are batched into a bounded buffer
// (double-buffered so framing continues while a write is in flight). DATA payloads go from the
// stream's queue straight into that buffer (NGHTTP2_DATA_FLAG_NO_COPY). Receive windows are
// only reopened when a reader consumes bytes (no automatic WINDOW_UPDATE).
//
// Abuse handling: nghttp2's reset-rate limit, CONTINUATION cap, SETTINGS entry cap and
// outbound-ack cap are set; decoded header lists are bounded by us; protocol "glitches" (invalid
// frames, streams we reset) are counted and past a limit the connection gets GOAWAY
// (ENHANCE_YOUR_CALM). Every failure stays on this connection.
//
// Threading: all members run on the connection's executor (one worker). Lifetime: shared_ptr;
// the read loop, in-flight writes and open streams each hold a reference.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "hbone/page_buffer.h"
#include "hbone/settings.h"
#include "hbone/stream.h"
#include "hbone/tls_socket.h"

typedef struct nghttp2_session nghttp2_session;

namespace hbone {

enum class Role { Client, Server };

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using RequestHandler = std::function<void(std::shared_ptr<Stream>)>;

  Connection(std::unique_ptr<TlsSocket> tls, Role role, const Settings& settings);
  // No transport: bytes are fed with feed() and output is discarded. For fuzzing the
  // HTTP/2 + CONNECT layer at full speed (the TLS layer is OpenSSL's, fuzzed upstream).
  Connection(boost::asio::any_io_executor exec, Role role, const Settings& settings);
  // Transport-less connections only: process `data` as if read from the peer.
  void feed(const uint8_t* data, size_t n);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends our SETTINGS and starts reading. Server role requires a handler.
  common::Status start(RequestHandler handler = nullptr);

  // Client role: sends a CONNECT; resolves to the stream once a 2xx arrives, else an error
  // ("status 401", "connection closed", ...). Non-2xx streams are closed by then.
  boost::asio::awaitable<common::Result<std::shared_ptr<Stream>>> open(ConnectRequest req);

  // Graceful: GOAWAY(NO_ERROR) with the last processed stream; live streams finish.
  void drain();
  // Abrupt: close the socket, fail every stream.
  void close(const std::string& why = "closed");

  bool is_open() const { return !dead_; }
  bool draining() const { return draining_; }
  // Client role: may this connection take another stream (pool check)?
  bool can_open_stream(uint32_t limit) const;
  size_t active_streams() const { return streams_.size(); }
  uint64_t streams_opened() const { return streams_opened_; }

  TlsSocket& tls() { return *tls_; }
  boost::asio::any_io_executor executor() { return exec_; }
  const std::string& close_reason() const { return close_reason_; }

  // Called once when the connection is finished (pool bookkeeping). Same thread.
  std::function<void()> on_closed;
  // Called when the number of streams drops to zero (client pools start idle timers).
  std::function<void()> on_idle;

  // --- for Stream (same thread) ---
  void flush();
  // flush() once the handlers already queued on the executor have run: what several streams
  // (or one stream's head, body and window update) commit in one pass of the event loop leaves
  // in one TLS write instead of one write (one record, one syscall, one packet) each.
  void flush_soon();
  void resume(int32_t stream_id);
  void consume(int32_t stream_id, size_t n);
  void submit_response(Stream& s, int status, const std::vector<Header>& headers);
  void submit_reset(int32_t stream_id, uint32_t h2_error);
  // Overload accounting: this connection's queued stream bytes changed by `delta`.
  void account(int64_t delta);
  // Reading is paused by the overload manager (streams stop taking bytes from their apps).
  bool read_paused() const { return read_paused_; }
  uint64_t buffered() const { return held_; }

  // --- nghttp2 callback trampolines (internal) ---
  struct Callbacks;

 private:
  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> ping_loop();
  void write_async();
  void maybe_finish();
  // Once the last stream is gone: gives back the buffers a burst grew (read buffer pages,
  // OpenSSL's record buffers, the framing vectors). Each comes back on its next use.
  void release_idle_memory();
  void glitch();
  void dispatch(std::shared_ptr<Stream> s);
  Stream* stream_of(int32_t id);
  // Deadlines and overload (hbone/connection_limits.cc).
  void start_deadlines();
  void header_block_started(int32_t stream_id);
  void header_block_done(int32_t stream_id);
  void arm_deadline(std::chrono::steady_clock::time_point at);
  void check_deadlines();
  void abuse_close(int reason, const std::string& why);
  boost::asio::awaitable<void> wait_while_overloaded();
  void shed_largest_stream();
  std::string peer_name();

  std::unique_ptr<TlsSocket> tls_;
  boost::asio::any_io_executor exec_;
  Role role_;
  Settings settings_;
  nghttp2_session* session_ = nullptr;
  RequestHandler handler_;
  std::unordered_map<int32_t, std::shared_ptr<Stream>> streams_;
  std::vector<uint8_t> wbuf_;
  std::vector<uint8_t> inflight_;
  bool writing_ = false;
  bool dead_ = false;
  bool draining_ = false;
  bool in_flush_ = false;
  bool flush_posted_ = false;
  uint32_t glitches_ = 0;
  std::chrono::steady_clock::time_point glitch_window_{};
  uint64_t streams_opened_ = 0;
  std::string close_reason_;
  boost::asio::steady_timer ping_timer_;
  std::chrono::steady_clock::time_point ping_sent_{};
  bool ping_outstanding_ = false;
  // Deadlines (server role): preface, then each CONNECT header block in progress.
  boost::asio::steady_timer deadline_timer_;
  bool deadline_armed_ = false;
  bool preface_done_ = false;
  std::chrono::steady_clock::time_point started_at_{};
  std::chrono::steady_clock::time_point header_block_at_{};  // epoch = none in progress
  int32_t header_block_stream_ = 0;
  // Overload: bytes queued in this connection's streams; whether reading is paused.
  uint64_t held_ = 0;
  bool read_paused_ = false;
  // Pages are only touched as far as reads fill them, so an idle connection does not pay RSS
  // for the full read buffer; release_idle_memory() returns what a burst touched.
  PageBuffer rbuf_;
};

}  // namespace hbone
