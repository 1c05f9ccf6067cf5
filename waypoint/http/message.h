// HTTP request/response as the waypoint's filters and router see them, independent of the wire
// codec (HTTP/1.1 via Beast today, HTTP/2 later): header names are lower-case (HTTP/2 rules),
// values kept as received, order and repeats preserved.
// Bodies are buffered whole (bounded by Config::max_body_bytes): a request must be replayable
// for retries and mirrors, as Envoy buffers for them.
// Threading: plain values, owned by the one request flow that works on them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace waypoint::http {

class HeaderMap {
 public:
  using Entry = std::pair<std::string, std::string>;

  // First value of `name` (lower-case), or nullopt.
  std::optional<std::string_view> get(std::string_view name) const;
  // All values of `name` joined with "," (Envoy's matching rule for repeated headers).
  std::optional<std::string> joined(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }
  // Replaces every value of `name` with one.
  void set(std::string_view name, std::string_view value);
  void add(std::string_view name, std::string_view value);
  void remove(std::string_view name);
  size_t size() const { return entries_.size(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

// Lower-cases ASCII (header names).
std::string lower(std::string_view s);

enum class Protocol : uint8_t { Http10, Http11, Http2 };
std::string_view to_string(Protocol p);  // "HTTP/1.0" | "HTTP/1.1" | "HTTP/2"

struct Request {
  std::string method;
  std::string path;       // origin-form, with the query string
  std::string authority;  // Host / :authority
  std::string scheme = "http";
  HeaderMap headers;      // without Host (it is `authority`) and without hop-by-hop headers
  std::string body;
  Protocol protocol = Protocol::Http11;
  // "websocket" etc. when the client asked to switch protocols (Connection: upgrade).
  std::string upgrade;
  bool expect_continue = false;
};

struct Response {
  int status = 200;
  HeaderMap headers;  // without hop-by-hop headers
  std::string body;
  HeaderMap trailers;
};

// Hop-by-hop headers a proxy must not forward (RFC 9110 §7.6.1); `te` and `upgrade` are
// handled by the codec.
bool is_hop_by_hop(std::string_view lower_name);

}  // namespace waypoint::http
