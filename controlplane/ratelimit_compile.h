// Rate limit policies (ratelimit_policy.h) -> the Envoy config a waypoint is served, the same
// for RateLimitPolicy and EnvoyFilter sources:
//   local  -> typed_per_filter_config["envoy.filters.http.local_ratelimit"] = LocalRateLimit on
//             the virtual host (or on the named routes);
//   global -> typed_per_filter_config["envoy.filters.http.ratelimit"] = RateLimit{domain,
//             timeout, failure_mode_deny, rate_limit_service.envoy_grpc.cluster_name} on the
//             virtual host (the waypoint has no LDS), and its descriptors as the virtual host's
//             (or the named routes') rate_limits;
//   the rate limit service's cluster: `outbound|<port>||<fqdn>` (EDS, pods of a Service) or, for
//             an IP address, a STATIC cluster `ratelimit|<port>||<ip>`.
// A policy applies to a Service's routes at a waypoint when a targetRef names that waypoint's
// Gateway (same namespace) or the Service itself (same namespace). When several policies set the
// same filter at the same place (virtual host, or one route), the first in (namespace, name)
// order wins there, with a warning; route-scoped policies and a virtual-host-wide one coexist.
//
// Threading: pure functions; protobuf stays in the .cc.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "controlplane/diagnostics.h"
#include "controlplane/ratelimit_policy.h"

namespace envoy::config::route::v3 {
class RouteConfiguration;
}
namespace envoy::config::cluster::v3 {
class Cluster;
}

namespace controlplane {

// The cluster name for a policy's rate limit service, after adding that cluster to the
// waypoint's resources; "" (with a diagnostic) when the service cannot be resolved.
using RlsClusterFn = std::function<std::string(const RateLimitPolicyObject&, const RlGlobal&)>;

void attach_rate_limits(envoy::config::route::v3::RouteConfiguration& rc,
                        const std::vector<RateLimitPolicyObject>& policies, const std::string& gateway_ns,
                        const std::string& gateway_name, const std::string& svc_ns, const std::string& svc_name,
                        const RlsClusterFn& rls_cluster, Diagnostics& diags);

// The STATIC cluster for a rate limit service given as an IP address (HTTP/2, gRPC).
envoy::config::cluster::v3::Cluster rls_static_cluster(const std::string& name, const std::string& ip, uint16_t port);
// "ratelimit|<port>||<ip>"
std::string rls_static_cluster_name(const std::string& ip, uint16_t port);

}  // namespace controlplane
