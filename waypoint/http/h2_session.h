// H2Session: one HTTP/2 connection (h2c, prior knowledge) over an AnyStream — the inner
// protocol inside an HBONE CONNECT tunnel, or a plain TCP connection to an endpoint outside
// the mesh — built on nghttp2 (which validates frames, pseudo-headers and flow control).
//   Server side (downstream): each request is handed to the RequestHandler with its stream id
//   as soon as its headers are in; the rest of its body (and its trailers) is the request's
//   body_stream. The handler answers with respond() (streams run concurrently). Protocol
//   errors are nghttp2's: a malformed stream gets RST_STREAM, a malformed connection GOAWAY;
//   other streams and connections are untouched.
//   Client side (upstream): submit() a request (its body_stream is sent as it is pulled, its
//   end-of-body trailers as HTTP/2 trailers), wait_headers() for the response head (the body
//   streams), or wait() for the whole response (small exchanges); cancel() resets it
//   (RST_STREAM CANCEL: timeouts, a client that went away).
// Flow control is the back-pressure: WINDOW_UPDATEs are sent only for bytes a body reader took,
// so at most one stream window (Options::stream_window) waits per stream; outgoing bodies are
// pulled from their source only while less than kOutHighWater is queued for nghttp2. A body
// reader dropped before the end resets its stream (the peer's upload or download stops).
// Threading: every member on the stream's executor (one worker); run() must be running for
// anything to move. nghttp2 stays out of this header.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "waypoint/http/any_stream.h"
#include "waypoint/http/message.h"

namespace waypoint::http {

class H2Session : public std::enable_shared_from_this<H2Session> {
 public:
  using RequestHandler = std::function<void(std::shared_ptr<H2Session> session, int32_t stream_id, Request request)>;

  struct Options {
    uint32_t max_body = 1u << 20;  // wait(): the most a whole response may hold
    uint32_t max_concurrent_streams = 1024;  // server side: what we advertise
    uint32_t stream_window = 1u << 20;
    uint32_t connection_window = 16u << 20;
  };

  static std::shared_ptr<H2Session> server(AnyStream stream, Options opts, RequestHandler handler);
  static std::shared_ptr<H2Session> client(AnyStream stream, Options opts);
  ~H2Session();
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  // Processes frames until the connection ends (EOF, error, or both sides' GOAWAY done).
  // `initial`: bytes already read from the stream (the sniffed preface).
  boost::asio::awaitable<void> run(std::string initial = {});

  // Processes `bytes` as if they had just been read from the stream (fuzzing, tests); what the
  // session answers is written by run()'s writer as usual.
  void feed(std::string_view bytes);

  // Server: answers `stream_id`; a body_stream is pulled as the client's window allows. False
  // when the stream is gone (the client reset it or the connection closed): the caller logs
  // flag DC. `done(complete, body_bytes)` runs once when the response ended: complete = its
  // last frame was sent.
  using ResponseDone = std::function<void(bool complete, uint64_t body_bytes)>;
  bool respond(int32_t stream_id, const Response& response, bool head_request, ResponseDone done = {});

  // Client: starts a request; 0 when the connection cannot take another stream. The body is
  // request.body then `body` (a stream) when given, else request.body_stream.
  int32_t submit(const Request& request, std::shared_ptr<BodyReader> body = nullptr);
  struct ClientResult {
    bool ok = false;
    bool refused = false;    // REFUSED_STREAM / GOAWAY before processing: safe to retry anywhere
    bool any_bytes = false;  // response headers had arrived
    std::string detail;
    Response response;
  };
  // The response head; response.body_stream carries the body and trailers.
  boost::asio::awaitable<ClientResult> wait_headers(int32_t stream_id);
  // The whole response (body over Options::max_body: an error, and the stream is reset).
  boost::asio::awaitable<ClientResult> wait(int32_t stream_id);
  // Resets the stream (CANCEL); a pending wait() returns at once.
  void cancel(int32_t stream_id);

  // Client: can carry another stream now (open, no GOAWAY, under the peer's stream limit).
  bool usable() const;
  // Graceful end (drain, a replaced upstream connection): GOAWAY now — a server keeps the
  // streams the client already opened — and the connection closes once its streams finished.
  void retire();
  // Ends the connection at once (force close, tests).
  void close();
  size_t open_streams() const;
  bool closed() const;
  // Since when no stream is open (creation, or the last stream's close); pooled upstream
  // connections are closed after the cluster's idle_timeout of this.
  std::chrono::steady_clock::time_point idle_since() const;

  struct Impl;

 private:
  explicit H2Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace waypoint::http
