// Shared by the waypoint compiler tests (controlplane_waypoint, controlplane_ratelimit,
// waypoint_traffic_policy, waypoint_authz): the mesh prefix they all start from, compiling
// YAML for waypoints, and reading what was compiled back through the waypoint's own converter
// (the control plane must never send what the waypoint would NACK). Header-only; tests/unit only.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include <google/protobuf/any.pb.h>

#include "common/model/local_config.h"
#include "controlplane/k8s_loader.h"
#include "controlplane/waypoint_compiler.h"
#include "waypoint/xds/convert.h"

namespace wptest {

using namespace controlplane;

// Namespace demo in the mesh and its waypoint Gateway; each test appends its services and pods.
inline const char* kWaypointMeshPrefix = R"(
apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: demo}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
)";

struct Compiled {
  WaypointCompileResult result;
  Diagnostics load_diags;  // from parsing the YAML; the compiler's are in result.diagnostics

  Diagnostics all_diags() const {
    Diagnostics all = load_diags;
    all.insert(all.end(), result.diagnostics.begin(), result.diagnostics.end());
    return all;
  }
};

// Loads `yaml` as the controlplane's directory source would (parse, drop duplicates) and
// compiles it for waypoints; `workloads` gives the pods' localities where a case needs them.
inline Compiled compile_waypoint_yaml(const std::string& yaml, const ztunnel::LocalConfig* workloads = nullptr) {
  ResourceSet set;
  Compiled c;
  parse_manifests(yaml, "mesh.yaml", set, c.load_diags);
  remove_duplicates(set, c.load_diags);
  c.result = compile_waypoints(set, CompileOptions{}, workloads);
  return c;
}

template <typename M>
M unpack(const XdsResource& r) {
  google::protobuf::Any any;
  REQUIRE(any.ParseFromString(r.any));
  M m;
  REQUIRE(any.UnpackTo(&m));
  return m;
}

// What the demo/waypoint Gateway's pods are served (all pods share one set).
inline const WaypointResources& served(const Compiled& c) {
  REQUIRE(c.result.by_gateway.count("demo/waypoint") == 1);
  return *c.result.by_gateway.at("demo/waypoint");
}

// What one waypoint pod ("name.namespace") is served, for per-locality resources.
inline const WaypointResources& served_to(const Compiled& c, const std::string& proxy) {
  REQUIRE(c.result.by_proxy.count(proxy) == 1);
  return *c.result.by_proxy.at(proxy);
}

// The route configuration `name` as the waypoint's converter reads it (which must accept it).
inline waypoint::RouteConfig converted_route(const WaypointResources& w, const std::string& name) {
  REQUIRE(w.routes.count(name) == 1);
  google::protobuf::Any any;
  REQUIRE(any.ParseFromString(w.routes.at(name).any));
  CHECK(any.type_url() == kRouteConfigurationTypeUrl);
  auto v = waypoint::xds::parse_route_configuration(name, any.value());
  INFO(name << ": " << (v.ok() ? "" : v.error()));
  REQUIRE(v.ok());
  return std::move(*v);
}

inline waypoint::Cluster converted_cluster(const WaypointResources& w, const std::string& name) {
  REQUIRE(w.clusters.count(name) == 1);
  google::protobuf::Any any;
  REQUIRE(any.ParseFromString(w.clusters.at(name).any));
  auto v = waypoint::xds::parse_cluster(name, any.value());
  INFO(name << ": " << (v.ok() ? "" : v.error()));
  REQUIRE(v.ok());
  return std::move(*v);
}

// Everything compiled must pass the waypoint's own validation and conversion.
inline void check_waypoint_accepts(const WaypointResources& w) {
  for (const auto& [name, r] : w.routes) converted_route(w, name);
  for (const auto& [name, r] : w.clusters) converted_cluster(w, name);
  for (const auto& [name, r] : w.endpoints) {
    google::protobuf::Any any;
    REQUIRE(any.ParseFromString(r.any));
    auto v = waypoint::xds::parse_load_assignment(name, any.value());
    INFO(name << ": " << (v.ok() ? "" : v.error()));
    CHECK(v.ok());
  }
}

inline std::string diags_text(const Diagnostics& diags) {
  std::string s;
  for (const auto& d : diags) s += d.to_string() + "\n";
  return s;
}

}  // namespace wptest
