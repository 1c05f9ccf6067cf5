// The L7 routing objects the control plane compiles for waypoints, after parsing and before
// compilation: VirtualService (networking.istio.io v1 / v1beta1 / v1alpha3), DestinationRule
// subsets, and Gateway API HTTPRoute / GRPCRoute attached to a Service. As istiod does
// (waypoint-facts §1.5), Gateway API rules are turned into the VirtualService rule model at
// parse time, so the compiler has one route model (VsRule) to translate into Envoy routes.
//
// Threading: plain values, built by the loader and read by the compiler.
// Invariants: every VsRule has at most one of {route, redirect, direct_response} and a
// `path` naming its place in the source object ("spec.http[2]", "spec.rules[0].matches[1]") for
// diagnostics; header names in matches are lower case; durations are milliseconds >= 0.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/traffic_policy.h"
#include "controlplane/ingress_resources.h"

namespace controlplane {

struct SourceRef;  // k8s_resources.h
using Labels = std::map<std::string, std::string>;

// istio StringMatch {exact | prefix | regex}; Gateway API path PathPrefix becomes a
// path-separated prefix (segment-aware, "/foo" does not match "/foobar").
struct VsStringMatch {
  enum class Kind : uint8_t { Exact, Prefix, Regex, SeparatedPrefix };
  Kind kind = Kind::Exact;
  std::string value;
};

struct VsMatch {
  std::string name;
  std::optional<VsStringMatch> uri, scheme, method, authority;
  std::vector<std::pair<std::string, std::optional<VsStringMatch>>> headers;          // nullopt = present
  std::vector<std::pair<std::string, std::optional<VsStringMatch>>> without_headers;  // nullopt = absent
  std::vector<std::pair<std::string, std::optional<VsStringMatch>>> query_params;     // nullopt = present
  bool ignore_uri_case = false;
  uint16_t port = 0;                  // 0 = any
  bool source_labels = false;         // set: the whole entry is dropped at a waypoint (#51565)
  std::string source_namespace;       // compared with the waypoint's namespace, as istiod does
  std::vector<std::string> gateways;  // must be empty or contain "mesh"
};

struct VsHeaderOps {
  std::vector<std::pair<std::string, std::string>> set, add;
  std::vector<std::string> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};
struct VsHeaders {
  VsHeaderOps request, response;
};

struct VsDestination {
  std::string host;  // as written: short name, FQDN, or a Gateway API backend "name.ns.svc.<domain>"
  std::string subset;
  uint16_t port = 0;  // 0 = the service's only port / the route's port
  uint32_t weight = 0;
  bool weight_set = false;
  VsHeaders headers;
  std::string path;  // for diagnostics
};

struct VsRedirect {
  std::string uri, authority, scheme;
  uint16_t port = 0;
  bool derive_port = false;
  uint32_t code = 301;
  std::string prefix_rewrite;  // Gateway API ReplacePrefixMatch
};

struct VsRewrite {
  std::string uri, authority;
  std::optional<std::pair<std::string, std::string>> uri_regex;  // match, rewrite
};

struct VsRetry {
  int32_t attempts = 2;
  std::optional<uint64_t> per_try_timeout_ms;
  std::string retry_on;  // comma list; numeric tokens become retriable status codes
  bool retry_remote_localities = false;
  std::optional<uint64_t> backoff_ms;
};

struct VsFault {
  std::optional<uint64_t> delay_ms;
  std::optional<double> delay_percent;  // nullopt = never injected (Istio)
  std::optional<uint32_t> abort_http;
  std::optional<uint32_t> abort_grpc;  // gRPC status code
  std::optional<double> abort_percent;
};

struct VsMirror {
  VsDestination destination;
  std::optional<double> percent;  // nullopt = 100
};

struct VsCors {
  std::vector<VsStringMatch> allow_origins;
  std::vector<std::string> allow_methods, allow_headers, expose_headers;
  std::optional<uint64_t> max_age_s;
  std::optional<bool> allow_credentials;
};

struct VsRule {
  std::string name;
  std::string path;  // "spec.http[2]"
  std::vector<VsMatch> match;
  std::vector<VsDestination> route;
  std::optional<VsRedirect> redirect;
  std::optional<std::pair<uint32_t, std::string>> direct_response;  // status, body
  std::optional<VsRewrite> rewrite;
  std::optional<uint64_t> timeout_ms;
  std::optional<VsRetry> retries;
  std::optional<VsFault> fault;
  std::vector<VsMirror> mirrors;
  std::optional<VsCors> cors;
  VsHeaders headers;
  bool gateway_api = false;        // from HTTPRoute / GRPCRoute: precedence-sorted with its siblings
  bool all_backends_zero = false;  // Gateway API: every backendRef weight 0 -> direct 500
};

struct VirtualServiceObject {
  std::string name, ns;
  std::string file, object;  // diagnostics
  std::vector<std::string> hosts;
  std::vector<std::string> gateways;
  std::vector<std::string> export_to;
  std::vector<VsRule> http;
};

struct DestinationRuleSubset {
  std::string name;
  Labels labels;
  std::optional<DrTrafficPolicy> traffic_policy;
};
struct DestinationRuleObject {
  std::string name, ns;
  std::string file, object;
  std::string host;
  std::optional<DrTrafficPolicy> traffic_policy;  // traffic_policy.h: merged per cluster by the compiler
  std::vector<DestinationRuleSubset> subsets;
};

// HTTPRoute or GRPCRoute attached to Services (parentRefs of kind Service).
struct ServiceParentRef {
  std::string name, ns;
  uint16_t port = 0;  // 0 = every port
  size_t index = 0;   // position in spec.parentRefs (route status)
};
// parentRefs of kind Gateway (an ingress gateway of class istio; docs/ingress.md).
struct GatewayParentRef {
  std::string name, ns;
  std::string section_name;  // "" = every listener
  uint16_t port = 0;         // 0 = any port
  std::string path;          // "spec.parentRefs[i]" for diagnostics
  size_t index = 0;          // i (route status)
};
struct GatewayRouteObject {
  std::string kind;  // "HTTPRoute" | "GRPCRoute"
  std::string name, ns;
  std::string file, object;
  std::vector<ServiceParentRef> parents;
  std::vector<GatewayParentRef> gateway_parents;
  std::vector<std::string> hostnames;  // spec.hostnames (used at an ingress gateway only)
  std::vector<VsRule> rules;  // one per (rule, match), as istiod emits them
};

struct WaypointRouteObjects {
  std::vector<VirtualServiceObject> virtual_services;
  std::vector<DestinationRuleObject> destination_rules;
  std::vector<GatewayRouteObject> gateway_routes;
  std::vector<IstioGatewayObject> istio_gateways;  // ingress (ingress_resources.h)
  size_t size() const {
    return virtual_services.size() + destination_rules.size() + gateway_routes.size() + istio_gateways.size();
  }
};

}  // namespace controlplane
