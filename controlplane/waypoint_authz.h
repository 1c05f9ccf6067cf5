// AuthorizationPolicy bound to waypoints (targetRefs) -> Envoy HTTP RBAC per-filter config on the
// waypoint's virtual hosts, with istiod's translation (waypoint-facts §2.1):
//   binding  targetRefs {group gateway.networking.k8s.io, kind Gateway, name W} in the policy's
//            namespace = every service waypoint ns/W serves; {kind Service, name S} = only the
//            routes of ns/S (when S uses a waypoint); {kind GatewayClass, name istio-waypoint} in
//            the root namespace = every waypoint. ServiceEntry and other kinds: Warning, ignored.
//            selector / namespace-wide policies stay with ztunnel (authz_policy.h) untouched.
//   action   DENY, ALLOW, AUDIT -> one RBAC filter instance each, typed_per_filter_config keys
//            envoy.filters.http.rbac.{deny,allow,audit} (RBACPerRoute; rules.action DENY /
//            ALLOW / LOG). CUSTOM -> external authorization (evaluated first): its rules, which
//            select the requests sent to the provider, as RBACPerRoute under
//            kRbacCustomKey (rules.action LOG: a match only marks the request for the check),
//            and the provider (MeshConfig extensionProviders, envoyExtAuthzGrpc/Http) as
//            typed_per_filter_config[kExtAuthzKey] = ExtAuthz{grpc_service | http_service},
//            its cluster `outbound|<port>||<fqdn>` (ext_authz_service() tells the compiler
//            which Service port to add). An unknown or non-ext_authz provider, a provider
//            Service that does not exist, or a second provider for the same service (Istio
//            allows one per workload) is an Error naming spec.provider.name and the policy
//            denies what it would have sent to the provider (fail closed). On a TCP chain
//            CUSTOM rules deny what they match (no network ext_authz at the waypoint).
//   dry-run  annotation istio.io/dry-run "true" (a Go bool): the DENY / ALLOW policy goes to the
//            instance's shadow_rules (stat prefix istio_dry_run_deny_ / istio_dry_run_allow_), as
//            istiod does; `rules` then holds only the enforced policies and is absent when there
//            are none, so a dry-run policy is evaluated and reported but never enforced. On
//            AUDIT it changes nothing (Warning). Also on the TCP form below.
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
// TCP   a service port Istio treats as TCP is a TCP filter chain at the waypoint (cluster
//            `inbound-vip|P|tcp|H`); its network RBAC is the same policies compiled with
//            istiod's forTCP rule: an ALLOW rule using an HTTP-only attribute (hosts, methods,
//            paths, requestPrincipals, request.headers[..], request.auth.*) is omitted, so it
//            never matches; in DENY/AUDIT rules such values are ignored (the rule widens). Carried
//            as the Cluster's metadata typed_filter_metadata under kTcpRbac*Key, each an
//            RBACPerRoute as on virtual hosts (Envoy's network RBAC lives in LDS, which the
//            waypoint does not consume; docs/waypoint-routing.md).
// A value that cannot be compiled is an Error naming file/object/field; as for ztunnel, the
// rule is then omitted from an ALLOW/AUDIT policy (matches less) and kept without that
// constraint in a DENY (denies more). Other policies are unaffected.
//
// Threading: built and used on one thread by compile_waypoints(). Protobuf stays in the .cc.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "controlplane/compiler.h"
#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"
#include "controlplane/waypoint_vhost_policy.h"

namespace envoy::config::route::v3 {
class VirtualHost;
}
namespace envoy::config::cluster::v3 {
class Cluster;
}

namespace controlplane {

inline constexpr std::string_view kTcpRbacDenyKey = "envoy.filters.network.rbac.deny";
inline constexpr std::string_view kTcpRbacAllowKey = "envoy.filters.network.rbac.allow";
inline constexpr std::string_view kTcpRbacAuditKey = "envoy.filters.network.rbac.audit";
// The cluster that carries the network RBAC of pod-addressed traffic at a waypoint (the policies
// targeting the waypoint itself; the waypoint's waypoint/naming.h holds the same name).
inline constexpr std::string_view kPodTcpRbacCluster = "inbound-pod|tcp";
// CUSTOM (docs/waypoint-routing.md "CUSTOM / ext_authz"): the selecting rules and the filter.
inline constexpr std::string_view kRbacCustomKey = "envoy.filters.http.rbac.custom";
inline constexpr std::string_view kExtAuthzKey = "envoy.filters.http.ext_authz";

class WaypointAuthz final : public WaypointVhostPolicy {
 public:
  // Compiles every targetRefs policy of `in` once; findings go to `diags`.
  WaypointAuthz(const ResourceSet& in, const CompileOptions& options, Diagnostics& diags);
  ~WaypointAuthz() override;
  WaypointAuthz(const WaypointAuthz&) = delete;
  WaypointAuthz& operator=(const WaypointAuthz&) = delete;

  // Adds the RBAC filter configs for `svc` served by waypoint `gateway_ns/gateway_name` to `vh`
  // (nothing when no policy applies).
  void attach(envoy::config::route::v3::VirtualHost& vh, const std::string& gateway_ns, const std::string& gateway_name,
              const ServiceObject& svc) const override;
  // The same for a TCP port's cluster (see "TCP" above).
  void attach_tcp(envoy::config::cluster::v3::Cluster& cluster, const std::string& gateway_ns,
                  const std::string& gateway_name, const ServiceObject& svc) const;
  // The ext_authz provider's Service port when a CUSTOM policy applies to `svc` (its cluster
  // must be added to the waypoint's resources), else nullopt.
  std::optional<std::pair<const ServiceObject*, const ServicePort*>> ext_authz_service(const std::string& gateway_ns,
                                                                                       const std::string& gateway_name,
                                                                                       const ServiceObject& svc) const;

  struct Impl;  // public so the .cc's helpers can read it; defined there

 private:
  std::unique_ptr<Impl> impl_;
};

// The factory shape of waypoint_vhost_policy.h (the TCP side needs the concrete type).
std::unique_ptr<WaypointAuthz> compile_waypoint_authz(const ResourceSet& in, const CompileOptions& options,
                                                      Diagnostics& diags);

}  // namespace controlplane
