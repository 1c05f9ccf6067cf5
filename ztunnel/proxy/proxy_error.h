// ProxyError: the closed set of ways a proxied connection can fail, and the one place that maps
// each of them to what the outside sees: upstream's response flag (the `response_flags` metric
// label, facts §7.1), the HTTP status an inbound CONNECT is answered with, and whether the
// failure is an "early deny" (upstream's `connection failed` WARN line with no metrics: the
// connection was refused before its parties were known) or is recorded as a connection
// (metrics with the flag and a `connection complete` line).
//
// Call sites name a kind and add a human detail; they never choose flags or statuses.
// Threading: plain values and constant tables.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ztunnel {

// Upstream's ResponseFlags; the label values are upstream's encoding.
enum class ResponseFlag : uint8_t {
  None,                // "-"
  Deny,                // "DENY": authorization policy
  Connect,             // "CONNECT": no connection to the upstream / app
  TlsFailure,          // "TLS_FAILURE"
  H2HandshakeFailure,  // "H2_HANDSHAKE_FAILURE"
  NetworkPolicy,       // "NETWORK_POLICY"
  IdentityError,       // "IDENTITY_ERROR"
  CertRevoked,         // "CERT_REVOKED"
};
std::string_view to_string(ResponseFlag f);

enum class ProxyErrorKind : uint8_t {
  // Outbound, before the connection has parties (early deny).
  SelfCall,             // addressed to the outbound listener itself (would loop)
  UnknownSource,        // the local workload is not in the configuration (yet)
  NoHealthyUpstream,    // a service matched but no endpoint can take the connection
  Unroutable,           // a known destination we cannot reach
  NoResolvedAddresses,  // on-demand DNS of a hostname workload gave no address
  // Outbound, opening the upstream.
  NoCertificate,    // no certificate to dial HBONE with (fetch failed or still pending)
  UpstreamConnect,  // TCP connect to the upstream (HBONE peer or plain TCP) failed
  UpstreamTls,      // TLS handshake with the HBONE peer failed
  UpstreamHttp2,    // ALPN/HTTP/2 set-up with the HBONE peer failed
  UpstreamRefused,  // the CONNECT stream was refused or reset
  // Inbound, building the context (early deny, answered with a status).
  InvalidAuthority,      // CONNECT :authority is not ip:port
  UnknownLocalWorkload,  // this proxy's workload is not in the configuration
  NotThisWorkload,       // the target is not an address of the local workload
  ZtunnelPort,           // the target is one of ztunnel's own ports
  // Inbound, authorization and the app.
  PolicyDenied,  // L4 authorization denied it
  AppConnect,    // the local app did not accept the connection
  // While relaying.
  LateRejection,  // a policy change denied the live connection and closed it
  CertRevoked,    // a CRL update revoked the peer's certificate and closed the live connection
  Relay,          // the copy ended with an I/O error
};

struct ProxyErrorTraits {
  std::string_view name;  // stable identifier, for logs and tests
  ResponseFlag flag;
  uint16_t http_status;  // inbound HBONE answer; 0 = not answered with a status
  bool early;            // early deny: logged as `connection failed`, no metrics
};
const ProxyErrorTraits& traits(ProxyErrorKind k);

struct ProxyError {
  ProxyErrorKind kind;
  std::string detail;  // what happened, for the access log's error field

  ResponseFlag flag() const { return traits(kind).flag; }
  uint16_t http_status() const { return traits(kind).http_status; }
  bool early() const { return traits(kind).early; }
  // The access-log error text: the detail, or the kind's name when there is none.
  std::string message() const;
};

// A value or a ProxyError: what each phase of the data path returns.
template <typename T>
class [[nodiscard]] ProxyResult {
 public:
  ProxyResult(T value) : v_(std::in_place_index<0>, std::move(value)) {}   // NOLINT(google-explicit-constructor)
  ProxyResult(ProxyError e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }
  const ProxyError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ProxyError> v_;
};

}  // namespace ztunnel
