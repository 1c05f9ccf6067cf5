// libFuzzer target: the waypoint's JWT parsing (waypoint/authz/jwt.h), which reads tokens from
// untrusted request headers, plus the JWKS parser. Contract: no crash or exception; base64url
// round-trips; a decoded token's signing input is a prefix of the token; verification of a
// decoded token against a provider without keys never succeeds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "waypoint/authz/jwt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  if (auto d = waypoint::authz::base64url_decode(in)) {
    if (waypoint::authz::base64url_decode(waypoint::authz::base64url_encode(*d)) != *d) std::abort();
  }
  if (auto jwt = waypoint::authz::decode_jwt(in); jwt.ok()) {
    if (in.compare(0, jwt->signing_input.size(), jwt->signing_input) != 0) std::abort();
    waypoint::authz::JwtProvider none;
    if (waypoint::authz::verify_jwt(*jwt, none, 0).ok()) std::abort();
  }
  (void)waypoint::authz::parse_jwks(in);
  // The same bytes as a request's Authorization header.
  waypoint::authz::JwtConfig cfg;
  cfg.providers.emplace_back();
  cfg.providers.back().issuer = "fuzz";
  waypoint::router::HttpRequest req;
  req.path = "/?access_token=" + in.substr(0, 64);
  req.headers.add("authorization", "Bearer " + in);
  auto o = waypoint::authz::authenticate(cfg, req, 0);
  if (o.authenticated) std::abort();
  return 0;
}
