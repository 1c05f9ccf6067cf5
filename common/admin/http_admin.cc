#include "common/admin/http_admin.h"

#include <algorithm>

#include <array>
#include <exception>
#include <list>
#include <map>
#include <unordered_map>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace common::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// ---- small helpers --------------------------------------------------------------------------
namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// RFC 9110 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

// Header field value: visible ASCII, SP, HTAB, obs-text; no other control characters.
bool is_field_value(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u == 0x7f || (u < 0x20 && u != '\t')) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Does a comma-separated header value contain `token` (case-insensitive)?
bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (iequals(trim_ows(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

ParseResult parse_error(int status, std::string why) {
  ParseResult r;
  r.status = ParseStatus::Error;
  r.error_status = status;
  r.error = std::move(why);
  return r;
}

}  // namespace

// ---- Request / Response -------------------------------------------------------------------

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<std::string> Request::query_param(std::string_view key) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    size_t eq = pair.find('=');
    std::string name = url_decode(pair.substr(0, eq));
    if (name == key) {
      return eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::json(std::string body) {
  Response r;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

// ---- parser -------------------------------------------------------------------------------

ParseResult parse_request(std::string_view buf, const Limits& limits) {
  // Phase 1: find the end of the header block, within the limit.
  size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (buf.size() > limits.max_header_bytes) {
      return parse_error(431, "request header block too large");
    }
    return ParseResult{};
  }
  size_t header_len = end + 4;
  if (header_len > limits.max_header_bytes) {
    return parse_error(431, "request header block too large");
  }
  std::string_view head = buf.substr(0, end + 2);  // every line keeps its CRLF

  ParseResult r;
  Request& req = r.request;

  // Phase 2: request line "METHOD SP origin-form SP HTTP/1.x".
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return parse_error(400, "malformed request line");
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return parse_error(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return parse_error(400, "invalid method");
  if (target.empty() || target.front() != '/') return parse_error(400, "invalid request target");
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return parse_error(400, "invalid character in request target");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return parse_error(400, "malformed HTTP version");
  }
  if (version[5] != '1') return parse_error(505, "unsupported HTTP version");
  req.version_minor = version[7] - '0';
  if (req.version_minor > 1) return parse_error(505, "unsupported HTTP version");
  req.method = std::string(method);
  size_t qmark = target.find('?');
  req.path = std::string(target.substr(0, qmark));
  if (qmark != std::string_view::npos) req.query = std::string(target.substr(qmark + 1));

  // Phase 3: header fields. No obs-fold, no whitespace before ':'.
  std::optional<uint64_t> content_length;
  bool connection_close = false, connection_keep_alive = false;
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    std::string_view field = head.substr(pos, next - pos);
    pos = next + 2;
    if (field.empty()) return parse_error(400, "empty header line");
    if (field.front() == ' ' || field.front() == '\t') {
      return parse_error(400, "obsolete header line folding");
    }
    size_t colon = field.find(':');
    if (colon == std::string_view::npos) return parse_error(400, "header line without ':'");
    std::string_view name = field.substr(0, colon);
    std::string_view value = trim_ows(field.substr(colon + 1));
    if (!is_token(name)) return parse_error(400, "invalid header name");
    if (!is_field_value(value)) return parse_error(400, "invalid header value");
    if (iequals(name, "content-length")) {
      if (value.empty() || value.size() > 18) return parse_error(400, "invalid Content-Length");
      uint64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return parse_error(400, "invalid Content-Length");
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (content_length && *content_length != n) {
        return parse_error(400, "conflicting Content-Length headers");
      }
      content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      return parse_error(501, "Transfer-Encoding is not supported");
    } else if (iequals(name, "connection")) {
      connection_close = connection_close || has_token(value, "close");
      connection_keep_alive = connection_keep_alive || has_token(value, "keep-alive");
    }
    if (req.headers.size() >= 100) return parse_error(431, "too many header fields");
    req.headers.emplace_back(std::string(name), std::string(value));
  }

  // Phase 4: body by Content-Length.
  uint64_t body_len = content_length.value_or(0);
  if (body_len > limits.max_body_bytes) return parse_error(413, "request body too large");
  if (buf.size() - header_len < body_len) return ParseResult{};  // wait for the rest
  req.body = std::string(buf.substr(header_len, body_len));

  r.status = ParseStatus::Complete;
  r.consumed = header_len + body_len;
  r.keep_alive = req.version_minor == 1 ? !connection_close : (connection_keep_alive && !connection_close);
  return r;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string serialize_response(const Response& r, bool keep_alive, bool head_request) {
  std::string out;
  out.reserve(128 + (head_request ? 0 : r.body.size()));
  out.append("HTTP/1.1 ").append(std::to_string(r.status)).append(" ");
  out.append(reason_phrase(r.status)).append("\r\n");
  out.append("Content-Type: ").append(r.content_type).append("\r\n");
  if (!r.content_encoding.empty()) out.append("Content-Encoding: ").append(r.content_encoding).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n");
  out.append(keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
  out.append("\r\n");
  if (!head_request) out.append(r.body);
  return out;
}

Result<std::pair<std::string, uint16_t>> split_host_port(std::string_view addr) {
  std::string_view host, port;
  if (!addr.empty() && addr.front() == '[') {
    size_t close = addr.find(']');
    if (close == std::string_view::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return make_error("invalid address \"" + std::string(addr) + "\": expected [v6]:port");
    }
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos || addr.find(':') != colon) {
      return make_error("invalid address \"" + std::string(addr) + "\": expected host:port");
    }
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
  }
  if (host.empty()) return make_error("invalid address \"" + std::string(addr) + "\": empty host");
  if (port.empty() || port.size() > 5) {
    return make_error("invalid address \"" + std::string(addr) + "\": bad port");
  }
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return make_error("invalid address \"" + std::string(addr) + "\": bad port");
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p > 65535) return make_error("invalid address \"" + std::string(addr) + "\": bad port");
  return std::make_pair(std::string(host), static_cast<uint16_t>(p));
}

bool is_loopback_host(std::string_view host) {
  if (iequals(host, "localhost")) return true;
  boost::system::error_code ec;
  auto a = asio::ip::make_address(std::string(host), ec);
  return !ec && a.is_loopback();
}

// ---- server -------------------------------------------------------------------------------

namespace {

// Turns a host into a bindable address; "localhost" means 127.0.0.1 (never a DNS lookup).
Result<tcp::endpoint> resolve_bind(std::string_view addr) {
  auto hp = split_host_port(addr);
  if (!hp) return make_error(hp.error());
  std::string host = hp->first == "localhost" ? "127.0.0.1" : hp->first;
  boost::system::error_code ec;
  auto a = asio::ip::make_address(host, ec);
  if (ec) return make_error("invalid address \"" + std::string(addr) + "\": host must be an IP");
  return tcp::endpoint(a, hp->second);
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<Impl> {
  struct Session {
    explicit Session(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
    tcp::socket socket;
    asio::steady_timer timer;  // closes the socket when the current wait exceeds its budget
  };

  Impl(asio::io_context& io, std::string name, Limits limits)
      : io(io), name(std::move(name)), limits(limits) {}

  asio::io_context& io;
  const std::string name;
  const Limits limits;
  std::list<tcp::acceptor> acceptors;  // one, or two for "localhost" (127.0.0.1 and ::1)
  uint16_t bound_port = 0;
  bool stopped = false;  // io thread only, like everything below
  std::map<std::string, Handler, std::less<>> routes;
  std::map<std::string, AsyncHandler, std::less<>> async_routes;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;

  Response dispatch(const Request& req) const {
    auto it = routes.find(req.path);
    if (it == routes.end()) return Response::text(404, "not found\n");
    try {
      return it->second(req);
    } catch (const std::exception& e) {
      spdlog::error("{} handler for {} failed: {}", name, req.path, e.what());
      return Response::text(500, "internal error\n");
    }
  }

  void close_all() {
    stopped = true;
    boost::system::error_code ec;
    for (auto& a : acceptors) a.close(ec);
    for (auto& [p, weak] : sessions) {
      if (auto s = weak.lock()) {
        s->socket.close(ec);
        s->timer.cancel();
      }
    }
    sessions.clear();
  }

  void arm_timer(const std::shared_ptr<Session>& s, std::chrono::milliseconds budget) {
    s->timer.expires_after(budget);
    std::weak_ptr<Session> weak = s;
    s->timer.async_wait([weak](const boost::system::error_code& ec) {
      if (ec) return;  // re-armed or cancelled
      if (auto live = weak.lock()) {
        boost::system::error_code ignored;
        live->socket.close(ignored);
      }
    });
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
    auto self = shared_from_this();
    while (!stopped) {
      auto [ec, sock] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        if (ec == asio::error::operation_aborted || stopped) co_return;
        // EMFILE and friends: keep the listener, back off briefly so we do not spin.
        spdlog::warn("{} accept failed: {}", name, ec.message());
        asio::steady_timer t(io, std::chrono::milliseconds(50));
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      if (sessions.size() >= limits.max_connections) {
        boost::system::error_code ignored;
        sock.close(ignored);
        continue;
      }
      auto s = std::make_shared<Session>(std::move(sock));
      sessions.emplace(s.get(), s);
      asio::co_spawn(io, serve(s), asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<Session> s) {
    auto self = shared_from_this();
    std::string buf;
    std::array<char, 4096> chunk;
    bool waiting_for_new_request = true;
    arm_timer(s, limits.idle_timeout);
    for (;;) {
      ParseResult pr = parse_request(buf, limits);
      if (pr.status == ParseStatus::Incomplete) {
        if (!buf.empty() && waiting_for_new_request) {
          // First bytes of a request: the whole request must now arrive within header_timeout.
          waiting_for_new_request = false;
          arm_timer(s, limits.header_timeout);
        }
        auto [ec, n] = co_await s->socket.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
        if (ec) break;
        buf.append(chunk.data(), n);
        continue;
      }
      if (pr.status == ParseStatus::Error) {
        Response resp = Response::text(pr.error_status, pr.error + "\n");
        std::string out = serialize_response(resp, false, false);
        co_await asio::async_write(s->socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
        break;
      }
      const Request& req = pr.request;
      Response resp;
      if (auto ait = async_routes.find(req.path); ait != async_routes.end()) {
        // Wait for the deferred answer on a timer that respond() cancels (posted to our loop).
        struct Pending {
          explicit Pending(asio::io_context& io) : wake(io) {}
          asio::steady_timer wake;
          std::optional<Response> answer;
        };
        auto pending = std::make_shared<Pending>(io);
        pending->wake.expires_at(asio::steady_timer::time_point::max());
        arm_timer(s, std::chrono::minutes(10));  // the longest profile plus margin
        asio::io_context* loop = &io;
        ait->second(req, [pending, loop](Response r) {
          asio::post(*loop, [pending, r = std::move(r)]() mutable {
            pending->answer = std::move(r);
            pending->wake.cancel();
          });
        });
        while (!pending->answer) {
          co_await pending->wake.async_wait(asio::as_tuple(asio::use_awaitable));
          if (!pending->answer && !s->socket.is_open()) break;
        }
        if (!pending->answer) break;
        resp = std::move(*pending->answer);
      } else {
        resp = dispatch(req);
      }
      bool head = req.method == "HEAD";
      arm_timer(s, limits.idle_timeout);  // a write budget, so a client that never reads goes
      std::string out = serialize_response(resp, pr.keep_alive, head);
      auto [wec, wn] = co_await asio::async_write(s->socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
      if (wec || !pr.keep_alive) break;
      buf.erase(0, pr.consumed);
      waiting_for_new_request = true;
      arm_timer(s, limits.idle_timeout);
    }
    boost::system::error_code ignored;
    s->socket.shutdown(tcp::socket::shutdown_send, ignored);
    s->socket.close(ignored);
    s->timer.cancel();
    sessions.erase(s.get());
  }
};

HttpServer::HttpServer(asio::io_context& io, std::string name, Limits limits)
    : impl_(std::make_shared<Impl>(io, std::move(name), limits)) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::route(std::string path, Handler handler) {
  impl_->routes[std::move(path)] = std::move(handler);
}

void HttpServer::route_async(std::string path, AsyncHandler handler) {
  impl_->async_routes[std::move(path)] = std::move(handler);
}

std::vector<std::string> HttpServer::paths() const {
  std::vector<std::string> out;
  for (const auto& [p, h] : impl_->routes) out.push_back(p);
  for (const auto& [p, h] : impl_->async_routes) out.push_back(p);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// Opens, binds and listens; the acceptor is closed again on failure.
boost::system::error_code open_listener(tcp::acceptor& acc, const tcp::endpoint& ep) {
  boost::system::error_code ec;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) {
    // "[::]" serves IPv4 clients too, like upstream's listeners; "::1" is IPv6 only.
    acc.set_option(asio::ip::v6_only(!ep.address().is_unspecified()), ec);
  }
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acc.close(ignored);
  }
  return ec;
}

}  // namespace

Status HttpServer::listen(std::string_view addr) {
  auto ep = resolve_bind(addr);
  if (!ep) return make_error(impl_->name + ": " + ep.error());
  auto& acc = impl_->acceptors.emplace_back(impl_->io);
  if (auto ec = open_listener(acc, *ep)) {
    impl_->acceptors.pop_back();
    return make_error(impl_->name + ": cannot listen on " + std::string(addr) + ": " + ec.message());
  }
  boost::system::error_code ec;
  impl_->bound_port = acc.local_endpoint(ec).port();
  asio::co_spawn(impl_->io, impl_->accept_loop(acc), asio::detached);

  // "localhost" is both loopbacks, as upstream binds it: also ::1 on the same port. Best effort:
  // a host without IPv6 keeps the IPv4 listener.
  if (iequals(split_host_port(addr)->first, "localhost")) {
    auto& acc6 = impl_->acceptors.emplace_back(impl_->io);
    if (auto ec6 = open_listener(acc6, tcp::endpoint(asio::ip::address_v6::loopback(), impl_->bound_port))) {
      impl_->acceptors.pop_back();
      spdlog::debug("{}: not listening on [::1]:{} ({}); 127.0.0.1 only", impl_->name, impl_->bound_port,
                    ec6.message());
    } else {
      asio::co_spawn(impl_->io, impl_->accept_loop(acc6), asio::detached);
    }
  }
  return ok_status();
}

uint16_t HttpServer::port() const {
  return impl_->bound_port;
}

const std::string& HttpServer::name() const {
  return impl_->name;
}

void HttpServer::stop() {
  auto impl = impl_;
  // Directly when we are on the loop's thread or the loop is not running (no concurrent
  // handler can touch the sockets then); otherwise hand the work to the loop.
  if (impl->io.get_executor().running_in_this_thread() || impl->io.stopped()) {
    impl->close_all();
  } else {
    asio::post(impl->io, [impl] { impl->close_all(); });
  }
}

Response HttpServer::dispatch_for_test(const Request& req) const {
  return impl_->dispatch(req);
}

}  // namespace common::http
