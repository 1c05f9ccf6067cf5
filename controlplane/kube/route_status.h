// The Gateway API status istiod writes beyond a Gateway's addresses: its `status.listeners[]`
// and each HTTPRoute/GRPCRoute's `status.parents[]`, as pure functions of the object as the
// API server returned it and of what the compile decided (gateway_attachment.h). The writer
// (WaypointDeployer) only reads, calls these and patches.
//
// Facts: listener conditions Accepted, Conflicted=False, Programmed, ResolvedRefs (False,
// InvalidCertificateRef, when a certificateRef is not a Secret of the Gateway's namespace or the
// Secret is missing; Programmed is then False too); route parents carry the parentRef as given,
// controllerName istio.io/gateway-controller, conditions Accepted and ResolvedRefs (False,
// BackendNotFound). Every condition's observedGeneration is the object's metadata.generation;
// lastTransitionTime moves only when its status does.
//
// Threading: pure functions, no state. Invariant: a function returns nullopt when the object
// already says it (each write is a watch event; writing only changes keeps the loop quiet).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "controlplane/gateway_attachment.h"

namespace controlplane::kube {

inline constexpr const char* kGatewayController = "istio.io/gateway-controller";

// `status.listeners` for `gateway` (class istio or istio-waypoint). `attached`: listener name ->
// routes attached (a waypoint's count is under "*"); null = the compile has not run, every count
// 0. `missing_secrets`: "ns/name" of certificateRefs Secrets that do not exist.
nlohmann::json gateway_listener_status(const nlohmann::json& gateway, const std::map<std::string, uint32_t>* attached,
                                       const std::set<std::string>& missing_secrets, const std::string& now);

// The merge patch for a route's status (whole `status.parents`: ours rebuilt, other controllers'
// entries kept), or nullopt when unchanged.
std::optional<nlohmann::json> route_status_patch(const nlohmann::json& route, const RouteAttachment& att,
                                                 const std::string& now);

}  // namespace controlplane::kube
