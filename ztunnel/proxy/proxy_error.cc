#include "ztunnel/proxy/proxy_error.h"

#include <array>

namespace ztunnel {

std::string_view to_string(ResponseFlag f) {
  switch (f) {
    case ResponseFlag::None:
      return "-";
    case ResponseFlag::Deny:
      return "DENY";
    case ResponseFlag::Connect:
      return "CONNECT";
    case ResponseFlag::TlsFailure:
      return "TLS_FAILURE";
    case ResponseFlag::H2HandshakeFailure:
      return "H2_HANDSHAKE_FAILURE";
    case ResponseFlag::NetworkPolicy:
      return "NETWORK_POLICY";
    case ResponseFlag::IdentityError:
      return "IDENTITY_ERROR";
    case ResponseFlag::CertRevoked:
      return "CERT_REVOKED";
  }
  return "-";
}

namespace {
using F = ResponseFlag;
// Indexed by ProxyErrorKind; the static_assert below keeps the two in step.
constexpr std::array<ProxyErrorTraits, 19> kTraits = {{
    {"SelfCall", F::None, 0, true},
    {"UnknownSource", F::None, 0, true},
    {"NoHealthyUpstream", F::None, 0, true},
    {"Unroutable", F::None, 0, true},
    // Upstream's build_request fails before the connection has a result: an early deny.
    {"NoResolvedAddresses", F::None, 0, true},
    // A connection that could not get a certificate never reached its peer: TLS_FAILURE, as
    // a failed handshake would be.
    {"NoCertificate", F::TlsFailure, 0, false},
    {"UpstreamConnect", F::Connect, 0, false},
    {"UpstreamTls", F::TlsFailure, 0, false},
    {"UpstreamHttp2", F::H2HandshakeFailure, 0, false},
    {"UpstreamRefused", F::Connect, 0, false},
    {"InvalidAuthority", F::None, 400, true},
    // 503, not 400: the request may be fine and our configuration late.
    {"UnknownLocalWorkload", F::None, 503, true},
    {"NotThisWorkload", F::None, 400, true},
    {"ZtunnelPort", F::None, 400, true},
    {"PolicyDenied", F::Deny, 401, false},
    {"AppConnect", F::Connect, 503, false},
    // Relay errors end a connection whose series was opened as "-"; the flag stays.
    {"LateRejection", F::None, 0, false},
    // Upstream attributes a CRL teardown to the peer's revoked certificate (CERT_REVOKED).
    {"CertRevoked", F::CertRevoked, 0, false},
    {"Relay", F::None, 0, false},
}};
static_assert(kTraits.size() == static_cast<size_t>(ProxyErrorKind::Relay) + 1);
}  // namespace

const ProxyErrorTraits& traits(ProxyErrorKind k) {
  return kTraits[static_cast<size_t>(k)];
}

std::string ProxyError::message() const {
  return detail.empty() ? std::string(traits(kind).name) : detail;
}

}  // namespace ztunnel
