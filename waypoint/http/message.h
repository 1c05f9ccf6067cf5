// An HTTP request/response as the data path carries it between codecs: the router's head
// types (waypoint/router/http_message.h: lower-case names, pseudo-headers in members), the body
// and what the codec needs to know (protocol, upgrade, 100-continue, the announced length).
// The body is `body` (in memory: local replies, tests, small messages) followed by
// `body_stream` when set (streamed from a peer: body.h). A codec reading from a peer fills
// body_stream and leaves `body` empty; a writer sends `body` then drains `body_stream`.
// Threading: plain values, owned by the one request flow that works on them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "waypoint/http/body.h"
#include "waypoint/router/http_message.h"

namespace waypoint::http {

using router::HeaderList;

enum class Protocol : uint8_t { Http10, Http11, Http2 };
std::string_view to_string(Protocol p);  // "HTTP/1.0" | "HTTP/1.1" | "HTTP/2"

struct Request {
  router::HttpRequest head;  // headers without host and hop-by-hop headers
  std::string body;
  std::shared_ptr<BodyReader> body_stream;
  // The body length the peer announced (content-length), when it did.
  std::optional<uint64_t> content_length;
  Protocol protocol = Protocol::Http11;
  // "websocket" etc. when the client asked to switch protocols (Connection: upgrade).
  std::string upgrade;
  bool expect_continue = false;
};

struct Response {
  uint16_t status = 200;
  HeaderList headers;  // without hop-by-hop headers (except `upgrade` on a 101)
  std::string body;
  std::shared_ptr<BodyReader> body_stream;
  std::optional<uint64_t> content_length;
  HeaderList trailers;  // with an in-memory body; a stream brings its own
};

// Lower-cases ASCII (header names).
std::string lower(std::string_view s);

// Hop-by-hop headers a proxy must not forward (RFC 9110 §7.6.1).
bool is_hop_by_hop(std::string_view lower_name);

}  // namespace waypoint::http
