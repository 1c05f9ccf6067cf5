// H2Session: one HTTP/2 connection (h2c, prior knowledge) over an AnyStream — the inner
// protocol inside an HBONE CONNECT tunnel, or a plain TCP connection to an endpoint outside
// the mesh — built on nghttp2 (which validates frames, pseudo-headers and flow control).
//   Server side (downstream): every complete request is handed to the RequestHandler with its
//   stream id; the handler answers with respond() whenever it is done (streams run
//   concurrently). Protocol errors are nghttp2's: a malformed stream gets RST_STREAM, a
//   malformed connection GOAWAY; other streams and connections are untouched.
//   Client side (upstream): submit() a request, wait() for its response (headers, body,
//   trailers), cancel() to reset it (timeouts). Many streams share the connection (the
//   per-worker, per-endpoint multiplexed upstream connection of the Connector).
// Messages are the data path's whole-message model (http::Request / http::Response); a body
// over `max_body` is refused (413 to a client, a Reset result from an upstream) and its bytes
// dropped, so memory per stream stays bounded.
// Threading: every member on the stream's executor (one worker); run() must be running for
// anything to move. nghttp2 stays out of this header.
#pragma once

#include <boost/asio/awaitable.hpp>
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
    uint32_t max_body = 1u << 20;
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

  // Server: answers `stream_id`. False when the stream is gone (the client reset it or the
  // connection closed): the caller logs flag DC.
  bool respond(int32_t stream_id, const Response& response, bool head_request);

  // Client: starts a request; 0 when the connection cannot take another stream.
  int32_t submit(const Request& request);
  struct ClientResult {
    bool ok = false;
    bool refused = false;    // REFUSED_STREAM / GOAWAY before processing: safe to retry anywhere
    bool any_bytes = false;  // response headers had arrived
    std::string detail;
    Response response;
  };
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

  struct Impl;

 private:
  explicit H2Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace waypoint::http
