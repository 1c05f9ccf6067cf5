// What the waypoint compile (waypoint_compiler.h) decided about Gateway API attachment, as plain
// data for the status writer (kube/route_status.h): how many routes each Gateway listener got,
// and for each route parentRef whether it attached and, if not, the Gateway API reason. The
// writer reports these facts; it never re-derives the attachment rules.
//
// Threading: an immutable value once the compile returns; shared read-only afterwards.
// Invariant: route parentRef indices are positions in the route's spec.parentRefs; refs the
// compile does not own (other kinds/groups) are absent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace controlplane {

struct ParentRefAttachment {
  size_t index = 0;  // position in spec.parentRefs
  bool accepted = false;
  std::string reason;  // Accepted, NoMatchingParent, NotAllowedByListeners, NoMatchingListenerHostname
  std::string message;
  bool operator==(const ParentRefAttachment&) const = default;
};

struct RouteAttachment {
  std::vector<ParentRefAttachment> parents;
  bool backends_resolved = true;
  std::string backend_message;  // BackendNotFound: which backendRef names a missing Service
  bool operator==(const RouteAttachment&) const = default;
};

struct GatewayAttachments {
  // "ns/gateway" -> listener name -> routes attached (HTTPRoutes and GRPCRoutes).
  std::map<std::string, std::map<std::string, uint32_t>> listeners;
  // "Kind/ns/name" (Kind HTTPRoute or GRPCRoute) -> its parents.
  std::map<std::string, RouteAttachment> routes;
  bool operator==(const GatewayAttachments&) const = default;
};

}  // namespace controlplane
