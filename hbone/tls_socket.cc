#include "hbone/tls_socket.h"

#include <openssl/err.h>
#include <csignal>
#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/identity/tls.h"

namespace hbone {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
constexpr size_t kReadAhead = 256 * 1024;

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the peer has gone;
// the default action would kill the whole proxy for one dead connection. Ignore it once,
// process-wide (errors still come back as EPIPE).
void ignore_sigpipe_once() {
  static const bool done = [] {
    std::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}
}  // namespace

TlsSocket::TlsSocket(tcp::socket socket, SSL_CTX* ctx) : sock_(std::move(socket)) {
  ignore_sigpipe_once();
  boost::system::error_code ec;
  sock_.non_blocking(true, ec);
  ssl_ = SSL_new(ctx);
  if (ssl_ != nullptr) {
    SSL_set_fd(ssl_, static_cast<int>(sock_.native_handle()));
    SSL_set_read_ahead(ssl_, 1);
    SSL_set_default_read_buffer_len(ssl_, kReadAhead);
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  }
}

TlsSocket::~TlsSocket() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

void TlsSocket::close() {
  boost::system::error_code ignored;
  sock_.cancel(ignored);
  sock_.close(ignored);
}

void TlsSocket::release_buffers() {
  // Refused (returns 0) while a record is half read or a write is pending: nothing is lost.
  // (CVE-2024-4741, a use-after-free here, is fixed in the OpenSSL 3.0.14+ Debian ships.)
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_)) (void)SSL_free_buffers(ssl_);
}

asio::awaitable<common::Status> TlsSocket::handshake(bool server) {
  if (ssl_ == nullptr) co_return common::make_error("SSL_new failed");
  if (server) SSL_set_accept_state(ssl_);
  else SSL_set_connect_state(ssl_);
  for (;;) {
    ERR_clear_error();
    int rv = SSL_do_handshake(ssl_);
    if (rv == 1) co_return common::ok_status();
    int err = SSL_get_error(ssl_, rv);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto [ec] = co_await sock_.async_wait(err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                                            asio::as_tuple(asio::use_awaitable));
      if (ec) co_return common::make_error(ec == asio::error::operation_aborted ? "handshake aborted" : ec.message());
      continue;
    }
    std::string why = common::tls::verify_failure(ssl_);
    std::string ossl = common::tls::drain_openssl_errors();
    if (why.empty()) why = ossl;
    else if (!ossl.empty()) why += "; " + ossl;
    if (why.empty()) why = err == SSL_ERROR_SYSCALL ? "connection closed during handshake" : "TLS handshake failed";
    co_return common::make_error(why);
  }
}

asio::awaitable<std::pair<boost::system::error_code, size_t>> TlsSocket::read_some(std::span<uint8_t> out) {
  using R = std::pair<boost::system::error_code, size_t>;
  size_t total = 0;
  for (;;) {
    // Drain everything already decrypted or buffered before waiting on the socket again.
    while (total < out.size()) {
      size_t n = 0;
      ERR_clear_error();
      int rv = SSL_read_ex(ssl_, out.data() + total, out.size() - total, &n);
      if (rv == 1) {
        total += n;
        // Nothing more buffered in OpenSSL: return now rather than paying a read(2) that
        // would only say EAGAIN.
        if (!SSL_has_pending(ssl_)) co_return R{{}, total};
        continue;
      }
      int err = SSL_get_error(ssl_, rv);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (total > 0) co_return R{{}, total};
        auto [ec] = co_await sock_.async_wait(err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                                              asio::as_tuple(asio::use_awaitable));
        if (ec) co_return R{ec, 0};
        break;  // retry the inner loop
      }
      if (total > 0) co_return R{{}, total};
      if (err == SSL_ERROR_ZERO_RETURN) co_return R{asio::error::eof, 0};
      if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) co_return R{asio::error::eof, 0};  // EOF without close_notify
      ERR_clear_error();
      co_return R{asio::error::connection_reset, 0};
    }
    if (total >= out.size()) co_return R{{}, total};
  }
}

size_t TlsSocket::try_write(std::span<const uint8_t> data, bool& blocked, boost::system::error_code& ec) {
  size_t total = 0;
  blocked = false;
  while (total < data.size()) {
    size_t n = 0;
    ERR_clear_error();
    int rv = SSL_write_ex(ssl_, data.data() + total, data.size() - total, &n);
    if (rv == 1) {
      total += n;
      continue;
    }
    int err = SSL_get_error(ssl_, rv);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      blocked = true;
      return total;
    }
    ERR_clear_error();
    ec = asio::error::broken_pipe;
    return total;
  }
  return total;
}

asio::awaitable<boost::system::error_code> TlsSocket::write_all(std::span<const uint8_t> data) {
  while (!data.empty()) {
    size_t n = 0;
    ERR_clear_error();
    int rv = SSL_write_ex(ssl_, data.data(), data.size(), &n);
    if (rv == 1) {
      data = data.subspan(n);
      continue;
    }
    int err = SSL_get_error(ssl_, rv);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      auto [ec] = co_await sock_.async_wait(err == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read,
                                            asio::as_tuple(asio::use_awaitable));
      if (ec) co_return ec;
      continue;
    }
    ERR_clear_error();
    co_return boost::system::error_code(asio::error::broken_pipe);
  }
  co_return boost::system::error_code{};
}

}  // namespace hbone
