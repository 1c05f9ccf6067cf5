#include "hbone/connection.h"

#include <nghttp2/nghttp2.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <spdlog/spdlog.h>

#include "hbone/connection_stats.h"
#include "hbone/overload.h"

namespace hbone {
namespace asio = boost::asio;

namespace {
// Bytes of framed output we buffer before pausing the session (back-pressure to nghttp2).
constexpr size_t kWriteBufferLimit = 512 * 1024;
// Largest DATA payload we frame at once (bounded by the peer's SETTINGS_MAX_FRAME_SIZE).
constexpr size_t kMaxDataPayload = 256 * 1024;
constexpr size_t kReadBuffer = 256 * 1024;

nghttp2_nv make_nv(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}
}  // namespace

// nghttp2 callbacks. user_data is the Connection.
struct Connection::Callbacks {
  static Connection& self(void* user_data) { return *static_cast<Connection*>(user_data); }

  static ssize_t send(nghttp2_session*, const uint8_t* data, size_t length, int, void* ud) {
    auto& c = self(ud);
    if (c.wbuf_.size() >= kWriteBufferLimit) return NGHTTP2_ERR_WOULDBLOCK;
    c.wbuf_.insert(c.wbuf_.end(), data, data + length);
    return static_cast<ssize_t>(length);
  }

  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                       nghttp2_data_source* source, void* ud) {
    auto& c = self(ud);
    if (c.wbuf_.size() >= kWriteBufferLimit) return NGHTTP2_ERR_WOULDBLOCK;
    auto* s = static_cast<Stream*>(source->ptr);
    size_t old = c.wbuf_.size();
    c.wbuf_.resize(old + 9 + length);
    std::memcpy(c.wbuf_.data() + old, framehd, 9);
    size_t got = s->frame_out(c.wbuf_.data() + old + 9, length);
    if (got != length) return NGHTTP2_ERR_CALLBACK_FAILURE;  // cannot happen: read_data sized it
    (void)frame;
    return 0;
  }

  static ssize_t read_data(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    size_t queued = s->send_queued();
    size_t n = queued < length ? queued : length;
    if (n == 0 && !s->write_shutdown()) return NGHTTP2_ERR_DEFERRED;
    if (n > 0) *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->write_shutdown() && n == queued) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static ssize_t data_length(nghttp2_session*, uint8_t, int32_t, int32_t session_window, int32_t stream_window,
                             uint32_t remote_max_frame, void*) {
    size_t n = kMaxDataPayload;
    if (remote_max_frame < n) n = remote_max_frame;
    auto w = static_cast<size_t>(std::max(0, std::min(session_window, stream_window)));
    if (w < n) n = w;
    return static_cast<ssize_t>(n == 0 ? 1 : n);
  }

  static int begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* ud) {
    auto& c = self(ud);
    if (c.role_ != Role::Server || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;
    }
    auto s = std::make_shared<Stream>(c.shared_from_this(), frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s.get());
    c.streams_.emplace(frame->hd.stream_id, std::move(s));
    c.streams_opened_++;
    c.header_block_started(frame->hd.stream_id);
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    auto& c = self(ud);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* s = c.stream_of(frame->hd.stream_id);
    if (s == nullptr) return 0;
    // RFC 7541 §4.1 size accounting; bounds HPACK-bomb style expansion per header block.
    s->header_bytes() += namelen + valuelen + 32;
    if (s->header_bytes() > c.settings_.max_header_list) {
      c.glitch();
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (c.role_ == Role::Server && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto& r = s->request();
      if (n == ":method") r.method = std::move(v);
      else if (n == ":authority") r.authority = std::move(v);
      else if (n == "baggage") r.baggage = std::move(v);
      else if (n == "forwarded") r.forwarded = std::move(v);
      else if (n == "traceparent") r.traceparent = std::move(v);
      else if (r.extra.size() < 64) r.extra.emplace_back(std::string(n), std::move(v));
    } else {
      if (n == ":status") {
        int st = 0;
        for (char ch : v) {
          if (ch < '0' || ch > '9') return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
          st = st * 10 + (ch - '0');
        }
        s->mutable_response_headers().emplace_back(":status", v);
      } else if (s->mutable_response_headers().size() < 64) {
        s->mutable_response_headers().emplace_back(std::string(n), std::move(v));
      }
    }
    return 0;
  }

  static int frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    auto& c = self(ud);
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        c.header_block_done(frame->hd.stream_id);
        Stream* s = c.stream_of(frame->hd.stream_id);
        if (s == nullptr) return 0;
        if (c.role_ == Role::Server && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          auto it = c.streams_.find(frame->hd.stream_id);
          if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->on_remote_eof();
          c.dispatch(it->second);
        } else if (c.role_ == Role::Client) {
          int status = 0;
          for (auto& [k, v] : s->response_headers()) {
            if (k == ":status") status = std::atoi(v.c_str());
          }
          if (status >= 200 && s->response_status() == 0) s->on_response(status);
          if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->on_remote_eof();
        }
        break;
      }
      case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
          if (Stream* s = c.stream_of(frame->hd.stream_id)) s->on_remote_eof();
        }
        break;
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) c.ping_outstanding_ = false;
        break;
      case NGHTTP2_SETTINGS:
        c.preface_done_ = true;  // the preface and the peer's first SETTINGS are in
        break;
      case NGHTTP2_GOAWAY:
        c.draining_ = true;  // no new streams from us; existing ones finish
        break;
      default:
        break;
    }
    return 0;
  }

  static int data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                        void* ud) {
    auto& c = self(ud);
    Stream* s = c.stream_of(stream_id);
    if (s == nullptr || s->failed()) {
      // Nobody will read it: give the window back at once.
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    // Bytes the stream delivered straight to its socket are consumed already: their window
    // goes back with the next flush (after this read buffer is processed).
    if (size_t direct = s->on_data(data, len); direct > 0) nghttp2_session_consume(session, stream_id, direct);
    return 0;
  }

  static int stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
    auto& c = self(ud);
    auto it = c.streams_.find(stream_id);
    if (it == c.streams_.end()) return 0;
    auto s = std::move(it->second);
    c.streams_.erase(it);
    c.header_block_done(stream_id);
    s->on_close(error_code);
    if (error_code != NGHTTP2_NO_ERROR && error_code != NGHTTP2_CANCEL) c.glitch();
    if (c.streams_.empty()) {
      // Posted: we are inside nghttp2_session_mem_recv, which still reads rbuf_.
      asio::post(c.exec_, [w = c.weak_from_this()] {
        auto cc = w.lock();
        if (!cc || !cc->streams_.empty()) return;
        cc->release_idle_memory();
        // A copy: the callback may drain and so close this connection, which clears on_idle.
        if (auto cb = cc->on_idle) cb();
      });
    }
    return 0;
  }

  static int invalid_frame(nghttp2_session*, const nghttp2_frame*, int, void* ud) {
    self(ud).glitch();
    return 0;
  }
};

Connection::Connection(std::unique_ptr<TlsSocket> tls, Role role, const Settings& settings)
    : tls_(std::move(tls)),
      exec_(tls_->get_executor()),
      role_(role),
      settings_(settings),
      ping_timer_(exec_),
      deadline_timer_(exec_) {}

Connection::Connection(asio::any_io_executor exec, Role role, const Settings& settings)
    : exec_(std::move(exec)), role_(role), settings_(settings), ping_timer_(exec_), deadline_timer_(exec_) {}

void Connection::feed(const uint8_t* data, size_t n) {
  if (dead_ || tls_) return;
  ssize_t rv = nghttp2_session_mem_recv(session_, data, n);
  if (rv < 0) {
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    flush();
    close(std::string("protocol error: ") + nghttp2_strerror(static_cast<int>(rv)));
    return;
  }
  flush();
}

Connection::~Connection() {
  if (held_ != 0) overload().account(held_, -static_cast<int64_t>(held_));
  if (session_ != nullptr) nghttp2_session_del(session_);
}

Stream* Connection::stream_of(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

common::Status Connection::start(RequestHandler handler) {
  handler_ = std::move(handler);
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, &Callbacks::send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, &Callbacks::send_data);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, &Callbacks::data_length);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, &Callbacks::invalid_frame);

  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_continuations(opt, settings_.max_continuations);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, settings_.max_outbound_ack);
  nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
  nghttp2_option_set_no_closed_streams(opt, 1);
  if (role_ == Role::Server) {
    nghttp2_option_set_stream_reset_rate_limit(opt, settings_.reset_burst, settings_.reset_rate_per_s);
  }
  // Until the peer's SETTINGS arrive, assume upstream's pool limit rather than "unlimited".
  nghttp2_option_set_peer_max_concurrent_streams(opt, 100);

  int rv = role_ == Role::Server ? nghttp2_session_server_new2(&session_, cbs, this, opt)
                                 : nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv != 0) return common::make_error(std::string("nghttp2 session: ") + nghttp2_strerror(rv));

  std::vector<nghttp2_settings_entry> iv = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.stream_window},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, settings_.max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_list},
  };
  if (role_ == Role::Server) {
    iv.push_back({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings_.max_concurrent_streams});
  } else {
    iv.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  }
  rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  if (rv == 0) {
    rv = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                               static_cast<int32_t>(settings_.connection_window));
  }
  if (rv != 0) return common::make_error(std::string("nghttp2 settings: ") + nghttp2_strerror(rv));

  if (tls_) {
    if (!rbuf_.allocate(kReadBuffer)) return common::make_error("read buffer: mmap failed");
    asio::co_spawn(exec_, [self = shared_from_this()]() { return self->read_loop(); }, asio::detached);
    asio::co_spawn(exec_, [self = shared_from_this()]() { return self->ping_loop(); }, asio::detached);
    start_deadlines();
  }
  flush();
  return common::ok_status();
}

asio::awaitable<void> Connection::read_loop() {
  auto self = shared_from_this();
  while (!dead_) {
    if (overload().should_pause(held_)) co_await wait_while_overloaded();
    if (dead_) break;
    auto [ec, n] = co_await tls_->read_some(std::span<uint8_t>(rbuf_.data(), rbuf_.size()));
    if (dead_) break;
    if (ec) {
      close(ec == asio::error::eof ? "peer closed" : ec.message());
      break;
    }
    rbuf_.filled(n);
    ssize_t rv = nghttp2_session_mem_recv(session_, rbuf_.data(), n);
    if (rv < 0) {
      // A connection-level protocol error: nghttp2 queued GOAWAY; send it, then stop reading
      // (never feed the session again after a fatal error).
      close_reason_ = std::string("protocol error: ") + nghttp2_strerror(static_cast<int>(rv));
      const auto why = rv == NGHTTP2_ERR_FLOODED ? ConnectionStats::kFlood : ConnectionStats::kProtocolError;
      ConnectionStats::bump(connection_stats().abuse_closes[why]);
      nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
      flush();
      if (!writing_) close(close_reason_);
      break;
    }
    flush();
    if (overload().should_shed(held_)) shed_largest_stream();
  }
}

asio::awaitable<void> Connection::ping_loop() {
  auto self = shared_from_this();
  while (!dead_) {
    ping_timer_.expires_after(settings_.ping_interval);
    auto [ec] = co_await ping_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (dead_ || ec) break;
    if (read_paused_) {  // the overload manager holds our reads: a PING ack could not be seen
      ping_outstanding_ = false;
      continue;
    }
    auto now = std::chrono::steady_clock::now();
    if (ping_outstanding_) {
      if (now - ping_sent_ > settings_.ping_timeout) {
        ConnectionStats::bump(connection_stats().timeouts[ConnectionStats::kPing]);
        close("ping timeout");
        break;
      }
      continue;
    }
    ping_outstanding_ = true;
    ping_sent_ = now;
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
    flush();
  }
}

void Connection::flush() {
  if (dead_ || session_ == nullptr || in_flush_) return;
  in_flush_ = true;
  for (;;) {
    int rv = nghttp2_session_send(session_);
    if (rv != 0) {
      in_flush_ = false;
      close(std::string("nghttp2 send: ") + nghttp2_strerror(rv));
      return;
    }
    if (writing_ || wbuf_.empty()) break;
    if (!tls_) {  // transport-less (fuzzing): the peer "reads" everything at once
      wbuf_.clear();
      continue;
    }
    // Fast path: the socket usually has room, so write now and go on framing.
    bool blocked = false;
    boost::system::error_code ec;
    size_t n = tls_->try_write(std::span<const uint8_t>(wbuf_.data(), wbuf_.size()), blocked, ec);
    if (ec) {
      in_flush_ = false;
      close(ec.message());
      return;
    }
    if (n == wbuf_.size()) {
      wbuf_.clear();
      continue;
    }
    inflight_.assign(wbuf_.begin() + static_cast<ptrdiff_t>(n), wbuf_.end());
    wbuf_.clear();
    write_async();
    break;
  }
  in_flush_ = false;
  maybe_finish();
}

void Connection::flush_soon() {
  if (flush_posted_ || dead_) return;
  flush_posted_ = true;
  asio::post(exec_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

// The socket is full: finish `inflight_` when it drains, then resume framing.
void Connection::write_async() {
  writing_ = true;
  asio::co_spawn(exec_, [self = shared_from_this()]() -> asio::awaitable<void> {
    auto ec = co_await self->tls_->write_all(std::span<const uint8_t>(self->inflight_.data(), self->inflight_.size()));
    self->writing_ = false;
    self->inflight_.clear();
    if (ec) {
      self->close(ec.message());
      co_return;
    }
    self->flush();
    if (!self->writing_ && !self->close_reason_.empty() && !self->dead_ &&
        nghttp2_session_want_read(self->session_) == 0) {
      self->close(self->close_reason_);
    }
  }, asio::detached);
}

void Connection::maybe_finish() {
  if (dead_ || writing_) return;
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
    close(close_reason_.empty() ? "session finished" : close_reason_);
  }
}

void Connection::glitch() {
  // Count protocol glitches per 10 s window: a flood trips the limit quickly, while a
  // long-lived pooled connection seeing the odd legitimate reset never does.
  auto now = std::chrono::steady_clock::now();
  if (now - glitch_window_ > std::chrono::seconds(10)) {
    glitch_window_ = now;
    glitches_ = 0;
  }
  if (++glitches_ == settings_.max_glitches) {
    ConnectionStats::bump(connection_stats().abuse_closes[ConnectionStats::kTooManyGlitches]);
    close_reason_ = "too many protocol errors from peer";
    nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

void Connection::dispatch(std::shared_ptr<Stream> s) {
  if (s->request().method != "CONNECT") {
    s->respond(400);
    return;
  }
  if (!handler_) {
    s->respond(503);
    return;
  }
  // Never run application code inside an nghttp2 callback.
  asio::post(exec_, [h = handler_, s = std::move(s)]() mutable { h(std::move(s)); });
}

asio::awaitable<common::Result<std::shared_ptr<Stream>>> Connection::open(ConnectRequest req) {
  using R = common::Result<std::shared_ptr<Stream>>;
  if (dead_) co_return R(common::make_error("connection closed: " + close_reason_));
  if (draining_) co_return R(common::make_error("connection draining"));
  std::string m = "CONNECT", a = req.authority;
  std::vector<std::pair<std::string, std::string>> hs = {{":method", m}, {":authority", a}};
  if (!req.baggage.empty()) hs.emplace_back("baggage", req.baggage);
  if (!req.forwarded.empty()) hs.emplace_back("forwarded", req.forwarded);
  if (!req.traceparent.empty()) hs.emplace_back("traceparent", req.traceparent);
  for (auto& h : req.extra) hs.push_back(h);
  std::vector<nghttp2_nv> nva;
  nva.reserve(hs.size());
  for (auto& [k, v] : hs) nva.push_back(make_nv(k, v));

  // The stream must exist before submit so the data provider can point at it; its id is
  // known only after submit_request.
  auto real = std::make_shared<Stream>(shared_from_this(), 0);
  nghttp2_data_provider prd{};
  prd.source.ptr = real.get();
  prd.read_callback = &Callbacks::read_data;
  int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &prd, real.get());
  if (id < 0) co_return R(common::make_error(std::string("submit CONNECT: ") + nghttp2_strerror(id)));
  real->set_id(id);
  streams_.emplace(id, real);
  streams_opened_++;
  flush();
  bool ok = co_await real->wait_response();
  if (!ok) {
    std::string why = real->response_status() != 0 ? "status " + std::to_string(real->response_status())
                                                    : (real->failed() ? real->failure() : "no response");
    if (!real->closed()) real->reset(NGHTTP2_CANCEL);
    co_return R(common::make_error(why));
  }
  co_return R(std::move(real));
}

void Connection::resume(int32_t stream_id) {
  if (!dead_ && stream_id > 0) nghttp2_session_resume_data(session_, stream_id);
}

void Connection::consume(int32_t stream_id, size_t n) {
  if (dead_ || n == 0) return;
  nghttp2_session_consume(session_, stream_id, n);
  flush_soon();
}

void Connection::submit_response(Stream& s, int status, const std::vector<Header>& headers) {
  if (dead_) return;
  std::string st = std::to_string(status);
  std::string status_name = ":status";
  std::vector<nghttp2_nv> nva;
  nva.push_back(make_nv(status_name, st));
  for (auto& [k, v] : headers) nva.push_back(make_nv(k, v));
  if (status >= 200 && status < 300) {
    nghttp2_data_provider prd{};
    prd.source.ptr = &s;
    prd.read_callback = &Callbacks::read_data;
    nghttp2_submit_response(session_, s.id(), nva.data(), nva.size(), &prd);
  } else {
    nghttp2_submit_response(session_, s.id(), nva.data(), nva.size(), nullptr);
  }
}

void Connection::submit_reset(int32_t stream_id, uint32_t h2_error) {
  if (!dead_) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, h2_error);
}

void Connection::drain() {
  if (dead_ || draining_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  flush();
  if (streams_.empty()) {
    // Let the GOAWAY leave, then close.
    close_reason_ = "drained";
    if (!writing_) close("drained");
  }
}

void Connection::release_idle_memory() {
  // Below this much, keep everything: a connection that carries one small stream after
  // another must not pay a madvise and fresh page faults per stream.
  constexpr size_t kWorthReleasing = 64 * 1024;
  if (dead_ || !streams_.empty()) return;
  // No suspension point of read_loop holds bytes in rbuf_ (each read is fully fed to nghttp2).
  if (rbuf_.touched() >= kWorthReleasing) {
    rbuf_.release();
    if (tls_) tls_->release_buffers();
  }
  if (wbuf_.empty() && wbuf_.capacity() >= kWorthReleasing) std::vector<uint8_t>().swap(wbuf_);
  if (!writing_ && inflight_.capacity() >= kWorthReleasing) std::vector<uint8_t>().swap(inflight_);
}

bool Connection::can_open_stream(uint32_t limit) const {
  if (dead_ || draining_) return false;
  uint32_t peer = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  uint32_t cap = peer < limit ? peer : limit;
  return streams_.size() < cap && nghttp2_session_check_request_allowed(session_) != 0;
}

void Connection::close(const std::string& why) {
  if (dead_) return;
  dead_ = true;
  if (close_reason_.empty()) close_reason_ = why;
  if (tls_) tls_->close();
  ping_timer_.cancel();
  deadline_timer_.cancel();
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) s->fail("connection closed: " + close_reason_);
  if (on_closed) {
    auto cb = std::move(on_closed);
    on_closed = nullptr;
    cb();
  }
  on_idle = nullptr;
  handler_ = nullptr;
}

}  // namespace hbone
