#include "waypoint/http/http1.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <sstream>

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

Request to_request(bh::request<bh::string_body>&& m) {
  Request r;
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
  r.body = std::move(m.body());
  return r;
}

Response to_response(bh::response<bh::string_body>&& m, bool head_request) {
  Response r;
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
