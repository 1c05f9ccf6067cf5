#include "waypoint/http/http1.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <vector>

namespace waypoint::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;

struct ReadBuffer::Impl {
  beast::flat_buffer buf;
};

ReadBuffer::ReadBuffer() : impl_(std::make_unique<Impl>()) {}
ReadBuffer::~ReadBuffer() = default;
ReadBuffer::ReadBuffer(ReadBuffer&&) noexcept = default;
ReadBuffer& ReadBuffer::operator=(ReadBuffer&&) noexcept = default;

std::string ReadBuffer::take() {
  auto d = impl_->buf.data();
  std::string out(static_cast<const char*>(d.data()), d.size());
  impl_->buf.consume(d.size());
  return out;
}

void ReadBuffer::put(std::string_view bytes) {
  auto room = impl_->buf.prepare(bytes.size());
  asio::buffer_copy(room, asio::buffer(bytes.data(), bytes.size()));
  impl_->buf.commit(bytes.size());
}

namespace {

constexpr uint32_t kHeaderLimit = 64u << 10;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

bool token_listed(std::string_view list, std::string_view token) {
  // Comma-separated, case-insensitive (Connection: keep-alive, Upgrade).
  size_t i = 0;
  while (i <= list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string_view::npos) j = list.size();
    auto t = list.substr(i, j - i);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (beast::iequals(t, token)) return true;
    i = j + 1;
  }
  return false;
}

// The head conversions read the header only: the streamed path converts the parser's header in
// place (no copy of the Beast message first), the whole-message path adds the body.
void head_to_request(const bh::request_header<>& m, Request& r) {
  r.head.method = std::string(m.method_string());
  r.head.path = std::string(m.target());
  r.head.scheme = "http";
  r.protocol = m.version() == 10 ? Protocol::Http10 : Protocol::Http11;
  std::string_view connection;
  std::string_view upgrade;
  for (const auto& f : m) {
    std::string name = lower(f.name_string());
    std::string_view value(f.value().data(), f.value().size());
    if (name == "host") {
      if (r.head.authority.empty()) r.head.authority = std::string(value);
    } else if (name == "connection") {
      connection = value;
    } else if (name == "upgrade") {
      upgrade = value;
    } else if (name == "expect") {
      r.expect_continue = beast::iequals(value, "100-continue");
    } else if (name == "content-length") {
      // Recomputed from the buffered body on the way out.
    } else if (!is_hop_by_hop(name)) {
      r.head.headers.add(std::move(name), std::string(value));
    }
  }
  if (!upgrade.empty() && token_listed(connection, "upgrade")) r.upgrade = std::string(upgrade);
}

Request to_request(bh::request<bh::string_body>&& m) {
  Request r;
  head_to_request(m.base(), r);
  r.body = std::move(m.body());
  return r;
}

void head_to_response(const bh::response_header<>& m, bool head_request, Response& r) {
  r.status = static_cast<uint16_t>(m.result_int());
  for (const auto& f : m) {
    std::string name = lower(f.name_string());
    std::string_view value(f.value().data(), f.value().size());
    if (name == "upgrade" && r.status == 101) {
      r.headers.add(std::move(name), std::string(value));
    } else if (name == "content-length" && !head_request) {
      // Recomputed from the buffered body.
    } else if (!is_hop_by_hop(name)) {
      r.headers.add(std::move(name), std::string(value));
    }
  }
}

Response to_response(bh::response<bh::string_body>&& m, bool head_request) {
  Response r;
  head_to_response(m.base(), head_request, r);
  r.body = std::move(m.body());
  return r;
}

ReadError classify(const boost::system::error_code& ec, bool got_some) {
  if (ec == bh::error::end_of_stream || ec == asio::error::eof) return got_some ? ReadError::Reset : ReadError::Closed;
  if (ec == bh::error::body_limit || ec == bh::error::header_limit || ec == bh::error::buffer_overflow) {
    return ReadError::TooLarge;
  }
  if (ec.category() == bh::make_error_code(bh::error::bad_method).category()) return ReadError::Malformed;
  return ReadError::Reset;
}

bool status_has_body(int status) {
  return !(status < 200 || status == 204 || status == 304);
}

bh::request<bh::string_body> to_beast(const Request& r) {
  bh::request<bh::string_body> m;
  m.method_string(r.head.method);
  m.target(r.head.path);
  m.version(11);
  m.set(bh::field::host, r.head.authority);
  for (const auto& f : r.head.headers.fields()) m.insert(f.name, f.value);
  if (!r.upgrade.empty()) {
    m.set(bh::field::connection, "upgrade");
    m.set(bh::field::upgrade, r.upgrade);
  }
  m.body() = r.body;
  if (!r.body.empty() || r.head.method == "POST" || r.head.method == "PUT" || r.head.method == "PATCH")
    m.prepare_payload();
  return m;
}

}  // namespace

asio::awaitable<ReadRequestResult> read_request(AnyStream& s, ReadBuffer& buf, uint32_t max_body) {
  ReadRequestResult out;
  bh::request_parser<bh::string_body> p;
  p.header_limit(kHeaderLimit);
  p.body_limit(max_body);
  auto& fb = buf.impl().buf;
  auto [ec, n] = co_await bh::async_read_header(s, fb, p, kTuple);
  if (ec) {
    out.error = classify(ec, p.got_some());
    out.detail = ec.message();
    co_return out;
  }
  if (auto e = p.get().find(bh::field::expect);
      e != p.get().end() && beast::iequals(e->value(), "100-continue") && !p.is_done()) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(kContinue.data(), kContinue.size()), kTuple);
    if (wec) {
      out.error = ReadError::Reset;
      out.detail = wec.message();
      co_return out;
    }
  }
  if (!p.is_done()) {
    auto [bec, bn] = co_await bh::async_read(s, fb, p, kTuple);
    if (bec) {
      out.error = classify(bec, true);
      out.detail = bec.message();
      co_return out;
    }
  }
  out.keep_alive = p.get().keep_alive();
  out.request = to_request(p.release());
  co_return out;
}

asio::awaitable<bool> write_response(AnyStream& s, const Response& r, Protocol version, bool head, bool close) {
  bh::response<bh::string_body> m;
  m.result(static_cast<unsigned>(r.status));
  m.version(version == Protocol::Http10 ? 10 : 11);
  for (const auto& f : r.headers.fields()) m.insert(f.name, f.value);
  if (r.status == 101) {
    m.set(bh::field::connection, "upgrade");
  } else {
    if (status_has_body(r.status) && !head) {
      m.body() = r.body;
      m.prepare_payload();
    }
    m.keep_alive(!close);
  }
  auto [ec, n] = co_await bh::async_write(s, m, kTuple);
  co_return !ec;
}

asio::awaitable<bool> write_request(AnyStream& s, const Request& r) {
  auto m = to_beast(r);
  auto [ec, n] = co_await bh::async_write(s, m, kTuple);
  co_return !ec;
}

asio::awaitable<ReadResponseResult> read_response(AnyStream& s, ReadBuffer& buf, uint32_t max_body, bool head_request) {
  ReadResponseResult out;
  auto& fb = buf.impl().buf;
  // Interim 1xx answers (other than 101) are skipped: the client's Expect was answered by us.
  for (;;) {
    bh::response_parser<bh::string_body> p;
    p.header_limit(kHeaderLimit);
    p.body_limit(max_body);
    if (head_request) p.skip(true);
    auto [ec, n] = co_await bh::async_read(s, fb, p, kTuple);
    out.any_bytes = out.any_bytes || p.got_some();
    if (ec) {
      out.error = classify(ec, p.got_some());
      if (out.error == ReadError::Closed) out.error = ReadError::Reset;  // no response is a reset upstream
      out.detail = ec.message();
      co_return out;
    }
    int status = static_cast<int>(p.get().result_int());
    if (status >= 100 && status < 200 && status != 101) continue;
    out.keep_alive = p.get().keep_alive() && status != 101;
    out.response = to_response(p.release(), head_request);
    co_return out;
  }
}

common::Result<Request> parse_request(std::string_view bytes, uint32_t max_body) {
  bh::request_parser<bh::string_body> p;
  p.header_limit(kHeaderLimit);
  p.body_limit(max_body);
  p.eager(true);
  boost::system::error_code ec;
  size_t used = p.put(asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec == bh::error::need_more && used < bytes.size()) ec = {};
  if (!ec && !p.is_done()) p.put_eof(ec);
  if (ec) return common::make_error("invalid HTTP/1.1 request: " + ec.message());
  if (!p.is_done()) return common::make_error("invalid HTTP/1.1 request: incomplete message");
  return to_request(p.release());
}

std::string serialize_request(const Request& r) {
  std::ostringstream os;
  os << to_beast(r);
  return os.str();
}

}  // namespace waypoint::http

// ---- Streaming ----------------------------------------------------------------------------

namespace waypoint::http {

namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

// The rest of one message on an HTTP/1.1 connection, read with Beast's buffer_body parser into
// one chunk buffer per pull.
template <bool IsRequest>
class H1Body final : public BodyReader {
 public:
  using Parser = bh::parser<IsRequest, bh::buffer_body>;
  H1Body(std::unique_ptr<Parser> p, AnyStream& s, ReadBuffer& buf, std::shared_ptr<void> owner, BodyDone done)
      : parser_(std::move(p)), s_(s), buf_(buf), owner_(std::move(owner)), done_(std::move(done)) {}
  static std::unique_ptr<Parser> make_parser() {
    auto p = std::make_unique<Parser>();
    p->header_limit(kHeaderLimit);
    p->body_limit(kUnlimited);
    return p;
  }
  ~H1Body() override { finish(false); }

  asio::awaitable<BodyChunk> next() override {
    BodyChunk c;
    if (aborted_ || failed_) {
      c.error = true;
      c.detail = "aborted";
      co_return account(std::move(c));
    }
    if (parser.is_done()) {
      c.end = true;
      finish(true);
      co_return account(std::move(c));
    }
    if (send_continue) {
      send_continue = false;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      auto [wec, wn] = co_await asio::async_write(s_, asio::buffer(kContinue.data(), kContinue.size()), kTuple);
      if (wec) {
        failed_ = true;
        c.error = true;
        c.detail = wec.message();
        finish(false);
        co_return account(std::move(c));
      }
    }
    auto keep = owner_;
    // Read straight into the chunk handed out, sized by what the message still has: a 64 KiB
    // buffer per message (allocated and zeroed for a 1 KiB body) once cost more CPU than the
    // rest of the request.
    c.data.resize(chunk_size());
    size_t got = 0;
    while (!parser.is_done()) {
      parser.get().body().data = c.data.data();
      parser.get().body().size = c.data.size();
      auto [ec, n] = co_await bh::async_read_some(s_, buf_.impl().buf, parser, kTuple);
      if (ec == bh::error::need_buffer) ec = {};
      if (aborted_) ec = asio::error::operation_aborted;
      if (ec) {
        failed_ = true;
        c.data.clear();
        c.error = true;
        c.detail = ec.message();
        finish(false);
        co_return account(std::move(c));
      }
      got = c.data.size() - parser.get().body().size;
      if (got > 0) break;
    }
    // A body of unknown length that fills the chunk reads more at once next time.
    if (got == c.data.size() && unknown_chunk_ < kChunk) unknown_chunk_ *= 2;
    c.data.resize(got);
    if (parser.is_done()) {
      c.end = true;
      finish(true);
    }
    co_return account(std::move(c));
  }

  void abort() override {
    if (finished() || aborted_) return;
    aborted_ = true;
    s_.abort();
    finish(false);
  }

  bool ready() const override {
    return aborted_ || failed_ || parser.is_done() || (!send_continue && buf_.impl().buf.size() > 0);
  }

  bool send_continue = false;

 private:
  std::unique_ptr<Parser> parser_;
  Parser& parser = *parser_;
  void finish(bool clean) {
    if (!done_) return;
    auto d = std::move(done_);
    done_ = nullptr;
    d(clean);
  }
  AnyStream& s_;
  ReadBuffer& buf_;
  std::shared_ptr<void> owner_;
  BodyDone done_;
  // Bytes to read for the next chunk: the rest of a Content-Length body up to kChunk; for
  // chunked or close-delimited bodies a size that starts small (streams of small events) and
  // doubles while reads fill it (bulk transfers).
  size_t chunk_size() const {
    const auto left = parser.content_length_remaining();
    if (!left) return unknown_chunk_;
    return static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(*left, 1), kChunk));
  }
  size_t unknown_chunk_ = 8 * 1024;
  bool aborted_ = false;
  bool failed_ = false;
};

template <typename Fields>
std::optional<uint64_t> announced_length(const Fields& m) {
  auto it = m.find(bh::field::content_length);
  if (it == m.end()) return std::nullopt;
  uint64_t v = 0;
  for (char ch : it->value()) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  return v;
}

// Body framing for a streamed message: content-length (raw bytes), chunked, or until close.
enum class Framing : uint8_t { None, Length, Chunked, Close };

// The bytes of a message not yet written, gathered so that the head, the first body chunk
// (when it is already at hand) and the chunked terminator leave in one write: each write is
// one HBONE DATA frame, one TLS record and one syscall here and at the peer's ztunnel.
// The buffers live in a fixed array, no allocation per write: write_body flushes after every
// streamed chunk, so at most head, the in-memory body, one chunk (3 each when chunked) and the
// terminator are pending: 8.
class Outbox {
 public:
  Outbox(AnyStream& s, Framing framing) : s_(s), framing_(framing) {}
  void add_raw(asio::const_buffer b) {
    if (b.size() > 0) bufs_.push_back(b);
  }
  // At most one data chunk is pending at a time (its size line lives in size_).
  void add_data(std::string_view data) {
    if (data.empty()) return;
    if (framing_ == Framing::Chunked) {
      char* end = std::to_chars(size_, size_ + sizeof size_ - 2, data.size(), 16).ptr;
      *end++ = '\r';
      *end++ = '\n';
      bufs_.push_back(asio::buffer(size_, static_cast<size_t>(end - size_)));
      bufs_.push_back(asio::buffer(data.data(), data.size()));
      bufs_.push_back(asio::buffer("\r\n", 2));
    } else {
      bufs_.push_back(asio::buffer(data.data(), data.size()));
    }
    pending_body_ += data.size();
  }
  void add_end() {
    if (framing_ == Framing::Chunked) bufs_.push_back(asio::buffer("0\r\n\r\n", 5));
  }
  bool empty() const { return bufs_.empty(); }
  asio::awaitable<bool> flush() {
    if (bufs_.empty()) co_return true;
    auto [ec, n] = co_await asio::async_write(s_, bufs_.view(), kTuple);
    bufs_.clear();
    if (ec) co_return false;
    written_body_ += pending_body_;
    pending_body_ = 0;
    co_return true;
  }
  uint64_t body_bytes() const { return written_body_; }

 private:
  // A ConstBufferSequence over the first `size` entries of a fixed array.
  struct View {
    using value_type = asio::const_buffer;
    using const_iterator = const asio::const_buffer*;
    const asio::const_buffer* first;
    const asio::const_buffer* last;
    const_iterator begin() const { return first; }
    const_iterator end() const { return last; }
  };
  class Buffers {
   public:
    void push_back(asio::const_buffer b) { items_[size_++] = b; }
    bool empty() const { return size_ == 0; }
    void clear() { size_ = 0; }
    View view() const { return View{items_.data(), items_.data() + size_}; }

   private:
    std::array<asio::const_buffer, 8> items_{};
    size_t size_ = 0;
  };

  AnyStream& s_;
  Framing framing_;
  Buffers bufs_;
  char size_[24];
  uint64_t pending_body_ = 0;
  uint64_t written_body_ = 0;
};

// Writes what `out` already holds (the head) and the body: the in-memory `body`, then the
// stream's chunks as they come.
asio::awaitable<StreamWriteResult> write_body(Outbox& out_box, Framing framing, const std::string& body,
                                              const std::shared_ptr<BodyReader>& stream) {
  StreamWriteResult out;
  auto fail = [&](const char* detail) {
    if (stream) stream->abort();
    out.detail = detail;
    out.body_bytes = out_box.body_bytes();
  };
  if (framing == Framing::None) {
    if (stream) stream->abort();
    if (!co_await out_box.flush()) {
      out.detail = "write failed";
      co_return out;
    }
    out.ok = true;
    co_return out;
  }
  out_box.add_data(body);
  bool ended = !stream;
  while (!ended) {
    // Nothing is held back while the peer is silent: the head goes out before the wait.
    if (!out_box.empty() && !stream->ready()) {
      const bool wrote = co_await out_box.flush();
      if (!wrote) {
        fail("write failed");
        co_return out;
      }
    }
    BodyChunk c = co_await stream->next();
    out_box.add_data(c.data);
    if (c.error) {
      const bool wrote = co_await out_box.flush();
      out.body_bytes = out_box.body_bytes();
      if (!wrote) {
        fail("write failed");
        co_return out;
      }
      out.body_error = true;
      out.detail = c.detail;
      co_return out;
    }
    ended = c.end;
    if (ended) out_box.add_end();
    // c.data is referenced by the outbox: written before it goes out of scope.
    if (!co_await out_box.flush()) {
      fail("write failed");
      co_return out;
    }
  }
  if (!stream) out_box.add_end();
  if (!co_await out_box.flush()) {
    fail("write failed");
    co_return out;
  }
  out.ok = true;
  out.body_bytes = out_box.body_bytes();
  co_return out;
}

// Serializes a message head (start line and fields) straight into a reusable buffer, as
// Beast's serializer would write it, without building a Beast message (one allocation per
// field) per message. A field the proxy sets (content-length, connection...) replaces every
// field of that name from the caller's list and goes after it, in the order set, with Beast's
// canonical spelling: the bytes on the wire are the same as before.
class HeadWriter {
 public:
  explicit HeadWriter(std::string& out) : out_(out) { out_.clear(); }
  void start_line(std::string_view a, std::string_view b, std::string_view c) { append(a, " ", b, " ", c, "\r\n"); }
  // The caller's fields, less those named in `replaced` (case-insensitive).
  void fields(const router::HeaderList& list, std::initializer_list<std::string_view> replaced) {
    for (const auto& f : list.fields()) {
      bool skip = false;
      for (auto r : replaced) skip = skip || (!r.empty() && beast::iequals(f.name, r));
      if (!skip) field(f.name, f.value);
    }
  }
  void field(std::string_view name, std::string_view value) { append(name, ": ", value, "\r\n"); }
  std::string_view finish() {
    out_ += "\r\n";
    return out_;
  }

 private:
  template <typename... Parts>
  void append(const Parts&... parts) {
    (out_.append(std::string_view(parts)), ...);
  }
  std::string& out_;
};

}  // namespace

asio::awaitable<ReadRequestResult> read_request_head(std::shared_ptr<Connection> c) {
  ReadRequestResult out;
  auto parser = H1Body<true>::make_parser();
  auto& p = *parser;
  auto [ec, n] = co_await bh::async_read_header(c->stream, c->buf.impl().buf, p, kTuple);
  if (ec) {
    out.error = classify(ec, p.got_some());
    out.detail = ec.message();
    co_return out;
  }
  out.keep_alive = p.get().keep_alive();
  head_to_request(p.get().base(), out.request);
  out.request.content_length = announced_length(p.get());
  if (!p.is_done()) {
    auto body = std::make_shared<H1Body<true>>(std::move(parser), c->stream, c->buf, c, nullptr);
    body->send_continue = out.request.expect_continue;
    out.request.body_stream = std::move(body);
  }
  co_return out;
}

asio::awaitable<ReadResponseResult> read_response_head(AnyStream& s, ReadBuffer& buf, bool head_request,
                                                       std::shared_ptr<void> owner, BodyDone done) {
  ReadResponseResult out;
  for (;;) {
    auto parser = H1Body<false>::make_parser();
    auto& p = *parser;
    if (head_request) p.skip(true);
    auto [ec, n] = co_await bh::async_read_header(s, buf.impl().buf, p, kTuple);
    out.any_bytes = out.any_bytes || p.got_some();
    if (ec) {
      out.error = classify(ec, p.got_some());
      if (out.error == ReadError::Closed) out.error = ReadError::Reset;
      out.detail = ec.message();
      co_return out;
    }
    const int status = static_cast<int>(p.get().result_int());
    if (status >= 100 && status < 200 && status != 101) continue;
    out.keep_alive = p.get().keep_alive() && status != 101;
    head_to_response(p.get().base(), head_request, out.response);
    if (!head_request) out.response.content_length = announced_length(p.get());
    if (status == 101) co_return out;  // the caller keeps the connection for the relay
    // "Clean" for the caller = the connection may carry another request.
    BodyDone finish;
    if (done) finish = [done = std::move(done), ka = out.keep_alive](bool clean) { done(clean && ka); };
    if (!p.is_done()) {
      // Content-Length: 0 and bodiless statuses are done here; the rest streams. The parser
      // that read the head continues with the body.
      out.response.body_stream =
          std::make_shared<H1Body<false>>(std::move(parser), s, buf, std::move(owner), std::move(finish));
    } else if (finish) {
      finish(true);
    }
    co_return out;
  }
}

namespace {
Framing framing_for(bool has_body, const std::optional<uint64_t>& length, bool has_stream, bool http10) {
  if (!has_body) return Framing::None;
  if (!has_stream || length) return Framing::Length;
  return http10 ? Framing::Close : Framing::Chunked;
}
}  // namespace

asio::awaitable<StreamWriteResult> write_request_stream(AnyStream& s, const Request& r,
                                                        std::shared_ptr<BodyReader> body, std::string* head_buffer) {
  const bool may_body =
      body || !r.body.empty() || r.head.method == "POST" || r.head.method == "PUT" || r.head.method == "PATCH";
  Framing framing = Framing::None;
  if (may_body) framing = body && !r.content_length ? Framing::Chunked : Framing::Length;
  const bool upgrade = !r.upgrade.empty();
  std::string local;
  HeadWriter w(head_buffer ? *head_buffer : local);
  w.start_line(r.head.method, r.head.path, "HTTP/1.1");
  w.field("Host", r.head.authority);
  w.fields(r.head.headers, {upgrade ? "connection" : "", upgrade ? "upgrade" : "",
                            framing == Framing::Chunked  ? "transfer-encoding"
                            : framing == Framing::Length ? "content-length"
                                                         : ""});
  if (upgrade) {
    w.field("Connection", "upgrade");
    w.field("Upgrade", r.upgrade);
  }
  char len_text[24];
  if (framing == Framing::Chunked) {
    w.field("Transfer-Encoding", "chunked");
  } else if (framing == Framing::Length) {
    const uint64_t len = body ? *r.content_length : r.body.size();
    const char* end = std::to_chars(len_text, len_text + sizeof len_text, len).ptr;
    w.field("Content-Length", std::string_view(len_text, static_cast<size_t>(end - len_text)));
  }
  const std::string_view head_bytes = w.finish();
  Outbox box(s, framing);
  box.add_raw(asio::buffer(head_bytes.data(), head_bytes.size()));
  co_return co_await write_body(box, framing, r.body, body);
}

asio::awaitable<StreamWriteResult> write_response_stream(AnyStream& s, const Response& r, Protocol version, bool head,
                                                         bool close, std::string* head_buffer) {
  const bool has_body = r.status != 101 && status_has_body(r.status);
  const bool stream = r.body_stream != nullptr;
  Framing framing = framing_for(has_body && !head, r.content_length, stream, version == Protocol::Http10);
  // What the proxy sets itself: the framing field, then Connection.
  std::string_view framing_field;
  std::string_view connection;
  if (r.status == 101) {
    connection = "upgrade";
  } else {
    if (has_body && !head) {
      if (framing == Framing::Chunked) framing_field = "Transfer-Encoding";
      if (framing == Framing::Length) framing_field = "Content-Length";
    }
    if (framing == Framing::Close) close = true;
    if (close) {
      connection = "close";
    } else if (version == Protocol::Http10) {
      connection = "keep-alive";
    }
  }
  std::string local;
  HeadWriter w(head_buffer ? *head_buffer : local);
  const auto reason = bh::obsolete_reason(static_cast<bh::status>(r.status));
  char status_text[8];
  const char* status_end = std::to_chars(status_text, status_text + sizeof status_text, r.status).ptr;
  w.start_line(version == Protocol::Http10 ? "HTTP/1.0" : "HTTP/1.1",
               std::string_view(status_text, static_cast<size_t>(status_end - status_text)), std::string_view(reason.data(), reason.size()));
  w.fields(r.headers, {framing_field, connection.empty() ? "" : "connection"});
  char len_text[24];
  if (framing_field == "Transfer-Encoding") {
    w.field(framing_field, "chunked");
  } else if (!framing_field.empty()) {
    const uint64_t len = stream ? *r.content_length : r.body.size();
    const char* end = std::to_chars(len_text, len_text + sizeof len_text, len).ptr;
    w.field(framing_field, std::string_view(len_text, static_cast<size_t>(end - len_text)));
  }
  if (!connection.empty()) w.field("Connection", connection);
  const std::string_view head_bytes = w.finish();
  const Framing body_framing = head ? Framing::None : framing;
  Outbox box(s, body_framing);
  box.add_raw(asio::buffer(head_bytes.data(), head_bytes.size()));
  auto out = co_await write_body(box, body_framing, r.body, r.body_stream);
  out.must_close = framing == Framing::Close;
  co_return out;
}

}  // namespace waypoint::http
