#include "common/admin/http_admin.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <iterator>
#include <limits>
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
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/hex.h"

namespace common::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// ---- small helpers --------------------------------------------------------------------------
namespace {

using common::hex_value;

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

}  // namespace

// ---- Request / Response -------------------------------------------------------------------

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return std::string_view(v);
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
//
// Beast's request_parser does the HTTP/1.1 grammar; this layer adds what the admin server
// promises on top of it (one total header budget, origin-form targets, 1.0/1.1 only, no
// Transfer-Encoding, a field count cap) and turns Beast's errors into HTTP statuses. The same
// step function serves parse_request (pure, fuzzed) and the sessions (incremental), so both
// answer every input alike.

namespace {

using BeastParser = bhttp::request_parser<bhttp::string_body>;

constexpr size_t kMaxHeaderFields = 100;

// Outcome of feeding bytes to a BeastParser: how many it used and what it knows now.
struct Step {
  ParseStatus status = ParseStatus::Incomplete;
  size_t used = 0;
  int error_status = 0;
  std::string error;
};

Step step_error(size_t used, int status, std::string why) {
  Step s;
  s.status = ParseStatus::Error;
  s.used = used;
  s.error_status = status;
  s.error = std::move(why);
  return s;
}

// The checks Beast leaves to us, on a complete header, before any body byte is parsed (so a
// chunked body is refused with 501 rather than parsed).
Step check_header(const BeastParser& p, size_t used) {
  const auto& req = p.get();
  unsigned version = req.version();
  if (version != 10 && version != 11) return step_error(used, 505, "unsupported HTTP version");
  std::string_view target = req.target();
  if (target.empty() || target.front() != '/') return step_error(used, 400, "invalid request target");
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return step_error(used, 400, "invalid character in request target");
  }
  if (req.count(bhttp::field::transfer_encoding) != 0) {
    return step_error(used, 501, "Transfer-Encoding is not supported");
  }
  if (std::distance(req.begin(), req.end()) > static_cast<std::ptrdiff_t>(kMaxHeaderFields)) {
    return step_error(used, 431, "too many header fields");
  }
  return Step{ParseStatus::Incomplete, used, 0, {}};
}

// Beast says bad_version both for a well-formed version it does not speak ("HTTP/2.0": 505)
// and for garbage (400); `start` begins at the request line it rejected.
bool version_well_formed(std::string_view start) {
  std::string_view line = start.substr(0, start.find("\r\n"));
  std::string_view v = line.substr(line.rfind(' ') + 1);
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return v.size() == 8 && v.substr(0, 5) == "HTTP/" && digit(v[5]) && v[6] == '.' && digit(v[7]);
}

Step map_beast_error(const beast::error_code& ec, std::string_view unparsed, size_t used) {
  if (ec == bhttp::error::header_limit) return step_error(used, 431, "request header block too large");
  if (ec == bhttp::error::body_limit) return step_error(used, 413, "request body too large");
  if (ec == bhttp::error::bad_version) {
    if (version_well_formed(unparsed)) return step_error(used, 505, "unsupported HTTP version");
    return step_error(used, 400, "malformed HTTP version");
  }
  return step_error(used, 400, "malformed request: " + ec.message());
}

// Feeds the unconsumed bytes `buf` to `p` (which may already hold earlier bytes of the same
// request: `header_used` counts those that went into its header). Beast needs the whole
// remaining header in one contiguous buffer, so on Incomplete the caller keeps buf[used..] and
// calls again with more appended.
Step feed(BeastParser& p, std::string_view buf, size_t& header_used, const Limits& limits) {
  size_t used = 0;
  while (!p.is_done()) {
    if (used == buf.size()) return Step{ParseStatus::Incomplete, used, 0, {}};
    const bool header_was_done = p.is_header_done();
    std::string_view unparsed = buf.substr(used);
    std::string_view chunk = unparsed;
    size_t budget = 0;
    if (!header_was_done) {
      // Beast applies its limit to the start line and to the fields separately; ours is one
      // budget for both, so Beast sees only what is left of it.
      if (header_used >= limits.max_header_bytes) return step_error(used, 431, "request header block too large");
      budget = limits.max_header_bytes - header_used;
      chunk = unparsed.substr(0, budget);
      p.header_limit(static_cast<std::uint32_t>(std::min<size_t>(budget, std::numeric_limits<std::uint32_t>::max())));
    }
    beast::error_code ec;
    size_t n = p.put(asio::buffer(chunk.data(), chunk.size()), ec);
    used += n;
    if (!header_was_done) header_used += n;
    if (ec == bhttp::error::need_more) {
      // The whole budget was offered and the header still is not complete.
      if (!header_was_done && unparsed.size() >= budget) {
        return step_error(used, 431, "request header block too large");
      }
      return Step{ParseStatus::Incomplete, used, 0, {}};
    }
    if (ec) return map_beast_error(ec, unparsed.substr(n), used);
    if (!header_was_done && p.is_header_done()) {
      Step checked = check_header(p, used);
      if (checked.status == ParseStatus::Error) return checked;
      p.eager(true);  // header accepted: take the body in as few calls as possible
    }
    if (n == 0 && !p.is_done()) return Step{ParseStatus::Incomplete, used, 0, {}};
  }
  return Step{ParseStatus::Complete, used, 0, {}};
}

std::unique_ptr<BeastParser> make_parser(const Limits& limits) {
  auto p = std::make_unique<BeastParser>();
  p->body_limit(limits.max_body_bytes);
  p->eager(false);  // stop after the header so check_header runs before the body
  return p;
}

// Moves a finished parse into our Request (names as sent, in order, values OWS-trimmed).
ParseResult finish(BeastParser& p, size_t consumed) {
  ParseResult r;
  r.status = ParseStatus::Complete;
  r.consumed = consumed;
  r.keep_alive = p.keep_alive();
  auto msg = p.release();
  Request& req = r.request;
  req.method = std::string(msg.method_string());
  std::string_view target = msg.target();
  size_t qmark = target.find('?');
  req.path = std::string(target.substr(0, qmark));
  if (qmark != std::string_view::npos) req.query = std::string(target.substr(qmark + 1));
  req.version_minor = static_cast<int>(msg.version() % 10);
  for (const auto& f : msg) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  req.body = std::move(msg.body());
  return r;
}

ParseResult parse_error(const Step& s) {
  ParseResult r;
  r.status = ParseStatus::Error;
  r.error_status = s.error_status;
  r.error = s.error;
  return r;
}

}  // namespace

ParseResult parse_request(std::string_view buf, const Limits& limits) {
  auto p = make_parser(limits);
  size_t header_used = 0;
  Step s = feed(*p, buf, header_used, limits);
  if (s.status == ParseStatus::Incomplete) return ParseResult{};
  if (s.status == ParseStatus::Error) return parse_error(s);
  return finish(*p, s.used);
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

namespace {

// The wire form of `r`. Fields in a fixed order (Content-Type, Content-Encoding, Content-Length,
// Connection); HEAD keeps the Content-Length of the body it does not carry.
bhttp::response<bhttp::string_body> to_beast(Response r, bool keep_alive, bool head_request) {
  bhttp::response<bhttp::string_body> msg;
  msg.version(11);
  msg.result(static_cast<unsigned>(r.status));
  msg.reason(reason_phrase(r.status));
  msg.set(bhttp::field::content_type, r.content_type);
  if (!r.content_encoding.empty()) msg.set(bhttp::field::content_encoding, r.content_encoding);
  msg.content_length(r.body.size());
  msg.set(bhttp::field::connection, keep_alive ? "keep-alive" : "close");
  if (!head_request) msg.body() = std::move(r.body);
  return msg;
}

}  // namespace

std::string serialize_response(const Response& r, bool keep_alive, bool head_request) {
  auto msg = to_beast(r, keep_alive, head_request);
  bhttp::response_serializer<bhttp::string_body> sr(msg);
  std::string out;
  beast::error_code ec;
  while (!ec && !sr.is_done()) {
    sr.next(ec, [&](beast::error_code& vec, const auto& buffers) {
      vec = {};
      size_t n = 0;
      for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
        asio::const_buffer b = *it;
        out.append(static_cast<const char*>(b.data()), b.size());
        n += b.size();
      }
      sr.consume(n);
    });
  }
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
  if (beast::iequals(host, "localhost")) return true;
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

  Impl(asio::io_context& io, std::string name, Limits limits) : io(io), name(std::move(name)), limits(limits) {}

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

  // Answers a request that cannot be parsed, then the session ends (the stream position is
  // unknown after a bad request, so nothing more on this connection can be trusted).
  asio::awaitable<void> write_error(const std::shared_ptr<Session>& s, int status, const std::string& why) {
    auto msg = to_beast(Response::text(status, why + "\n"), false, false);
    co_await bhttp::async_write(s->socket, msg, asio::as_tuple(asio::use_awaitable));
  }

  asio::awaitable<void> serve(std::shared_ptr<Session> s) {
    auto self = shared_from_this();
    // Unparsed bytes; Beast wants a request's remaining header contiguous, which a flat buffer
    // is. Bounded: we read only while the parser wants more, and the parser caps the header.
    beast::flat_buffer buf;
    bool waiting_for_new_request = true;
    arm_timer(s, limits.idle_timeout);
    for (;;) {
      auto parser = make_parser(limits);
      size_t header_used = 0;
      Step st;
      for (;;) {
        st = feed(*parser, std::string_view(static_cast<const char*>(buf.data().data()), buf.size()), header_used,
                  limits);
        buf.consume(st.used);
        if (st.status != ParseStatus::Incomplete) break;
        if (waiting_for_new_request && (parser->got_some() || buf.size() != 0)) {
          // First bytes of a request: the whole request must now arrive within header_timeout.
          waiting_for_new_request = false;
          arm_timer(s, limits.header_timeout);
        }
        auto [ec, n] = co_await s->socket.async_read_some(buf.prepare(4096), asio::as_tuple(asio::use_awaitable));
        if (ec) break;
        buf.commit(n);
      }
      if (st.status == ParseStatus::Incomplete) break;  // read error, EOF or timeout
      if (st.status == ParseStatus::Error) {
        co_await write_error(s, st.error_status, st.error);
        break;
      }
      ParseResult pr = finish(*parser, 0);
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
      auto msg = to_beast(std::move(resp), pr.keep_alive, head);
      auto [wec, wn] = co_await bhttp::async_write(s->socket, msg, asio::as_tuple(asio::use_awaitable));
      if (wec || !pr.keep_alive) break;
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
  if (beast::iequals(split_host_port(addr)->first, "localhost")) {
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
