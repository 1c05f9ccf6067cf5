// HTTP/1.1 codec over an AnyStream, built on Boost.Beast's parser and serializer (never a
// hand-rolled parser: Beast handles chunked framing, obs-fold, size limits).
//   Server side (downstream, inside the CONNECT tunnel): read_request() answers
//   `Expect: 100-continue` itself once the headers are in (Envoy's default), then reads the
//   body; write_response() frames a Response with Content-Length (or none for 1xx/204/304
//   and HEAD), keeping the connection open unless either side said close.
//   Client side (upstream): write_request() / read_response().
// Whole-message functions (read_request, read_response, write_*) buffer the body, bounded by
// `max_body` (a larger one is an error value, never a throw): tests, fuzzing, small exchanges.
// The data path streams instead: read_request_head / read_response_head return the head with a
// body_stream that reads the rest of the message from the connection as the consumer pulls it
// (nothing is read ahead: back-pressure), and write_request_stream / write_response_stream frame
// a streamed body with the announced Content-Length, else chunked (HTTP/1.0: until close).
// Beast stays out of this header: the buffer is opaque.
// Threading: the caller's coroutine, on the stream's executor.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "waypoint/http/any_stream.h"
#include "waypoint/http/message.h"

namespace waypoint::http {

// Bytes read past one message (pipelining, keep-alive); one per connection direction.
class ReadBuffer {
 public:
  ReadBuffer();
  ~ReadBuffer();
  ReadBuffer(ReadBuffer&&) noexcept;
  ReadBuffer& operator=(ReadBuffer&&) noexcept;
  struct Impl;
  Impl& impl() { return *impl_; }
  // Unconsumed bytes (handed to the upgrade relay after a 101).
  std::string take();
  // Bytes read before the codec took over (the sniffed start of the stream).
  void put(std::string_view bytes);

 private:
  std::unique_ptr<Impl> impl_;
};

enum class ReadError : uint8_t {
  None,
  Closed,     // clean EOF before a message started (keep-alive end)
  Reset,      // the stream failed (reset, connection lost, aborted by a timer)
  Malformed,  // protocol error (DPE / UPE)
  TooLarge,   // headers or body over the limit (413 / 431)
};

struct ReadRequestResult {
  ReadError error = ReadError::None;
  std::string detail;
  Request request;
  bool keep_alive = true;
};

boost::asio::awaitable<ReadRequestResult> read_request(AnyStream& s, ReadBuffer& buf, uint32_t max_body);

// `close` forces Connection: close. Returns false when the write failed.
boost::asio::awaitable<bool> write_response(AnyStream& s, const Response& r, Protocol version, bool head, bool close);

boost::asio::awaitable<bool> write_request(AnyStream& s, const Request& r);

struct ReadResponseResult {
  ReadError error = ReadError::None;
  std::string detail;
  Response response;
  bool keep_alive = true;
  bool any_bytes = false;  // something arrived (a reused idle connection that died has none)
};

boost::asio::awaitable<ReadResponseResult> read_response(AnyStream& s, ReadBuffer& buf, uint32_t max_body,
                                                         bool head_request);

// ---- Streaming ------------------------------------------------------------------------------

// One HTTP/1.1 connection's stream and read buffer, shared between the connection's loop and
// the body reader of its current message (which may outlive the loop's interest in it).
struct Connection {
  explicit Connection(AnyStream s) : stream(std::move(s)) {}
  AnyStream stream;
  ReadBuffer buf;
  std::string head_buffer;  // write_response_stream's, reused message after message
};

// Server side. A request with a body gets request.body_stream; its first pull answers
// `Expect: 100-continue` (so a request answered locally never invites the body).
boost::asio::awaitable<ReadRequestResult> read_request_head(std::shared_ptr<Connection> c);

// Client side. Interim 1xx (other than 101) are skipped. The body reader owns `owner` (the
// upstream connection) and calls `done(clean)` once: clean = the whole body was read and the
// connection may carry another request. A reader dropped or aborted before the end calls
// done(false).
using BodyDone = std::function<void(bool clean)>;
boost::asio::awaitable<ReadResponseResult> read_response_head(AnyStream& s, ReadBuffer& buf, bool head_request,
                                                              std::shared_ptr<void> owner, BodyDone done);

struct StreamWriteResult {
  bool ok = false;             // every byte of the message was written
  bool body_error = false;     // the body source failed (the write stopped there)
  uint64_t body_bytes = 0;     // body bytes written
  bool must_close = false;     // the body was delimited by closing the connection (HTTP/1.0)
  std::string detail;
};

// Writes the head, then `body`, then drains `body_stream` chunk by chunk (each written before
// the next is pulled). `head_buffer`: where the head is serialized, reused message after
// message by a connection so that its capacity is kept (null: a buffer of this call's own);
// it must outlive the call.
boost::asio::awaitable<StreamWriteResult> write_request_stream(AnyStream& s, const Request& r,
                                                               std::shared_ptr<BodyReader> body,
                                                               std::string* head_buffer = nullptr);
boost::asio::awaitable<StreamWriteResult> write_response_stream(AnyStream& s, const Response& r, Protocol version,
                                                                bool head, bool close,
                                                                std::string* head_buffer = nullptr);

// Parses one complete request from memory (fuzzing and tests); the same conversion rules as
// read_request. Errors name what was wrong.
common::Result<Request> parse_request(std::string_view bytes, uint32_t max_body);
// Serializes a request as write_request would put it on the wire.
std::string serialize_request(const Request& r);

}  // namespace waypoint::http
