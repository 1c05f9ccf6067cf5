// The ingress gateway's hop into a waypoint (waypoint-facts §3.6): for a Service whose traffic
// from ingress must cross its waypoint (`istio.io/ingress-use-waypoint: "true"`), the controlplane
// gives the gateway cluster one endpoint, the Service VIP:port itself; the gateway then opens
// HBONE to a waypoint pod's IP:15008 (the GatewayAddress in the Service's workload xDS, an
// address or a hostname resolved through the mesh model) with `:authority VIP:port`, and
// expects the waypoint pod's identity. Mesh pod endpoints and plain ones are unaffected.
// Threading: a pure function over an immutable snapshot; any thread.
#pragma once

#include <optional>

#include "common/identity/identity.h"
#include "common/model/model.h"
#include "common/state/snapshot.h"

namespace waypoint::ingress {

struct WaypointHop {
  ztunnel::IpAddr ip;  // a waypoint pod
  common::Identity identity;
};

// nullopt when `vip` is not a Service VIP with a waypoint, or the waypoint has no pod.
std::optional<WaypointHop> waypoint_hop(const ztunnel::Snapshot& model, const ztunnel::IpAddr& vip);

}  // namespace waypoint::ingress
