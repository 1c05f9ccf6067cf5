// targetRefs of security policies (AuthorizationPolicy, RequestAuthentication) bound to
// waypoints, resolved as Istio does: {group gateway.networking.k8s.io, kind Gateway, name W}
// = the waypoint ns/W (all its services); {kind Service, name S} (group "" or core) = only the
// routes of ns/S; {kind GatewayClass, name istio-waypoint} from the root namespace = every
// waypoint. Cross-namespace refs are Errors; other kinds Warnings; both are ignored.
//
// Threading: pure functions.
#pragma once

#include <string>
#include <vector>

#include "controlplane/compiler.h"
#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"

namespace controlplane {

struct WaypointTarget {
  enum class Kind : uint8_t { Gateway, Service, AllWaypoints };
  Kind kind = Kind::Gateway;
  std::string ns, name;
};

// The usable targets of a policy in namespace `policy_ns`; findings name `src` and the ref.
std::vector<WaypointTarget> resolve_waypoint_targets(const std::vector<PolicyTargetRef>& refs,
                                                     const std::string& policy_ns, const SourceRef& src,
                                                     const ResourceSet& in, const CompileOptions& options,
                                                     Diagnostics& diags);

// Whether one of `targets` covers `svc` as served by waypoint gateway_ns/gateway_name.
bool targets_apply(const std::vector<WaypointTarget>& targets, const std::string& gateway_ns,
                   const std::string& gateway_name, const ServiceObject& svc);

}  // namespace controlplane
