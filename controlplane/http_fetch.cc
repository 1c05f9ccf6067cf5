#include "controlplane/http_fetch.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <exception>
#include <optional>

namespace controlplane {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using common::make_error;

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// The exchange after the connection is up; `stream` is the socket or the TLS stream. Errors
// come back as system_error from the awaited operations (caught by the spawner).
template <class Stream>
asio::awaitable<void> exchange(Stream& stream, const HttpUrl& u, size_t max_bytes, int& status, std::string& body) {
  http::request<http::empty_body> req{http::verb::get, u.target, 11};
  const bool default_port = u.port == (u.tls ? "443" : "80");
  const std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  req.set(http::field::host, default_port ? host : host + ":" + u.port);
  req.set(http::field::user_agent, "ambient-controlplane");
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  co_await http::async_write(stream, req, asio::use_awaitable);
  boost::beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(max_bytes);
  p.header_limit(64 * 1024);
  co_await http::async_read(stream, buf, p, asio::use_awaitable);
  status = static_cast<int>(p.get().result_int());
  body = std::move(p.get().body());
}

}  // namespace

bool parse_http_url(const std::string& url, HttpUrl& out, std::string& why) {
  out = HttpUrl{};
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    out.tls = true;
    rest = url.substr(8);
  } else {
    why = "not an http:// or https:// URL";
    return false;
  }
  for (unsigned char c : url) {
    if (c <= 0x20 || c >= 0x7f) {
      why = "control character, space or non-ASCII byte in the URL";
      return false;
    }
  }
  const size_t slash = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, slash);
  std::string target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (const size_t hash = target.find('#'); hash != std::string::npos) target.erase(hash);
  if (target.empty() || target[0] != '/') target = "/" + target;
  if (authority.find('@') != std::string::npos) {
    why = "user information in the URL is not supported";
    return false;
  }
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      why = "unterminated '[' in the host";
      return false;
    }
    out.host = authority.substr(1, close - 1);
    std::string tail = authority.substr(close + 1);
    if (!tail.empty()) {
      if (tail[0] != ':') {
        why = "junk after ']' in the host";
        return false;
      }
      port = tail.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      why = "an IPv6 host must be in brackets";
      return false;
    }
  }
  if (out.host.empty()) {
    why = "no host";
    return false;
  }
  if (port.empty()) {
    out.port = out.tls ? "443" : "80";
  } else {
    unsigned long n = 0;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || port.size() > 5) {
        why = "bad port '" + port + "'";
        return false;
      }
      n = n * 10 + static_cast<unsigned long>(c - '0');
    }
    if (n == 0 || n > 65535) {
      why = "bad port '" + port + "'";
      return false;
    }
    out.port = std::to_string(n);
  }
  out.target = std::move(target);
  return true;
}

common::Result<std::string> http_get(const std::string& url, const HttpFetchOptions& opt) {
  HttpUrl u;
  std::string why;
  if (!parse_http_url(url, u, why)) return make_error(url + ": " + why);

  asio::io_context io;
  std::optional<ssl::context> ctx;
  if (u.tls) {
    ctx.emplace(ssl::context::tls_client);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                     ec);
    ctx->set_default_verify_paths(ec);
    if (!opt.extra_ca_pem.empty()) {
      ctx->add_certificate_authority(asio::buffer(opt.extra_ca_pem), ec);
      if (ec) return make_error(url + ": the extra CA (--jwks-ca): " + ec.message());
    }
    ctx->set_verify_mode(ssl::verify_peer);
  }

  int status = 0;
  std::string body;
  std::string error;
  bool done = false;
  tcp::socket sock(io);
  std::optional<ssl::stream<tcp::socket&>> tls;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        tcp::resolver resolver(io);
        auto eps = co_await resolver.async_resolve(u.host, u.port, asio::use_awaitable);
        co_await asio::async_connect(sock, eps, asio::use_awaitable);
        if (!u.tls) {
          co_await exchange(sock, u, opt.max_bytes, status, body);
          co_return;
        }
        tls.emplace(sock, *ctx);
        // SNI only for names; host_name_verification checks IP SANs for an IP host.
        if (!is_ip(u.host)) SSL_set_tlsext_host_name(tls->native_handle(), u.host.c_str());
        tls->set_verify_callback(ssl::host_name_verification(u.host));
        co_await tls->async_handshake(ssl::stream_base::client, asio::use_awaitable);
        co_await exchange(*tls, u, opt.max_bytes, status, body);
      },
      [&](std::exception_ptr e) {
        done = true;
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const boost::system::system_error& se) {
          if (se.code() == http::error::body_limit) {
            error = "response larger than " + std::to_string(opt.max_bytes) + " bytes";
          } else {
            error = se.code().message();
          }
        } catch (const std::exception& ex) {
          error = ex.what();
        }
      });
  io.run_for(opt.timeout);
  const bool timed_out = !done;
  if (timed_out) {
    // Past the deadline: closing the socket ends the pending operation, so the coroutine
    // finishes before the streams it uses are destroyed.
    boost::system::error_code ignored;
    sock.close(ignored);
    io.run_for(std::chrono::seconds(2));
  }
  if (timed_out) return make_error(url + ": no complete response within " + std::to_string(opt.timeout.count()) + " ms");
  if (!error.empty()) return make_error(url + ": " + error);
  if (status != 200) return make_error(url + ": HTTP " + std::to_string(status));
  return body;
}

}  // namespace controlplane
