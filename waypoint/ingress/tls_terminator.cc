#include "waypoint/ingress/tls_terminator.h"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "hbone/headers.h"
#include "waypoint/proxy.h"

namespace waypoint::ingress {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct ServerTls {
  GatewayListener listener;
  std::vector<std::shared_ptr<ssl::context>> contexts;  // one per chain, same order
};

namespace {

bool name_matches(const std::string& pattern, const std::string& sni) {
  if (pattern == sni) return true;
  return pattern.size() > 1 && pattern[0] == '*' && sni.size() > pattern.size() - 1 &&
         sni.compare(sni.size() - (pattern.size() - 1), std::string::npos, pattern, 1) == 0;
}

// ALPN: h2 preferred, then http/1.1 (Envoy's gateway offers both). The request flow behind the
// socket pair sniffs the h2 preface, so the chosen protocol needs no other hand-over.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void*) {
  static const unsigned char ours[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

// SNI: swap in the chosen chain's certificate; refuse the handshake when no chain matches.
int on_servername(SSL* s, int*, void* arg) {
  const auto* tls = static_cast<const ServerTls*>(arg);
  const char* name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  const int idx = choose_chain(tls->listener, name ? name : "");
  if (idx < 0) return SSL_TLSEXT_ERR_ALERT_FATAL;
  SSL_set_SSL_CTX(s, tls->contexts[static_cast<size_t>(idx)]->native_handle());
  return SSL_TLSEXT_ERR_OK;
}

asio::awaitable<void> pump_in(std::shared_ptr<ssl::stream<tcp::socket>> tls, std::shared_ptr<tcp::socket> plain) {
  std::array<char, 16384> buf;
  for (;;) {
    auto [ec, n] = co_await tls->async_read_some(asio::buffer(buf), kTuple);
    if (n > 0) {
      auto [wec, w] = co_await asio::async_write(*plain, asio::buffer(buf.data(), n), kTuple);
      (void)w;
      if (wec) break;
    }
    if (ec) break;
  }
  boost::system::error_code ignored;
  plain->shutdown(asio::socket_base::shutdown_send, ignored);
}

asio::awaitable<void> pump_out(std::shared_ptr<ssl::stream<tcp::socket>> tls, std::shared_ptr<tcp::socket> plain) {
  std::array<char, 16384> buf;
  for (;;) {
    auto [ec, n] = co_await plain->async_read_some(asio::buffer(buf), kTuple);
    if (n > 0) {
      auto [wec, w] = co_await asio::async_write(*tls, asio::buffer(buf.data(), n), kTuple);
      (void)w;
      if (wec) break;
    }
    if (ec) break;
  }
  // The request flow closed its side: end the TCP connection (no close_notify: a concurrent
  // TLS read may be pending, and HTTP/1.1 or HTTP/2 framing already delimits every response).
  boost::system::error_code ignored;
  tls->lowest_layer().shutdown(asio::socket_base::shutdown_both, ignored);
  tls->lowest_layer().close(ignored);
  plain->close(ignored);
}

}  // namespace

int choose_chain(const GatewayListener& l, const std::string& sni) {
  int wildcard = -1, any = -1;
  size_t best = 0;
  for (size_t i = 0; i < l.chains.size(); ++i) {
    const auto& c = l.chains[i];
    if (c.server_names.empty()) {
      if (any < 0) any = static_cast<int>(i);
      continue;
    }
    for (const auto& n : c.server_names) {
      if (n == sni && !sni.empty()) return static_cast<int>(i);
      if (!sni.empty() && name_matches(n, sni) && n.size() > best) {
        best = n.size();
        wildcard = static_cast<int>(i);
      }
    }
  }
  return wildcard >= 0 ? wildcard : any;
}

common::Result<std::shared_ptr<const ServerTls>> make_server_tls(const GatewayListener& listener,
                                                                 const std::string& credential_dir) {
  auto out = std::make_shared<ServerTls>();
  out->listener = listener;
  for (const auto& c : listener.chains) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    const std::string dir = credential_dir + "/" + c.credential_name;
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(dir + "/tls.crt", ec);
    if (!ec) ctx->use_private_key_file(dir + "/tls.key", ssl::context::pem, ec);
    if (ec)
      return common::make_error("credential " + c.credential_name + " (" + dir + "/tls.crt, tls.key): " + ec.message());
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
      return common::make_error("credential " + c.credential_name + ": tls.key does not match tls.crt");
    SSL_CTX_set_alpn_select_cb(ctx->native_handle(), select_alpn, nullptr);
    out->contexts.push_back(std::move(ctx));
  }
  // The SNI callback lives on the context a handshake starts with (the first chain's).
  if (!out->contexts.empty()) {
    SSL_CTX_set_tlsext_servername_callback(out->contexts.front()->native_handle(), on_servername);
    SSL_CTX_set_tlsext_servername_arg(out->contexts.front()->native_handle(), out.get());
  }
  return std::shared_ptr<const ServerTls>(std::move(out));
}

asio::awaitable<void> serve_tls(tcp::socket sock, std::shared_ptr<const ServerTls> tls, Proxy* proxy, size_t worker) {
  boost::system::error_code ec;
  const tcp::endpoint remote = sock.remote_endpoint(ec);
  auto exec = sock.get_executor();
  auto stream = std::make_shared<ssl::stream<tcp::socket>>(std::move(sock), *tls->contexts.front());
  auto [hec] = co_await stream->async_handshake(ssl::stream_base::server, kTuple);
  if (hec) {
    spdlog::info("gateway TLS handshake from {} on {} failed: {}", remote.address().to_string(), tls->listener.name,
                 hec.message());
    co_return;
  }
  const char* name = SSL_get_servername(stream->native_handle(), TLSEXT_NAMETYPE_host_name);
  const int idx = choose_chain(tls->listener, name ? name : "");
  if (idx < 0) co_return;  // refused in the handshake already
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    spdlog::warn("gateway TLS on {}: socketpair: {}", tls->listener.name, std::strerror(errno));
    co_return;
  }
  auto inner = std::make_shared<tcp::socket>(exec);
  tcp::socket outer(exec);
  inner->assign(tcp::v4(), fds[0], ec);
  if (ec) {
    ::close(fds[0]);
    ::close(fds[1]);
    co_return;
  }
  outer.assign(tcp::v4(), fds[1], ec);
  if (ec) {
    ::close(fds[1]);
    co_return;
  }
  proxy->serve_gateway(worker, std::move(outer), tls->listener.chains[static_cast<size_t>(idx)].route_name, remote);
  asio::co_spawn(exec, pump_in(stream, inner), asio::detached);
  co_await pump_out(stream, inner);
}

}  // namespace waypoint::ingress
