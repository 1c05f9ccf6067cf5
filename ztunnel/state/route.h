// ztunnel's outbound routing decision (upstream's build_request, single network, minus double
// HBONE): where a captured connection goes, read from one Snapshot.
// Threading: pure functions over an immutable snapshot; any worker.
// Invariants: every pointer in an OutboundRoute points into the snapshot passed in.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/identity/identity.h"
#include "common/state/snapshot.h"

namespace ztunnel {

// ---- outbound routing (upstream build_request, single network) ----

enum class RouteKind : uint8_t {
  Hbone,              // HBONE to the destination pod's ztunnel: target = podIP:15008
  Waypoint,           // HBONE to a waypoint: target = waypointIP:15008
  Tcp,                // plain TCP to a known workload (protocol TCP): target = podIP:targetPort
  Passthrough,        // plain TCP to the original destination (unknown to the mesh)
  NoHealthyUpstream,  // a service matched but no endpoint can take the connection
  Unroutable,         // known destination we cannot reach (reason in `error`)
};

std::string_view to_string(RouteKind k);

struct OutboundRoute {
  RouteKind kind = RouteKind::Passthrough;
  SocketAddr target;      // where to open the TCP connection
  std::string authority;  // HBONE CONNECT :authority ("" for plain TCP)
  // SPIFFE identities the HBONE peer may present (workload identity + service SANs).
  std::vector<common::Identity> expected_identities;
  // Actual next hop workload (the waypoint when going through one); null for passthrough.
  const Workload* destination_workload = nullptr;
  // The service the client addressed (for labels / forwarded host=), when known.
  const Service* destination_service = nullptr;
  std::string error;  // set for NoHealthyUpstream / Unroutable
  // Hbone/Tcp to a workload known only by hostname (no addresses, e.g. a ServiceEntry with
  // resolution DNS): the caller resolves this name on demand, then dials the address it picks
  // at target.port (authority: that address at `resolved_port`). Empty otherwise.
  std::string resolve_hostname;
  uint16_t resolved_port = 0;
};

// Completes a route that needs on-demand DNS (resolve_hostname set) with the chosen address:
// target and, for HBONE, the authority.
void apply_resolved(OutboundRoute& route, const IpAddr& ip);

// Decides where an outbound connection from `source` to dst_ip:dst_port goes:
// 1. dst is a service VIP with a waypoint (and source is not that waypoint) -> Waypoint,
//    authority = VIP:port;
// 2. else pick the backend (service LB, or the workload owning dst_ip); if that workload has a
//    waypoint, the connection was not service-addressed and source is not the waypoint ->
//    Waypoint, authority = original dst;
// 3. backend HBONE -> Hbone (podIP:15008, authority podIP:targetPort); TCP -> Tcp;
// 4. nothing known -> Passthrough; a service with no usable endpoint -> NoHealthyUpstream
//    (unless its LB mode is Passthrough).
// Backends on another network (double HBONE) come back as Unroutable. A backend with no address
// but a hostname comes back as Hbone/Tcp with resolve_hostname set (see apply_resolved).
OutboundRoute route_outbound(const Snapshot& snapshot, const Workload& source, const IpAddr& dst_ip, uint16_t dst_port,
                             uint64_t random);

}  // namespace ztunnel
