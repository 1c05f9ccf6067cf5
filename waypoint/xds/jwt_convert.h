// typed_per_filter_config["envoy.filters.http.jwt_authn"] (a JwtAuthentication with providers;
// proto/envoy/extensions/filters/http/jwt_authn/v3/config.proto says why it is the whole config)
// -> waypoint::authz::JwtConfig. Refused by name: remote_jwks (the control plane inlines JWKS,
// as istiod does), local_jwks other than inline_string / inline_bytes, from_cookies,
// claim_to_headers, payload_in_metadata, pad_forward_payload_header; an unusable JWKS or an
// empty issuer is an error naming the provider.
//
// Threading: pure functions. Protobuf types are forward-declared.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "waypoint/authz/jwt.h"

namespace google::protobuf {
class Any;
}

namespace waypoint::xds {

inline constexpr std::string_view kJwtAuthnFilterName = "envoy.filters.http.jwt_authn";

common::Result<std::shared_ptr<const authz::JwtConfig>> convert_jwt_authn(const google::protobuf::Any& any,
                                                                          const std::string& path);

}  // namespace waypoint::xds
