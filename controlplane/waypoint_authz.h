// AuthorizationPolicy bound to waypoints (targetRefs) -> Envoy HTTP RBAC per-filter config on the
// waypoint's virtual hosts, with istiod's translation (waypoint-facts §2.1):
//   binding  targetRefs {group gateway.networking.k8s.io, kind Gateway, name W} in the policy's
//            namespace = every service waypoint ns/W serves; {kind Service, name S} = only the
//            routes of ns/S (when S uses a waypoint); {kind GatewayClass, name istio-waypoint} in
//            the root namespace = every waypoint. ServiceEntry and other kinds: Warning, ignored.
//            selector / namespace-wide policies stay with ztunnel (authz_policy.h) untouched.
//   action   DENY, ALLOW, AUDIT -> one RBAC filter instance each, typed_per_filter_config keys
//            envoy.filters.http.rbac.{deny,allow,audit} (RBACPerRoute; rules.action DENY /
//            ALLOW / LOG). CUSTOM needs an ext_authz provider, which we do not support: Error,
//            and the policy is compiled as DENY of what it would have sent to the provider
//            (fail closed rather than silently allowing).
//   rule i   policy "ns[<ns>]-policy[<name>]-rule[<i>]"; permissions = [and(to, when-on-request)],
//            principals = [and(from, when-on-source)]; entries of a list OR, fields AND, values
//            OR, notX = not(or(...)); an empty part is `any`.
//   fields   principals -> authenticated.principal_name on "spiffe://" + value (globs: `*` =
//            present, `x*` prefix, `*x` suffix); namespaces -> principal_name regex on the
//            /ns/<ns>/ segment; serviceAccounts -> principal_name regex ".../ns/N/sa/S";
//            ipBlocks -> direct_remote_ip; remoteIpBlocks -> remote_ip; requestPrincipals ->
//            metadata istio_authn [request.auth.principal]; hosts -> header :authority
//            (ignore case); methods -> header :method; paths -> url_path (Istio templates
//            `{*}` one segment, `{**}` the rest, as safe_regex); ports -> destination_port.
//   when     request.headers[h], source.ip, remote.ip, source.namespace, source.principal,
//            request.auth.principal / audiences / presenter / claims[a][b]..., destination.ip,
//            destination.port; anything else is an Error.
// A value that cannot be compiled is an Error naming file/object/field; as for ztunnel, the
// rule is then omitted from an ALLOW/AUDIT policy (matches less) and kept without that
// constraint in a DENY (denies more). Other policies are unaffected.
//
// Threading: built and used on one thread by compile_waypoints(). Protobuf stays in the .cc.
#pragma once

#include <memory>

#include "controlplane/compiler.h"
#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"
#include "controlplane/waypoint_vhost_policy.h"

namespace controlplane {

// Compiles every targetRefs AuthorizationPolicy of `in` once; findings go to `diags`.
std::unique_ptr<WaypointVhostPolicy> compile_waypoint_authz(const ResourceSet& in, const CompileOptions& options,
                                                            Diagnostics& diags);

}  // namespace controlplane
