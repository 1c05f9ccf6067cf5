#include "waypoint/http/h2_session.h"

#include "waypoint/http/body.h"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <map>
#include <vector>

namespace waypoint::http {

namespace asio = boost::asio;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// Bytes queued for nghttp2 on one stream before its source is pulled again.
constexpr size_t kOutHighWater = 256 * 1024;

// One HTTP/2 stream: what arrived (a request on the server, a response on the client) and is
// waiting for its body reader, what goes out (the other message's body and trailers, pulled
// from its source by a pump), and the client's waiter.
struct StreamState {
  explicit StreamState(asio::any_io_executor ex) : in_signal(ex), out_space(ex), waiter(ex) {}
  ~StreamState() { finish_response(false); }
  int32_t id = 0;
  // Received head.
  Request request;
  Response response;
  bool got_final_headers = false;  // client: a non-1xx :status arrived (next HEADERS = trailers)
  bool in_trailers = false;
  std::string cookies;        // HTTP/2 splits cookies across fields; joined with "; " (RFC 9113 §8.2.3)
  bool head_request = false;  // client: the request was HEAD (no body expected)
  // Received body, until its reader takes it (then WINDOW_UPDATE).
  std::string in_buf;
  bool in_end = false;
  bool has_reader = false;
  bool reader_gone = false;
  HeaderList in_trailer_fields;
  Signal in_signal;
  // Sent body: out_buf[out_off..] waits for nghttp2; the pump refills it from out_source.
  std::string out_buf;
  size_t out_off = 0;
  bool out_eof = false;
  bool deferred = false;
  bool data_started = false;
  HeaderList out_trailers;
  std::shared_ptr<BodyReader> out_source;
  uint64_t out_bytes = 0;
  Signal out_space;
  bool responded = false;
  H2Session::ResponseDone on_done;
  // Stream over.
  bool closed = false;
  bool done = false;  // client: headers arrived or the stream ended
  uint32_t error_code = 0;
  std::string detail;
  Signal waiter;  // client: woken when the response headers arrive or the stream ends

  void finish_response(bool complete) {
    if (!on_done) return;
    auto d = std::move(on_done);
    on_done = nullptr;
    d(complete, out_bytes);
  }
};

std::string_view view(const uint8_t* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

nghttp2_nv nv(std::string_view name, std::string_view value) {
  nghttp2_nv v;
  v.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
  v.namelen = name.size();
  v.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
  v.valuelen = value.size();
  v.flags = NGHTTP2_NV_FLAG_NONE;
  return v;
}

// Headers a proxy never forwards into HTTP/2 (connection-specific: RFC 9113 §8.2.2) plus the
// framing headers the codec recomputes. `te` passes only as "trailers" (gRPC needs it).
bool skip_outgoing(const router::HeaderField& f) {
  if (f.name == "te") return f.value != "trailers";
  if (f.name == "host" || f.name == "content-length" || f.name == "upgrade") return true;
  return is_hop_by_hop(f.name);
}

bool grpc_content(const HeaderList& h) {
  auto ct = h.get("content-type");
  return ct && ct->starts_with("application/grpc");
}

bool status_has_body(int status) {
  return !(status < 200 || status == 204 || status == 304);
}

}  // namespace

struct H2Session::Impl {
  Impl(AnyStream s, Options o, bool server, RequestHandler h)
      : stream(std::move(s)), opts(o), is_server(server), handler(std::move(h)), writer_done(stream.get_executor()) {}
  ~Impl() {
    if (session) nghttp2_session_del(session);
  }

  H2Session* self = nullptr;
  AnyStream stream;
  Options opts;
  bool is_server;
  RequestHandler handler;
  nghttp2_session* session = nullptr;
  std::map<int32_t, std::shared_ptr<StreamState>> streams;
  std::string out;
  bool writing = false;
  bool closed = false;
  bool retired = false;
  bool goaway_received = false;
  bool receiving = false;  // inside nghttp2_session_mem_recv: no mem_send until it returns
  std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
  asio::steady_timer writer_done;

  std::shared_ptr<StreamState> state(int32_t id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second;
  }

  // Frames nghttp2 queued go out from one writer coroutine at a time; kick() starts it when idle.
  void kick() {
    if (writing || closed || receiving || !session) return;
    if (!nghttp2_session_want_write(session)) {
      maybe_finish();
      return;
    }
    writing = true;
    asio::co_spawn(stream.get_executor(), write_loop(self->shared_from_this()), asio::detached);
  }

  asio::awaitable<void> write_loop(std::shared_ptr<H2Session> keep) {
    while (!closed) {
      out.clear();
      while (!closed) {
        const uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(session, &data);
        if (n < 0) {
          spdlog::debug("h2: send failed: {}", nghttp2_strerror(static_cast<int>(n)));
          fail_transport();
          break;
        }
        if (n == 0) break;
        out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
        if (out.size() >= 64 * 1024) break;
      }
      if (out.empty() || closed) break;
      auto [ec, n] = co_await asio::async_write(stream, asio::buffer(out), kTuple);
      if (ec) {
        fail_transport();
        break;
      }
    }
    writing = false;
    writer_done.cancel();
    maybe_finish();
  }

  // Nothing more to read or write (both GOAWAYs done, or a retired client is idle): close.
  void maybe_finish() {
    if (closed || !session || writing) return;
    if (retired && streams.empty() && !nghttp2_session_want_write(session)) {
      stream.shutdown_write();
      close_all("connection retired");
      return;
    }
    if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session)) {
      stream.shutdown_write();
      close_all("connection finished");
    }
  }

  void fail_transport() {
    if (closed) return;
    stream.abort();
    close_all("connection lost");
  }

  // A stream is over (closed by nghttp2, or the whole connection): every party waiting on it
  // is woken; an outgoing body's source is told nobody reads it any more.
  static void end_stream(StreamState& st, uint32_t error_code, const char* why) {
    st.closed = true;
    if (!st.in_end && st.error_code == 0) {
      st.error_code = error_code == 0 ? static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR) : error_code;
      if (why) st.detail = why;
    }
    st.done = true;
    st.waiter.notify();
    st.in_signal.notify();
    st.out_space.notify();
    // Whoever produces this stream's outgoing body stops now (a client that reset its stream
    // cancels the upstream response it was getting).
    if (auto src = std::move(st.out_source)) src->abort();
    st.finish_response(st.out_eof && st.out_off >= st.out_buf.size() && error_code == 0);
  }

  // Ends every stream: pending client waits return an error; server handlers find their
  // streams gone when they respond.
  void close_all(const char* why) {
    closed = true;
    auto all = std::move(streams);
    streams.clear();
    for (auto& [id, st] : all) {
      if (!st->closed) end_stream(*st, NGHTTP2_INTERNAL_ERROR, why);
    }
  }

  void feed(const uint8_t* data, size_t n) {
    if (closed) return;
    receiving = true;
    ssize_t rv = nghttp2_session_mem_recv(session, data, n);
    receiving = false;
    if (rv < 0) {
      // Fatal to the connection (bad preface, flood, callback failure): GOAWAY, then close.
      spdlog::debug("h2: connection error: {}", nghttp2_strerror(static_cast<int>(rv)));
      nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
    }
    kick();
  }

  // Received body bytes the application is done with: open the windows again.
  void consume(int32_t id, size_t n) {
    if (closed || !session || n == 0) return;
    nghttp2_session_consume(session, id, n);
    kick();
  }

  void reset(int32_t id, uint32_t code) {
    if (closed || !session) return;
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, code);
    kick();
  }

  // ---- Outgoing bodies ------------------------------------------------------------------------

  // Sets up what follows the headers; the data provider reads st.out_buf.
  void prepare_body(StreamState& st, const std::string& body, std::shared_ptr<BodyReader> source,
                    const HeaderList& trailers) {
    st.out_buf = body;
    st.out_off = 0;
    st.out_source = std::move(source);
    if (!st.out_source) {
      st.out_eof = true;
      st.out_trailers = trailers;
    }
  }

  // Moves the source's chunks into out_buf while nghttp2 takes them (the peer's window).
  asio::awaitable<void> pump(std::shared_ptr<H2Session> keep, std::shared_ptr<StreamState> st) {
    auto source = st->out_source;
    if (!source) co_return;  // the stream ended before the pump started
    for (;;) {
      while (!st->closed && st->out_buf.size() - st->out_off >= kOutHighWater) co_await st->out_space.wait();
      if (st->closed) {
        source->abort();
        break;
      }
      BodyChunk c = co_await source->next();
      if (st->closed || closed) {
        source->abort();
        break;
      }
      if (c.error) {
        // The body was cut short (the upstream reset, the downstream went away): the peer must
        // not take a truncated body for a whole one.
        spdlog::debug("h2: body source of stream {} failed: {}", st->id, c.detail);
        reset(st->id, NGHTTP2_CANCEL);
        break;
      }
      // nghttp2 took out_buf[0, out_off): drop it, or the buffer would grow with the body.
      if (st->out_off > 0) {
        st->out_buf.erase(0, st->out_off);
        st->out_off = 0;
      }
      st->out_buf.append(c.data);
      if (c.end) {
        st->out_eof = true;
        st->out_trailers = std::move(c.trailers);
      }
      if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(session, st->id);
      }
      kick();
      if (c.end) break;
    }
    st->out_source.reset();
  }

  void start_pump(const std::shared_ptr<StreamState>& st) {
    if (st->out_source) asio::co_spawn(stream.get_executor(), pump(self->shared_from_this(), st), asio::detached);
  }

  // ---- nghttp2 callbacks -------------------------------------------------------------------

  static Impl* of(void* user) { return static_cast<Impl*>(user); }

  static int on_begin_headers(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
    auto* self = of(user);
    if (!self->is_server || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;
    }
    auto st = std::make_shared<StreamState>(self->stream.get_executor());
    st->id = frame->hd.stream_id;
    st->request.protocol = Protocol::Http2;
    self->streams[st->id] = st;
    nghttp2_session_set_stream_user_data(s, st->id, st.get());
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto* self = of(user);
    auto st = self->state(frame->hd.stream_id);
    if (!st) return 0;
    const std::string_view n = view(name, namelen);
    const std::string_view v = view(value, valuelen);
    if (self->is_server) {
      if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        // Request trailers (gRPC clients may send them): carried to an HTTP/2 upstream.
        if (!n.empty() && n[0] != ':') st->in_trailer_fields.add(std::string(n), std::string(v));
        return 0;
      }
      auto& head = st->request.head;
      if (n == ":method") {
        head.method = std::string(v);
      } else if (n == ":scheme") {
        head.scheme = std::string(v);
      } else if (n == ":authority") {
        head.authority = std::string(v);
      } else if (n == ":path") {
        head.path = std::string(v);
      } else if (n == ":protocol") {
        st->request.upgrade = std::string(v);
      } else if (n == "host") {
        if (head.authority.empty()) head.authority = std::string(v);
      } else if (n == "cookie") {
        if (!st->cookies.empty()) st->cookies += "; ";
        st->cookies += v;
      } else if (n == "content-length") {
        uint64_t len = 0;
        for (char c : v) len = len * 10 + static_cast<uint64_t>(c - '0');  // nghttp2 checked it
        st->request.content_length = len;
      } else if (n == "te") {
        if (v == "trailers") head.headers.add("te", "trailers");
      } else {
        head.headers.add(std::string(n), std::string(v));
      }
      return 0;
    }
    // Client: response headers, then maybe trailers.
    if (n == ":status") {
      int status = 0;
      for (char c : v) status = status * 10 + (c - '0');
      st->response.status = static_cast<uint16_t>(status);
      return 0;
    }
    if (st->in_trailers) {
      st->in_trailer_fields.add(std::string(n), std::string(v));
    } else if (n == "content-length" && !st->head_request) {
      uint64_t len = 0;
      for (char c : v) len = len * 10 + static_cast<uint64_t>(c - '0');
      st->response.content_length = len;
    } else {
      st->response.headers.add(std::string(n), std::string(v));
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = of(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self->goaway_received = true;
      return 0;
    }
    auto st = self->state(frame->hd.stream_id);
    if (!st) return 0;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (self->is_server) {
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          if (!st->cookies.empty()) {
            st->request.head.headers.add("cookie", std::move(st->cookies));
            st->cookies.clear();
          }
          if (end) st->in_end = true;
          self->dispatch(st);
        }
      } else if (!st->got_final_headers) {
        if (st->response.status >= 200) {
          st->got_final_headers = true;
          st->in_trailers = true;  // any later HEADERS frame carries trailers
          st->done = true;
          st->waiter.notify();
        } else {
          // Interim 1xx: forgotten (the client's Expect was answered by us).
          st->response.headers = HeaderList();
          st->response.status = 0;
        }
      }
    }
    if (!end || (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)) return 0;
    st->in_end = true;
    st->in_signal.notify();
    return 0;
  }

  // Server: the request's head is in; its body follows through the reader.
  void dispatch(const std::shared_ptr<StreamState>& st) {
    if (!st->in_end) {
      st->has_reader = true;
      st->request.body_stream = std::make_shared<Body>(self->shared_from_this(), st);
    }
    if (handler) handler(self->shared_from_this(), st->id, std::move(st->request));
  }

  static int on_data_chunk(nghttp2_session* s, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                           void* user) {
    auto* self = of(user);
    auto st = self->state(stream_id);
    if (!st || st->reader_gone) {
      // Nobody will read these bytes: give the window back at once.
      nghttp2_session_consume(s, stream_id, len);
      return 0;
    }
    st->in_buf.append(reinterpret_cast<const char*>(data), len);
    st->in_signal.notify();
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = of(user);
    if (!self->is_server || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    auto st = self->state(frame->hd.stream_id);
    if (!st) return 0;
    // The response is complete. A client still sending has what is left of its body
    // discarded as it arrives (windows reopened) once the request's reader is dropped: a
    // RST_STREAM NO_ERROR here (RFC 9113 §8.1) makes some clients (curl) drop the response.
    st->finish_response(true);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    auto* self = of(user);
    auto it = self->streams.find(stream_id);
    if (it == self->streams.end()) return 0;
    auto st = it->second;
    self->streams.erase(it);
    if (self->streams.empty()) self->idle_since = std::chrono::steady_clock::now();
    end_stream(*st, error_code, nullptr);
    // Never close from inside nghttp2 (this runs within mem_recv/mem_send): defer to the loop.
    if (self->retired) {
      asio::post(self->stream.get_executor(), [w = self->self->weak_from_this()] {
        if (auto s = w.lock()) s->impl_->maybe_finish();
      });
    }
    return 0;
  }

  static ssize_t read_body(nghttp2_session* s, int32_t stream_id, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void*) {
    auto* st = static_cast<StreamState*>(source->ptr);
    const size_t n = std::min(length, st->out_buf.size() - st->out_off);
    if (n > 0) std::memcpy(buf, st->out_buf.data() + st->out_off, n);
    st->out_off += n;
    st->out_bytes += n;
    if (st->out_off == st->out_buf.size()) {
      if (st->out_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!st->out_trailers.empty()) {
          std::vector<nghttp2_nv> nva;
          for (const auto& f : st->out_trailers.fields()) nva.push_back(nv(f.name, f.value));
          if (nghttp2_submit_trailer(s, stream_id, nva.data(), nva.size()) == 0) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          }
        }
      } else if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
      // The body sent so far: free it now rather than when the stream closes.
      std::string().swap(st->out_buf);
      st->out_off = 0;
    }
    st->out_space.notify();
    return static_cast<ssize_t>(n);
  }

  static int on_invalid_frame(nghttp2_session*, const nghttp2_frame* frame, int lib_error_code, void*) {
    spdlog::debug("h2: invalid frame on stream {}: {}", frame->hd.stream_id, nghttp2_strerror(lib_error_code));
    return 0;
  }

  bool start() {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Impl::on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &Impl::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Impl::on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Impl::on_frame_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Impl::on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Impl::on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, &Impl::on_invalid_frame);
    nghttp2_option* opt = nullptr;
    if (nghttp2_option_new(&opt) != 0) {
      nghttp2_session_callbacks_del(cbs);
      return false;
    }
    // Windows open only as body readers take the bytes (back-pressure), see consume().
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = is_server ? nghttp2_session_server_new2(&session, cbs, this, opt)
                       : nghttp2_session_client_new2(&session, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
      session = nullptr;
      return false;
    }
    std::array<nghttp2_settings_entry, 2> iv{{
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, opts.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, opts.stream_window},
    }};
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
    nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, static_cast<int32_t>(opts.connection_window));
    return true;
  }

  // The body of one received message (a request on the server, a response on the client).
  class Body final : public BodyReader {
   public:
    Body(std::shared_ptr<H2Session> s, std::shared_ptr<StreamState> st) : s_(std::move(s)), st_(std::move(st)) {}
    // Dropped unread: an upstream response is cancelled (RST_STREAM CANCEL); a downstream
    // request only stops being read, so the response being sent on its stream is not cut
    // (on_frame_send ends the stream once that response is complete).
    ~Body() override {
      if (!s_->impl_->is_server) {
        abort();
      } else if (!finished()) {
        auto& st = *st_;
        st.reader_gone = true;
        s_->impl_->consume(st.id, st.in_buf.size());
        std::string().swap(st.in_buf);
      }
    }
    asio::awaitable<BodyChunk> next() override {
      BodyChunk c;
      for (;;) {
        auto& st = *st_;
        if (st.reader_gone) {
          c.error = true;
          c.detail = "aborted";
          break;
        }
        if (!st.in_buf.empty()) {
          c.data = std::move(st.in_buf);
          st.in_buf.clear();
          s_->impl_->consume(st.id, c.data.size());
          break;
        }
        if (st.in_end) {
          c.end = true;
          c.trailers = std::move(st.in_trailer_fields);
          break;
        }
        if (st.closed) {
          c.error = true;
          c.detail =
              st.detail.empty() ? std::string("stream reset: ") + nghttp2_http2_strerror(st.error_code) : st.detail;
          break;
        }
        co_await st.in_signal.wait();
      }
      co_return account(std::move(c));
    }
    // The consumer is gone before the end: the peer is told to stop sending (RST_STREAM CANCEL).
    void abort() override {
      auto& st = *st_;
      if (st.reader_gone || finished()) return;
      st.reader_gone = true;
      st.in_signal.notify();
      if (!st.in_buf.empty()) {
        s_->impl_->consume(st.id, st.in_buf.size());
        std::string().swap(st.in_buf);
      }
      if (!st.closed && !st.in_end) s_->impl_->reset(st.id, NGHTTP2_CANCEL);
    }

   private:
    std::shared_ptr<H2Session> s_;
    std::shared_ptr<StreamState> st_;
  };
};

H2Session::H2Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->self = this;
}

H2Session::~H2Session() = default;

std::shared_ptr<H2Session> H2Session::server(AnyStream stream, Options opts, RequestHandler handler) {
  auto s = std::shared_ptr<H2Session>(
      new H2Session(std::make_unique<Impl>(std::move(stream), opts, true, std::move(handler))));
  if (!s->impl_->start()) s->impl_->closed = true;
  return s;
}

std::shared_ptr<H2Session> H2Session::client(AnyStream stream, Options opts) {
  auto s = std::shared_ptr<H2Session>(new H2Session(std::make_unique<Impl>(std::move(stream), opts, false, nullptr)));
  if (!s->impl_->start()) s->impl_->closed = true;
  return s;
}

asio::awaitable<void> H2Session::run(std::string initial) {
  auto keep = shared_from_this();
  auto& d = *impl_;
  if (!initial.empty()) d.feed(reinterpret_cast<const uint8_t*>(initial.data()), initial.size());
  d.kick();
  std::array<uint8_t, 16384> buf;
  while (!d.closed && nghttp2_session_want_read(d.session)) {
    auto [ec, n] = co_await d.stream.async_read_some(asio::buffer(buf), kTuple);
    if (n > 0) d.feed(buf.data(), n);
    if (ec) break;
  }
  // Let the last frames (GOAWAY, final responses) go out before the transport closes.
  while (d.writing) {
    d.writer_done.expires_after(std::chrono::seconds(5));
    auto [ec] = co_await d.writer_done.async_wait(kTuple);
    if (!ec) break;  // the writer is stuck on a peer that stopped reading
  }
  if (!d.closed) {
    d.stream.shutdown_write();
    d.close_all("connection closed by the peer");
  }
}

void H2Session::feed(std::string_view bytes) {
  impl_->feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

bool H2Session::respond(int32_t stream_id, const Response& r, bool head_request, ResponseDone done) {
  auto& d = *impl_;
  if (d.closed) {
    if (r.body_stream) r.body_stream->abort();
    return false;
  }
  auto st = d.state(stream_id);
  if (!st || st->responded || st->closed) {
    if (r.body_stream) r.body_stream->abort();
    return false;
  }
  st->responded = true;
  const std::string status = std::to_string(r.status);
  const bool body_allowed = status_has_body(r.status) && !head_request;
  std::string length;
  std::vector<nghttp2_nv> nva;
  nva.reserve(r.headers.size() + 2);
  nva.push_back(nv(":status", status));
  for (const auto& f : r.headers.fields()) {
    if (f.name == "content-length" && head_request) {
      nva.push_back(nv(f.name, f.value));
      continue;
    }
    if (skip_outgoing(f)) continue;
    nva.push_back(nv(f.name, f.value));
  }
  if (body_allowed && !grpc_content(r.headers)) {
    if (r.body_stream) {
      if (r.content_length) length = std::to_string(*r.content_length);
    } else if (r.trailers.empty()) {
      length = std::to_string(r.body.size());
    }
    if (!length.empty()) nva.push_back(nv("content-length", length));
  }
  int rv;
  const bool has_body = body_allowed && (!r.body.empty() || !r.trailers.empty() || r.body_stream);
  if (has_body) {
    d.prepare_body(*st, r.body, r.body_stream, r.trailers);
    nghttp2_data_provider dp;
    dp.source.ptr = st.get();
    dp.read_callback = &Impl::read_body;
    rv = nghttp2_submit_response(d.session, stream_id, nva.data(), nva.size(), &dp);
  } else {
    if (r.body_stream) r.body_stream->abort();
    rv = nghttp2_submit_response(d.session, stream_id, nva.data(), nva.size(), nullptr);
  }
  if (rv != 0) {
    spdlog::debug("h2: response on stream {} not sent: {}", stream_id, nghttp2_strerror(rv));
    st->out_source.reset();
    if (r.body_stream) r.body_stream->abort();
    return false;
  }
  st->on_done = std::move(done);
  if (has_body) d.start_pump(st);
  d.kick();
  return true;
}

int32_t H2Session::submit(const Request& r, std::shared_ptr<BodyReader> body) {
  auto& d = *impl_;
  if (!body) body = r.body_stream;
  if (!usable()) {
    if (body) body->abort();
    return 0;
  }
  const std::string& scheme = r.head.scheme.empty() ? std::string("http") : r.head.scheme;
  std::vector<nghttp2_nv> nva;
  nva.reserve(r.head.headers.size() + 5);
  nva.push_back(nv(":method", r.head.method));
  nva.push_back(nv(":scheme", scheme));
  nva.push_back(nv(":authority", r.head.authority));
  nva.push_back(nv(":path", r.head.path));
  for (const auto& f : r.head.headers.fields()) {
    if (!skip_outgoing(f)) nva.push_back(nv(f.name, f.value));
  }
  std::string length;
  const bool has_body = !r.body.empty() || body != nullptr;
  if (has_body || r.head.method == "POST" || r.head.method == "PUT" || r.head.method == "PATCH") {
    if (!grpc_content(r.head.headers)) {
      if (!body) {
        length = std::to_string(r.body.size());
      } else if (r.content_length) {
        length = std::to_string(*r.content_length);
      }
      if (!length.empty()) nva.push_back(nv("content-length", length));
    }
  }
  auto st = std::make_shared<StreamState>(d.stream.get_executor());
  st->head_request = r.head.method == "HEAD";
  st->response.status = 0;
  st->has_reader = true;
  nghttp2_data_provider dp;
  int32_t id;
  if (has_body) {
    d.prepare_body(*st, r.body, body, HeaderList());
    dp.source.ptr = st.get();
    dp.read_callback = &Impl::read_body;
    id = nghttp2_submit_request(d.session, nullptr, nva.data(), nva.size(), &dp, st.get());
  } else {
    id = nghttp2_submit_request(d.session, nullptr, nva.data(), nva.size(), nullptr, st.get());
  }
  if (id < 0) {
    if (body) body->abort();
    return 0;
  }
  st->id = id;
  d.streams[id] = st;
  if (has_body) d.start_pump(st);
  d.kick();
  return id;
}

asio::awaitable<H2Session::ClientResult> H2Session::wait_headers(int32_t stream_id) {
  auto keep = shared_from_this();
  ClientResult out;
  auto st = impl_->state(stream_id);
  if (!st) {
    out.detail = "stream is gone";
    co_return out;
  }
  while (!st->done) {
    co_await st->waiter.wait();
  }
  out.any_bytes = st->got_final_headers;
  if (!st->got_final_headers) {
    out.refused = st->error_code == NGHTTP2_REFUSED_STREAM;
    if (!st->detail.empty()) {
      out.detail = st->detail;
    } else {
      out.detail = std::string("stream reset: ") + nghttp2_http2_strerror(st->error_code);
    }
    co_return out;
  }
  out.ok = true;
  out.response = std::move(st->response);
  if (!(st->in_end && st->in_buf.empty() && st->in_trailer_fields.empty())) {
    out.response.body_stream = std::make_shared<Impl::Body>(keep, st);
  } else {
    // A bodiless answer: the stream is over for us.
    st->reader_gone = true;
  }
  co_return out;
}

asio::awaitable<H2Session::ClientResult> H2Session::wait(int32_t stream_id) {
  auto keep = shared_from_this();
  ClientResult out = co_await wait_headers(stream_id);
  if (!out.ok || !out.response.body_stream) co_return out;
  auto body = std::move(out.response.body_stream);
  out.response.body_stream = nullptr;
  for (;;) {
    BodyChunk c = co_await body->next();
    out.response.body.append(c.data);
    if (out.response.body.size() > impl_->opts.max_body) {
      body->abort();
      out.ok = false;
      out.detail = "upstream response body over the limit";
      co_return out;
    }
    if (c.error) {
      out.ok = false;
      out.detail = c.detail;
      co_return out;
    }
    if (c.end) {
      out.response.trailers = std::move(c.trailers);
      break;
    }
  }
  co_return out;
}

void H2Session::cancel(int32_t stream_id) {
  auto& d = *impl_;
  auto st = d.state(stream_id);
  if (!st) return;
  if (!d.closed) nghttp2_submit_rst_stream(d.session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
  if (!st->closed) {
    st->error_code = NGHTTP2_CANCEL;
    st->detail = "cancelled";
    st->done = true;
    st->waiter.notify();
    st->in_signal.notify();
    st->out_space.notify();
  }
  d.kick();
}

bool H2Session::usable() const {
  const auto& d = *impl_;
  if (d.closed || d.retired || d.goaway_received || !d.session) return false;
  if (!nghttp2_session_check_request_allowed(d.session)) return false;
  const uint32_t limit = nghttp2_session_get_remote_settings(d.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return d.streams.size() < limit;
}

void H2Session::retire() {
  auto& d = *impl_;
  if (d.closed || d.retired) return;
  d.retired = true;
  // GOAWAY without ending the streams in flight; maybe_finish closes once they are done.
  // A server keeps every stream the client already opened; a client accepts no pushes (0).
  const int32_t last = d.is_server && d.session ? nghttp2_session_get_last_proc_stream_id(d.session) : 0;
  if (d.session) nghttp2_submit_goaway(d.session, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, nullptr, 0);
  d.kick();
  d.maybe_finish();
}

void H2Session::close() {
  auto& d = *impl_;
  if (d.closed) return;
  d.stream.abort();
  d.close_all("connection closed");
}

size_t H2Session::open_streams() const {
  return impl_->streams.size();
}

bool H2Session::closed() const {
  return impl_->closed;
}

std::chrono::steady_clock::time_point H2Session::idle_since() const {
  return impl_->idle_since;
}

}  // namespace waypoint::http
