#include "hbone/copy.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <vector>

namespace hbone {
namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

// Upstream's adaptive sizing: small while a connection is young (cheap idle tunnels), large
// once it is clearly bulk (few syscalls, full TLS records).
size_t next_chunk(uint64_t total) {
  if (total >= (10u << 20)) return (256u << 10) - 64;
  if (total >= (128u << 10)) return (16u << 10) - 64;
  return 1024;
}

void abort_socket(tcp::socket& s) {
  boost::system::error_code ignored;
  s.cancel(ignored);
  s.shutdown(tcp::socket::shutdown_both, ignored);
}

asio::awaitable<void> socket_to_stream(tcp::socket& sock, Stream& st, CopyResult& r) {
  for (;;) {
    if (!co_await st.wait_writable()) {
      if (r.error.empty() && st.failed()) r.error = st.failure();
      abort_socket(sock);
      co_return;
    }
    auto [ec] = co_await sock.async_wait(tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (r.error.empty() && ec != asio::error::operation_aborted) r.error = "client read: " + ec.message();
      if (!st.closed()) st.reset();
      co_return;
    }
    auto span = st.prepare_write(next_chunk(r.to_stream));
    boost::system::error_code rec;
    size_t n = sock.read_some(asio::buffer(span.data(), span.size()), rec);
    if (rec == asio::error::would_block || rec == asio::error::try_again) continue;
    if (rec == asio::error::eof) {
      st.shutdown_write();
      co_return;
    }
    if (rec) {
      if (r.error.empty()) r.error = "client read: " + rec.message();
      st.reset();
      co_return;
    }
    st.commit_write(n);
    r.to_stream += n;
  }
}

asio::awaitable<void> stream_to_socket(Stream& st, tcp::socket& sock, CopyResult& r) {
  // Off on every way out: the socket may close while the stream lives on.
  struct SinkOff {
    Stream& st;
    ~SinkOff() { st.set_direct_sink(nullptr); }
  } sink_off{st};
  st.set_direct_sink(&sock);
  while (co_await st.wait_readable()) {
    r.to_socket += st.take_direct_bytes();
    auto span = st.readable();
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(span.data(), span.size()),
                                              asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (r.error.empty()) r.error = "client write: " + ec.message();
      st.reset();
      abort_socket(sock);
      co_return;
    }
    st.consume(n);
    r.to_socket += n;
  }
  r.to_socket += st.take_direct_bytes();
  if (st.failed() && !st.remote_closed()) {
    if (r.error.empty()) r.error = st.failure();
    abort_socket(sock);
    co_return;
  }
  boost::system::error_code ignored;
  sock.shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> socket_to_socket(tcp::socket& from, tcp::socket& to, uint64_t& total, std::string& err) {
  std::vector<uint8_t> buf;
  for (;;) {
    auto [ec] = co_await from.async_wait(tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (err.empty() && ec != asio::error::operation_aborted) err = ec.message();
      abort_socket(to);
      co_return;
    }
    size_t want = next_chunk(total);
    if (buf.size() < want) buf.resize(want);
    boost::system::error_code rec;
    size_t n = from.read_some(asio::buffer(buf.data(), want), rec);
    if (rec == asio::error::would_block || rec == asio::error::try_again) continue;
    if (rec == asio::error::eof) {
      boost::system::error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    if (rec) {
      if (err.empty()) err = rec.message();
      abort_socket(to);
      abort_socket(from);
      co_return;
    }
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), asio::as_tuple(asio::use_awaitable));
    if (wec) {
      if (err.empty()) err = wec.message();
      abort_socket(from);
      abort_socket(to);
      co_return;
    }
    total += wn;
  }
}

}  // namespace

asio::awaitable<void> copy_bidirectional(tcp::socket& socket, std::shared_ptr<Stream> stream, CopyResult& r) {
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  co_await (socket_to_stream(socket, *stream, r) && stream_to_socket(*stream, socket, r));
}

asio::awaitable<void> copy_bidirectional(tcp::socket& a, tcp::socket& b, CopyResult& r) {
  boost::system::error_code ec;
  a.non_blocking(true, ec);
  b.non_blocking(true, ec);
  std::string e1, e2;
  co_await (socket_to_socket(a, b, r.to_stream, e1) && socket_to_socket(b, a, r.to_socket, e2));
  r.error = !e1.empty() ? e1 : e2;
}

asio::awaitable<CopyResult> copy_bidirectional(tcp::socket& socket, std::shared_ptr<Stream> stream) {
  CopyResult r;
  co_await copy_bidirectional(socket, std::move(stream), r);
  co_return r;
}

asio::awaitable<CopyResult> copy_bidirectional(tcp::socket& a, tcp::socket& b) {
  CopyResult r;
  co_await copy_bidirectional(a, b, r);
  co_return r;
}

}  // namespace hbone
