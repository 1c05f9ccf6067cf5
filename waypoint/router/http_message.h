// The HTTP request and response heads the router reads and rewrites, independent of the wire
// codec: the HTTP/1.1 (Beast) and HTTP/2 (nghttp2) codecs of the data path fill an HttpRequest
// from what they parsed and serialise it again after routing.
//
// Threading: plain values owned by one request on one worker; no sharing.
// Invariants: header names are lower case (codecs lower-case on parse; HTTP/2 requires it), the
// pseudo-headers live in the named members, never in `headers`; `path` is the raw request target
// in origin form (path plus optional "?query"), as received.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace waypoint::router {

struct HeaderField {
  std::string name;
  std::string value;
};

// An ordered multimap of header fields, kept in arrival order (small: a vector beats a map at the
// header counts requests carry).
class HeaderList {
 public:
  HeaderList() = default;
  HeaderList(std::initializer_list<HeaderField> fields) : fields_(fields) {}

  // First value of `name`, if present.
  std::optional<std::string_view> get(std::string_view name) const;
  // All values of `name` joined by "," (Envoy's multi-value matching rule); nullopt if absent.
  std::optional<std::string> get_joined(std::string_view name) const;
  bool contains(std::string_view name) const { return get(name).has_value(); }

  void add(std::string name, std::string value) { fields_.push_back({std::move(name), std::move(value)}); }
  // Replaces every value of `name` by one value (position of the first occurrence, else appended).
  void set(std::string_view name, std::string value);
  // Removes every value of `name`; returns how many were removed.
  size_t remove(std::string_view name);

  const std::vector<HeaderField>& fields() const { return fields_; }
  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }

 private:
  std::vector<HeaderField> fields_;
};

struct HttpRequest {
  std::string method;     // :method
  std::string scheme;     // :scheme ("http" inside HBONE)
  std::string authority;  // :authority / Host
  std::string path;       // :path, with the query string
  HeaderList headers;

  // Lookup including the pseudo-headers (":method", ":authority"/"host", ":path", ":scheme").
  std::optional<std::string> header_joined(std::string_view name) const;
  // The path without "?query" (and without a "#fragment", which clients should not send).
  std::string_view path_only() const;
  // The query string after '?', without the '?'; empty when absent.
  std::string_view query() const;
};

struct HttpResponseHead {
  uint16_t status = 200;
  HeaderList headers;
};

// A response the waypoint produces itself (redirect, direct response, CORS preflight, fault
// abort). The data path adds content-length and serialises it with the request's codec.
struct LocalResponse {
  uint16_t status = 200;
  HeaderList headers;
  std::string body;
  // gRPC requests get HTTP 200 with grpc-status/grpc-message (trailers-only) instead.
  std::optional<uint32_t> grpc_status;
};

}  // namespace waypoint::router
