// TlsSocket: TLS over a non-blocking TCP socket with OpenSSL doing the socket I/O itself
// (socket BIO), driven by Asio readiness waits.
//
// Why not asio::ssl::stream: its engine moves every record through a BIO pair and a 17 KiB
// staging buffer — two extra copies and one syscall per 16 KiB record each way. Here records
// are written straight from OpenSSL's buffer to the kernel, and reads use read-ahead with a
// 256 KiB buffer so one read syscall brings in many records.
//
// Threading: one connection's coroutines on one executor. At most one read and one write may
// be outstanding at a time (the Connection's read loop and write path), which OpenSSL allows
// on one SSL object as long as they never run simultaneously — guaranteed by the single thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <span>
#include <string>
#include <system_error>

#include "common/result.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace hbone {

class TlsSocket {
 public:
  TlsSocket(boost::asio::ip::tcp::socket socket, SSL_CTX* ctx);
  ~TlsSocket();
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  SSL* native_handle() const { return ssl_; }
  boost::asio::ip::tcp::socket& socket() { return sock_; }
  boost::asio::any_io_executor get_executor() { return sock_.get_executor(); }

  // Runs the handshake; on failure the error names the reason (OpenSSL's queue included).
  boost::asio::awaitable<common::Status> handshake(bool server);
  // Reads at least one byte of plaintext, as much as is buffered (up to out.size()).
  // Returns 0 on a clean close (close_notify or EOF).
  boost::asio::awaitable<std::pair<boost::system::error_code, size_t>> read_some(std::span<uint8_t> out);
  // Writes as much of `data` as the socket takes now, without waiting. Returns bytes written;
  // `blocked` says the socket is full (retry the rest with write_all).
  size_t try_write(std::span<const uint8_t> data, bool& blocked, boost::system::error_code& ec);
  // Writes all of `data`.
  boost::asio::awaitable<boost::system::error_code> write_all(std::span<const uint8_t> data);
  void close();
  // Frees OpenSSL's record buffers (256 KiB read-ahead) unless they hold data; the next read
  // or write allocates them again. For connections gone idle after a burst.
  void release_buffers();

 private:
  boost::asio::ip::tcp::socket sock_;
  SSL* ssl_ = nullptr;
};

}  // namespace hbone
