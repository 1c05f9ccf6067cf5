// Readers for the L7 routing kinds (waypoint_resources.h): VirtualService and DestinationRule
// (networking.istio.io v1, v1beta1, v1alpha3) and HTTPRoute / GRPCRoute
// (gateway.networking.k8s.io v1, v1beta1, v1alpha2). Called by the manifest loader
// (k8s_loader.cc) for those kinds, inside its per-object error handling.
//
// Strictness: every spec key must be one we know, because a misspelt routing field would
// silently route differently (`retires:` would mean "no retries"). A field we know but do not
// compile (e.g. VirtualService `tls`, HTTPRoute ExtensionRef filters) is an error naming it;
// the object is left out and everything else still compiles.
//
// Threading: pure functions over their arguments; failures are thrown as yaml::FieldError and
// never escape the loader's per-object catch.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "controlplane/waypoint_resources.h"
#include "controlplane/yaml_reader.h"

namespace controlplane {

VirtualServiceObject read_virtual_service(yaml::Reader& r, const YAML::Node& doc, const ObjectMeta& meta);
DestinationRuleObject read_destination_rule(yaml::Reader& r, const YAML::Node& doc, const ObjectMeta& meta);
// `kind` is "HTTPRoute" or "GRPCRoute"; `cluster_domain` qualifies backendRef names.
GatewayRouteObject read_gateway_route(yaml::Reader& r, const YAML::Node& doc, const ObjectMeta& meta,
                                      const std::string& kind, const std::string& cluster_domain = "cluster.local");

// DestinationRule trafficPolicy (top level or a subset's) at `path`; traffic_policy_reader.cc.
DrTrafficPolicy read_traffic_policy(yaml::Reader& r, const YAML::Node& n, const std::string& path);

// "2s", "0.5s", "100ms", "1h30m", "1.5m" -> milliseconds (sub-millisecond rounds up). Throws a
// FieldError naming `path` on anything else.
uint64_t parse_duration_ms(const std::string& text, const std::string& path);

}  // namespace controlplane
