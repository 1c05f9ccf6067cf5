#include "common/kube/kube_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <fstream>
#include <sstream>

namespace common::kube {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using common::make_error;

void set_timeouts(int fd, std::chrono::seconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count());
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string read_token(const KubeConfig& cfg) {
  if (!cfg.token_file.empty()) {
    std::ifstream in(cfg.token_file, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string t = ss.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
    if (!t.empty()) return t;
  }
  return cfg.token;
}

struct Detach {
  Cancel* c;
  ~Detach() {
    if (c) c->attach(-1);
  }
};

// Sends `req` and reads the response on `stream`; with `on_line` (and status 200) the body is
// delivered line by line instead of collected.
template <class Stream>
common::Result<KubeResponse> exchange(Stream& stream, http::request<http::string_body>& req,
                                      const std::function<bool(std::string_view)>* on_line) {
  boost::system::error_code ec;
  http::write(stream, req, ec);
  if (ec) return make_error("sending " + std::string(req.target()) + ": " + ec.message());
  boost::beast::flat_buffer buf;
  http::response_parser<http::buffer_body> p;
  p.body_limit(boost::none);
  http::read_header(stream, buf, p, ec);
  if (ec) return make_error("reading the response to " + std::string(req.target()) + ": " + ec.message());
  KubeResponse out;
  out.status = static_cast<int>(p.get().result_int());
  const bool streaming = on_line && out.status == 200;
  std::string pending;
  char chunk[16384];
  bool want_more = true;
  while (!p.is_done() && want_more) {
    p.get().body().data = chunk;
    p.get().body().size = sizeof chunk;
    http::read_some(stream, buf, p, ec);
    if (ec == http::error::need_buffer) ec = {};
    const size_t n = sizeof chunk - p.get().body().size;
    if (!streaming) {
      out.body.append(chunk, n);
      if (out.body.size() > (256u << 20))
        return make_error(std::string(req.target()) + ": response larger than 256 MiB");
    } else {
      pending.append(chunk, n);
      size_t start = 0;
      for (size_t nl; want_more && (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string_view line(pending.data() + start, nl - start);
        if (!line.empty() && !(*on_line)(line)) want_more = false;
      }
      pending.erase(0, start);
      if (pending.size() > (64u << 20))
        return make_error(std::string(req.target()) + ": watch event larger than 64 MiB");
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof) break;
    if (ec) {
      if (streaming) return make_error("watch " + std::string(req.target()) + ": " + ec.message());
      return make_error("reading the body of " + std::string(req.target()) + ": " + ec.message());
    }
  }
  if (streaming && want_more && !pending.empty()) (*on_line)(pending);
  return out;
}

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

void Cancel::cancel() {
  std::lock_guard<std::mutex> l(mu_);
  cancelled_.store(true);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

bool Cancel::attach(int fd) {
  std::lock_guard<std::mutex> l(mu_);
  fd_ = fd;
  return !cancelled_.load();
}

struct KubeClient::Tls {
  ssl::context ctx{ssl::context::tls_client};
};

KubeClient::KubeClient(KubeConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.scheme != "https") return;
  tls_ = std::make_unique<Tls>();
  boost::system::error_code ec;
  auto& ctx = tls_->ctx;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                  ec);
  if (cfg_.insecure) {
    ctx.set_verify_mode(ssl::verify_none, ec);
  } else {
    ctx.set_verify_mode(ssl::verify_peer, ec);
    if (!cfg_.ca_pem.empty()) {
      ctx.add_certificate_authority(asio::buffer(cfg_.ca_pem), ec);
      if (ec) tls_error_ = "certificate authority: " + ec.message();
    } else {
      ctx.set_default_verify_paths(ec);
    }
  }
  if (!cfg_.client_cert_pem.empty()) {
    ctx.use_certificate_chain(asio::buffer(cfg_.client_cert_pem), ec);
    if (ec) tls_error_ = "client certificate: " + ec.message();
    ctx.use_private_key(asio::buffer(cfg_.client_key_pem), ssl::context::pem, ec);
    if (ec) tls_error_ = "client key: " + ec.message();
  }
}

KubeClient::~KubeClient() = default;

namespace {

struct CallArgs {
  std::string_view method;
  const std::string& target;
  const std::string& body;
  std::string_view content_type;
  std::chrono::seconds timeout;
  Cancel* cancel;
  const std::function<bool(std::string_view)>* on_line;
};

}  // namespace

static common::Result<KubeResponse> call(const KubeConfig& cfg, ssl::context* tls, const CallArgs& a) {
  http::request<http::string_body> req;
  req.method_string(a.method);
  req.target(a.target);
  req.version(11);
  req.set(http::field::host, cfg.host);
  req.set(http::field::user_agent, cfg.user_agent);
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (const std::string t = read_token(cfg); !t.empty()) req.set(http::field::authorization, "Bearer " + t);
  if (!a.body.empty()) {
    req.set(http::field::content_type, a.content_type);
    req.body() = a.body;
  }
  req.prepare_payload();

  asio::io_context io;
  tcp::resolver resolver(io);
  boost::system::error_code ec;
  auto eps = resolver.resolve(cfg.host, cfg.port, ec);
  if (ec) return make_error(cfg.url() + ": resolve: " + ec.message());
  tcp::socket sock(io);
  asio::connect(sock, eps, ec);
  if (ec) return make_error(cfg.url() + ": connect: " + ec.message());
  set_timeouts(sock.native_handle(), a.timeout);
  Detach detach{a.cancel};
  if (a.cancel && !a.cancel->attach(sock.native_handle())) return make_error("cancelled");
  if (!tls) return exchange(sock, req, a.on_line);
  ssl::stream<tcp::socket&> stream(sock, *tls);
  boost::system::error_code ignored;
  // SNI only for names; host_name_verification checks IP SANs for an IP host.
  if (!is_ip(cfg.host)) SSL_set_tlsext_host_name(stream.native_handle(), cfg.host.c_str());
  if (!cfg.insecure) stream.set_verify_callback(ssl::host_name_verification(cfg.host), ignored);
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) return make_error(cfg.url() + ": TLS handshake: " + ec.message());
  auto r = exchange(stream, req, a.on_line);
  stream.shutdown(ignored);
  return r;
}

common::Result<KubeResponse> KubeClient::request(std::string_view method, const std::string& target,
                                                 const std::string& body, std::string_view content_type,
                                                 std::chrono::seconds timeout, Cancel* cancel) const {
  if (!tls_error_.empty()) return make_error(cfg_.url() + ": TLS setup: " + tls_error_);
  return call(cfg_, tls_ ? &tls_->ctx : nullptr,
              CallArgs{method, target, body, content_type, timeout, cancel, nullptr});
}

common::Result<KubeResponse> KubeClient::stream_lines(const std::string& target,
                                                      const std::function<bool(std::string_view)>& on_line,
                                                      std::chrono::seconds idle, Cancel* cancel) const {
  if (!tls_error_.empty()) return make_error(cfg_.url() + ": TLS setup: " + tls_error_);
  static const std::string empty;
  return call(cfg_, tls_ ? &tls_->ctx : nullptr, CallArgs{"GET", target, empty, "", idle, cancel, &on_line});
}

std::string url_encode(std::string_view v) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

}  // namespace common::kube
