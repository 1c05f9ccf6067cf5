#include "waypoint/ingress/tls_terminator.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <array>
#include <filesystem>
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
// SSL_set_SSL_CTX keeps the verify mode the connection started with, so the chosen chain's
// client-certificate mode is copied explicitly (chains of one port may differ).
int on_servername(SSL* s, int*, void* arg) {
  const auto* tls = static_cast<const ServerTls*>(arg);
  const char* name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  const int idx = choose_chain(tls->listener, name ? name : "");
  if (idx < 0) return SSL_TLSEXT_ERR_ALERT_FATAL;
  SSL_CTX* ctx = tls->contexts[static_cast<size_t>(idx)]->native_handle();
  SSL_set_SSL_CTX(s, ctx);
  SSL_set_verify(s, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
  return SSL_TLSEXT_ERR_OK;
}

// ex_data slot of an SSL_CTX holding its (const) ListenerChain, for the verify callback.
int chain_slot() {
  static const int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

// Does `cert` carry one of `sans` (exact; DNS, URI, email or IP in text form)? Istio's
// subjectAltNames accept a name of any of these types.
bool has_san(X509* cert, const std::vector<std::string>& sans) {
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return false;
  bool found = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    std::string v;
    if (g->type == GEN_DNS || g->type == GEN_URI || g->type == GEN_EMAIL) {
      const ASN1_IA5STRING* a = g->d.ia5;
      v.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(a)), static_cast<size_t>(ASN1_STRING_length(a)));
    } else if (g->type == GEN_IPADD) {
      const int len = ASN1_STRING_length(g->d.ip);
      const unsigned char* d = ASN1_STRING_get0_data(g->d.ip);
      if (len == 4 || len == 16) {
        if (len == 4) {
          asio::ip::address_v4::bytes_type b;
          std::memcpy(b.data(), d, 4);
          v = asio::ip::address_v4(b).to_string();
        } else {
          asio::ip::address_v6::bytes_type b;
          std::memcpy(b.data(), d, 16);
          v = asio::ip::address_v6(b).to_string();
        }
      }
    }
    for (const auto& want : sans) found |= !v.empty() && v == want;
  }
  GENERAL_NAMES_free(names);
  return found;
}

// After OpenSSL's chain check: the leaf must carry one of the server's subjectAltNames. Failing
// here fails the handshake (the client gets an alert), as Envoy does.
int verify_client(int ok, X509_STORE_CTX* st) {
  if (!ok || X509_STORE_CTX_get_error_depth(st) != 0) return ok;
  auto* s = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const auto* chain = s ? static_cast<const ListenerChain*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), chain_slot()))
                        : nullptr;
  if (!chain || chain->client_sans.empty()) return 1;
  if (has_san(X509_STORE_CTX_get_current_cert(st), chain->client_sans)) return 1;
  X509_STORE_CTX_set_error(st, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

// The CA bundle file of a chain: `file-root:` names it; a Secret `<x>-cacert` is istiod's name for
// the CA of credential x, found as that Secret's ca.crt or else x's own ca.crt.
std::string ca_path(const ListenerChain& c, const std::string& credential_dir) {
  if (!c.ca_file.empty()) return c.ca_file;
  const std::string own = credential_dir + "/" + c.ca_credential + "/ca.crt";
  constexpr std::string_view kSuffix = "-cacert";
  std::error_code ec;
  if (std::filesystem::exists(own, ec) || !c.ca_credential.ends_with(kSuffix)) return own;
  return credential_dir + "/" + c.ca_credential.substr(0, c.ca_credential.size() - kSuffix.size()) + "/ca.crt";
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
    if (c.verifies_clients()) {
      const std::string ca = ca_path(c, credential_dir);
      if (SSL_CTX_load_verify_locations(ctx->native_handle(), ca.c_str(), nullptr) != 1)
        return common::make_error("credential " + c.credential_name + ": client CA " + ca + " is unreadable or not PEM");
      SSL_CTX_set_verify(ctx->native_handle(),
                         SSL_VERIFY_PEER | (c.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                         verify_client);
    }
    out->contexts.push_back(std::move(ctx));
  }
  // Resumption would skip the client-certificate check (and the session cache lives on the first
  // chain's context, whatever chain SNI picks): with any verifying chain, no resumption at all.
  bool any_verify = false;
  for (const auto& c : listener.chains) any_verify |= c.verifies_clients();
  for (size_t i = 0; i < out->contexts.size(); ++i) {
    SSL_CTX* ctx = out->contexts[i]->native_handle();
    SSL_CTX_set_ex_data(ctx, chain_slot(), const_cast<ListenerChain*>(&out->listener.chains[i]));
    const std::string sid = std::to_string(i);
    SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(sid.data()),
                                   static_cast<unsigned>(sid.size()));
    if (any_verify) {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
      SSL_CTX_set_num_tickets(ctx, 0);
    }
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
