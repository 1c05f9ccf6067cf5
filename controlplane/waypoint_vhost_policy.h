// WaypointVhostPolicy: one kind of policy bound to waypoints by targetRefs, compiled once per
// compile_waypoints() run and then attached to every virtual host a waypoint serves, as the
// per-filter config of its Envoy HTTP filter (waypoint_authn.h: RequestAuthentication ->
// jwt_authn; waypoint_authz.h: AuthorizationPolicy -> RBAC).
// Threading: built and used on one thread by compile_waypoints(); attach() is const and only
// writes `vh`.
#pragma once

#include <string>

#include "controlplane/k8s_resources.h"

namespace envoy::config::route::v3 {
class VirtualHost;
}

namespace controlplane {

class WaypointVhostPolicy {
 public:
  virtual ~WaypointVhostPolicy() = default;
  // Adds this kind's filter config for `svc` served by waypoint `gateway_ns/gateway_name` to
  // `vh` (nothing when no policy of the kind applies).
  virtual void attach(envoy::config::route::v3::VirtualHost& vh, const std::string& gateway_ns,
                      const std::string& gateway_name, const ServiceObject& svc) const = 0;
};

}  // namespace controlplane
