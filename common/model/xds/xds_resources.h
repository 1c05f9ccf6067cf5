// The compiled config model (ztunnel::LocalConfig) as delta-xDS resources: what the `serve`
// command sends ztunnel. Each Workload becomes an istio.workload.Address{workload} named by its
// uid, each Service an Address{service} named "namespace/hostname", each Authorization an
// istio.security.Authorization named "namespace/name" (ztunnel-facts §4.1, §4.3-4.4). Every
// field the model carries is filled: addresses as 4/16 raw bytes, enums mapped to the proto
// values, workload_type from its lower-case string.
//
// A resource is kept as the bytes of a serialized google.protobuf.Any (type_url + value), ready
// to go into a DeltaDiscoveryResponse, plus a version: the 64-bit FNV-1a hash (16 hex digits)
// of the resource's deterministic serialization (maps sorted), so equal resources get equal
// versions across recompiles and restarts — what `initial_resource_versions` on a reconnect
// relies on. Cost: a few microseconds per resource (50k workloads in well under a second).
//
// Protobuf types stay in the .cc; this header is plain C++.
// Threading: pure functions.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/model/local_config.h"
#include "common/model/xds/type_urls.h"

namespace ztunnel {

struct XdsResource {
  std::string version;  // 16 lower-case hex digits
  std::string any;      // serialized google.protobuf.Any
  bool operator==(const XdsResource&) const = default;
};

// Resource name -> resource, sorted by name (the server merges these with per-client maps).
using XdsResourceMap = std::map<std::string, XdsResource, std::less<>>;

struct XdsResources {
  XdsResourceMap addresses;       // kAddressTypeUrl: workloads and services
  XdsResourceMap authorizations;  // kAuthorizationTypeUrl
};

XdsResources to_xds_resources(const ztunnel::LocalConfig& config);

// The same, reusing the serialized resource of every workload or service that compares equal
// to its namesake in `previous` (whose Address resources are `previous_addresses`): on a
// recompile most of the mesh is unchanged, and serializing it again dominated the cost.
XdsResources to_xds_resources(const ztunnel::LocalConfig& config, const ztunnel::LocalConfig& previous,
                              const XdsResourceMap& previous_addresses);

// One resource each: the deterministic serialization of the message itself (Address or
// Authorization, not wrapped in Any). Exposed for tests and tools.
std::string serialize_workload(const ztunnel::Workload& w);
std::string serialize_service(const ztunnel::Service& s);
std::string serialize_authorization(const ztunnel::Authorization& a);

// 64-bit FNV-1a of `bytes` as 16 lower-case hex digits.
std::string fnv1a_hex(std::string_view bytes);

}  // namespace ztunnel
