// RequestAuthentication bound to waypoints (targetRefs, bound as AuthorizationPolicy is:
// Gateway / Service / GatewayClass istio-waypoint from the root namespace) -> the waypoint's
// jwt_authn config: typed_per_filter_config["envoy.filters.http.jwt_authn"] on the virtual host,
// a JwtAuthentication whose providers are the jwtRules that apply, named "<ns>/<name>/<i>"
// (waypoint-facts §2.2; proto/envoy/extensions/filters/http/jwt_authn/v3/config.proto).
//   issuer -> issuer; audiences -> audiences; fromHeaders -> from_headers {name, value_prefix};
//   fromParams -> from_params; outputPayloadToHeader -> forward_payload_header;
//   forwardOriginalToken -> forward; jwks -> local_jwks.inline_string; jwksUri file:///path ->
//   the file is read at compile time and inlined (istiod also inlines the JWKS it fetched);
//   jwksUri http(s):// and, with neither jwks nor jwksUri, OpenID discovery from the issuer
//   take the keys CompileOptions::jwks (jwks_resolver.h) fetched in the background; until it
//   has some, kFailedJwks (every token 401) and a Warning; without a resolver an Error.
//   Other jwksUri schemes are an Error.
// A rule whose JWKS is missing, unreadable or not a JWKS is an Error naming the field and is
// left out; the other rules and objects still compile. Selector-based RequestAuthentications
// (sidecar/ztunnel-side in Istio) get a Warning: nothing enforces them here.
//
// Threading: built and used on one thread by compile_waypoints(). Protobuf stays in the .cc.
#pragma once

#include <memory>

#include "controlplane/compiler.h"
#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"
#include "controlplane/waypoint_vhost_policy.h"

namespace controlplane {

// Compiles every targetRefs RequestAuthentication of `in` once; findings go to `diags`.
std::unique_ptr<WaypointVhostPolicy> compile_waypoint_authn(const ResourceSet& in, const CompileOptions& options,
                                                            Diagnostics& diags);

}  // namespace controlplane
