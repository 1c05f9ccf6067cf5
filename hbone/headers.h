// HBONE request/response header codecs: `baggage` (peer workload metadata for telemetry),
// `forwarded` (RFC 7239; original client address and intended service host), `traceparent`
// (W3C trace context) and the CONNECT `:authority` (target ip:port).
//
// All of these arrive from the network, possibly from a hostile peer: parsers are pure
// functions, never throw, never allocate more than a small multiple of their (bounded) input,
// and reject rather than guess. They take no locks and are safe on any thread.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hbone {

// Inputs longer than this are rejected outright (well below nghttp2's header list limits, far
// above anything a real peer sends).
inline constexpr size_t kMaxHeaderValueBytes = 8192;
inline constexpr size_t kMaxAuthorityBytes = 512;

// ---- baggage ----
// The W3C baggage subset Istio uses:
//   k8s.cluster.name, k8s.namespace.name, k8s.<type>.name (type = deployment | cronjob | pod |
//   job | ...), service.name, service.version, cloud.region, cloud.availability_zone.
struct Baggage {
  std::string cluster_id;
  std::string ns;
  std::string workload_type;  // the <type> of k8s.<type>.name
  std::string workload_name;
  std::string service_name;     // canonical service
  std::string service_version;  // canonical revision
  std::string region;
  std::string zone;
  bool operator==(const Baggage&) const = default;
};

// Comma-joined key=value list with only the non-empty fields (workload_type and
// workload_name go together).
std::string format_baggage(const Baggage& b);
// Accepts "k=v" members separated by ',' with optional whitespace; W3C member properties after
// ';' are ignored, unknown keys are ignored, empty members are skipped. nullopt when too long,
// a member has no '=' or an empty key, or a character outside visible ASCII/space/tab appears.
std::optional<Baggage> parse_baggage(std::string_view value);

// ---- forwarded (RFC 7239) ----
struct ForwardedElement {
  std::string for_node;  // "for" (quotes removed), e.g. "10.0.0.1:1234" or "[::1]:80"
  std::string by;
  std::string host;
  std::string proto;
  bool operator==(const ForwardedElement&) const = default;
};

// `for="<client>"` plus `;host=<host>` when host is non-empty (quoted only if it is not a
// token), exactly what upstream ztunnel sends.
std::string format_forwarded(std::string_view client_addr, std::string_view host = {});
// Elements separated by ',', pairs by ';', values token or quoted-string (with \-escapes).
// Parameter names are case-insensitive; unknown parameters are ignored; a repeated parameter
// within one element is an error (RFC 7239 §4). nullopt on any syntax error or oversize input.
std::optional<std::vector<ForwardedElement>> parse_forwarded(std::string_view value);

// ---- traceparent ----
struct TraceParent {
  std::array<uint8_t, 16> trace_id{};
  std::array<uint8_t, 8> parent_id{};
  uint8_t flags = 0;

  // "00-<32 hex>-<16 hex>-<2 hex>", lower-case.
  std::string to_string() const;
  // Random non-zero ids, flags 00 (what ztunnel sends per outbound connection).
  static TraceParent random();
  bool operator==(const TraceParent&) const = default;
};

// Exactly 55 characters, version "00", lower-case hex, non-zero trace and parent ids.
std::optional<TraceParent> parse_traceparent(std::string_view value);

// ---- CONNECT :authority ----
struct Authority {
  // Set for IP targets. IPv4-mapped IPv6 is returned as IPv4.
  std::optional<boost::asio::ip::address> ip;
  // The host text for hostname targets (only when allowed); empty for IP targets.
  std::string hostname;
  uint16_t port = 0;

  bool is_ip() const { return ip.has_value(); }
};

// "1.2.3.4:80", "[fd00::1]:80", or (allow_hostname) "svc.ns.svc.cluster.local:80".
// Port must be 1-65535 in plain decimal without leading zeros; IPv6 must be bracketed and
// zone-free; hostnames must be DNS-shaped (letters, digits, '-', '.', labels <= 63, total
// <= 253). Anything else -> nullopt.
std::optional<Authority> parse_authority(std::string_view value, bool allow_hostname = false);
// Inverse of parse_authority for IP targets: "ip:port" / "[v6]:port".
std::string format_authority(const boost::asio::ip::address& ip, uint16_t port);

}  // namespace hbone
