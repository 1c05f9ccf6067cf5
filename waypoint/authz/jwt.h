// RequestAuthentication at the waypoint: JWT extraction and verification with OpenSSL, as
// Envoy's jwt_authn filter plus Istio's istio_authn semantics (waypoint-facts §2.2):
//   - each provider names where its token is (from_headers name + value prefix, from_params);
//     none = `Authorization: Bearer <token>` then the `access_token` query parameter;
//   - a token is matched to the provider whose issuer equals its `iss`; it must then verify:
//     RS256 or ES256 signature with a key of the provider's JWKS (by `kid` when the token names
//     one), `exp` / `nbf` with the provider's clock skew (default 60 s), audiences (any listed);
//     otherwise the request is rejected with 401 and Envoy's message ("Jwt verification fails",
//     "Jwt is expired", "Jwt is not yet valid", "Audiences in Jwt are not allowed", "Jwt issuer is
//     not configured", "Jwt is not in the form of Header.Payload.Signature ...");
//   - no token at all is allowed, with no request principal (an ALLOW on requestPrincipals then
//     denies with 403, as Istio);
//   - a verified token yields the "istio_authn" metadata RBAC reads: request.auth.principal =
//     iss/sub, .audiences, .presenter (azp), .claims (the payload); the token is removed from
//     the request unless `forward`; forward_payload_header gets the base64url payload.
//
// Threading: JwtConfig is immutable after conversion (keys are OpenSSL EVP_PKEYs, which are
// safe for concurrent verification); verify functions are pure apart from OpenSSL's own state.
// Errors are values; nothing throws (JSON is parsed without exceptions).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "waypoint/authz/rbac_model.h"
#include "waypoint/router/http_message.h"

struct evp_pkey_st;  // OpenSSL EVP_PKEY

namespace waypoint::authz {

struct JwtKey {
  std::string kid;
  std::string alg;  // "RS256" / "ES256" / "" (then by key type)
  bool ec = false;  // EC P-256 (ES256) rather than RSA (RS256)
  std::shared_ptr<evp_pkey_st> key;
};

struct JwtHeaderLocation {
  std::string name;    // lower case
  std::string prefix;  // e.g. "Bearer "
};

struct JwtProvider {
  std::string name;
  std::string issuer;
  std::vector<std::string> audiences;  // empty = not checked
  std::vector<JwtKey> keys;
  std::vector<JwtHeaderLocation> from_headers;
  std::vector<std::string> from_params;
  std::string payload_header;  // lower case; empty = none
  bool forward = false;
  uint32_t clock_skew_s = 60;
};

struct JwtConfig {
  std::vector<JwtProvider> providers;
};

// A JWKS document (RFC 7517): RSA keys (n, e) and EC P-256 keys (crv, x, y). Keys of other
// types are skipped; none usable is an error.
common::Result<std::vector<JwtKey>> parse_jwks(std::string_view json);

// base64url without padding (padding tolerated on input).
std::optional<std::string> base64url_decode(std::string_view in);
std::string base64url_encode(std::string_view in);

// header.payload.signature, decoded but not verified.
struct DecodedJwt {
  std::string alg, kid;
  std::string issuer;        // "" when absent
  std::string payload_json;  // decoded payload
  std::string payload_b64;   // as in the token
  std::string signing_input;
  std::string signature;
  MetaValue payload;  // the payload as a JSON object
};
common::Result<DecodedJwt> decode_jwt(std::string_view token);

// Verifies a decoded token against a provider at `now_s` (Unix seconds). Ok or Envoy's message.
common::Status verify_jwt(const DecodedJwt& jwt, const JwtProvider& provider, int64_t now_s);

struct AuthnOutcome {
  bool rejected = false;
  std::string message;  // rejected: the 401 body
  bool authenticated = false;
  MetaValue metadata;  // authenticated: the istio_authn object
};

// The whole filter on one request: extraction, verification, metadata; strips the token and
// adds the payload header on success.
AuthnOutcome authenticate(const JwtConfig& config, router::HttpRequest& request, int64_t now_s);

}  // namespace waypoint::authz
