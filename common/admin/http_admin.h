// A small HTTP/1.1 server for the operational listeners: admin (localhost:15000), stats
// (:15020) and readiness (:15021). Not a general web server: origin-form targets only,
// Content-Length bodies only (Transfer-Encoding is refused with 501), exact-path routing.
//
// Beast (request_parser, serializer; .cc only) does the grammar. parse_request, pure over the bytes
// so far, runs the sessions' own step: request line + fields > max_header_bytes -> 431, body >
// max_body_bytes -> 413, malformed -> 400, not HTTP/1.0 or 1.1 -> 505; fuzz/http_admin_fuzz.cc
// exercises it. Keep-alive follows HTTP/1.1 defaults (1.0 needs "Connection: keep-alive").
//
// Threading: an HttpServer lives on one io_context; handlers run on that context's thread,
// synchronously, so they must be quick (render a string). Each client is its own coroutine, so
// a slow or idle client only occupies its socket, never the loop; idle and header-read
// timeouts close such clients. stop() and the destructor are safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace boost::asio {
class io_context;
}

namespace common::http {

struct Request {
  std::string method;                                        // as sent, case-sensitive ("GET", "POST", ...)
  std::string path;                                          // target up to '?', not percent-decoded
  std::string query;                                         // raw text after '?', without it ("" if none)
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::string body;
  int version_minor = 1;  // HTTP/1.<minor>

  // Case-insensitive header lookup (first match).
  std::optional<std::string_view> header(std::string_view name) const;
  // Query parameter value, percent- and '+'-decoded. "?reset" yields "" (present, no value).
  std::optional<std::string> query_param(std::string_view key) const;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string content_encoding;  // e.g. "gzip"; "" = none (no header)
  std::string body;

  static Response text(int status, std::string body);
  static Response json(std::string body);
};

struct Limits {
  size_t max_header_bytes = 16 * 1024;  // request line + headers + blank line
  size_t max_body_bytes = 64 * 1024;
  size_t max_connections = 256;                     // further clients are accepted and closed at once
  std::chrono::milliseconds header_timeout{10000};  // from first byte to complete request
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive wait for the next request
};

enum class ParseStatus { Incomplete, Complete, Error };

struct ParseResult {
  ParseStatus status = ParseStatus::Incomplete;
  size_t consumed = 0;   // bytes of `buf` used by the request (Complete only)
  int error_status = 0;  // HTTP status to answer with (Error only)
  std::string error;     // reason (Error only), for logs
  bool keep_alive = false;
  Request request;  // valid when Complete
};

ParseResult parse_request(std::string_view buf, const Limits& limits);

// Status line, Content-Type, Content-Length, Connection; body omitted for HEAD.
std::string serialize_response(const Response& r, bool keep_alive, bool head_request);
std::string_view reason_phrase(int status);

// "127.0.0.1:15000", "[::]:15020", "localhost:15000", "[::1]:0" -> host (without brackets)
// and port. The host is not resolved.
Result<std::pair<std::string, uint16_t>> split_host_port(std::string_view addr);
// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(std::string_view host);

class HttpServer {
 public:
  using Handler = std::function<Response(const Request&)>;
  // A deferred handler, for answers that take time (a CPU profile of N seconds): it is called on
  // the server's thread and must call `respond` exactly once, from any thread, later or at
  // once. The client's session waits for it without blocking the loop.
  using AsyncHandler = std::function<void(const Request&, std::function<void(Response)> respond)>;

  HttpServer(boost::asio::io_context& io, std::string name, Limits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Exact-path route, any method (the handler checks the method when it matters).
  // Register before listen().
  void route(std::string path, Handler handler);
  void route_async(std::string path, AsyncHandler handler);
  std::vector<std::string> paths() const;

  // Binds and starts accepting. `addr` as for split_host_port; port 0 picks a free port.
  // "[::]" binds dual-stack; "localhost" binds 127.0.0.1 and, when the host has IPv6, [::1] on
  // the same port (as upstream's admin listener). Call from the thread that owns `io` or
  // before it runs.
  Status listen(std::string_view addr);
  uint16_t port() const;  // the bound port (after listen)
  const std::string& name() const;

  // Closes the listener and every client connection.
  void stop();

  // Runs the routing for `req` as a client would see it (tests, fuzzing).
  Response dispatch_for_test(const Request& req) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace common::http
