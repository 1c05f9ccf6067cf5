// Resource names and versions of a compiled state, and the delta between two of them: the
// piece a delta-xDS server needs on top of compile(). Names are the xDS resource names
// ztunnel uses (ztunnel-facts.md §4.1): a Workload by its uid and a Service by
// "namespace/hostname" (both type istio.workload.Address), an Authorization by
// "namespace/name" (type istio.security.Authorization).
//
// A version is a 64-bit FNV-1a hash (16 hex digits) of the resource's LOCAL_XDS_PATH
// serialisation, so equal resources get equal versions across recompiles and restarts, which
// is what `initial_resource_versions` on a reconnect relies on.
// Cost: one YAML emit per resource (tens of microseconds); a server with 50k workloads should
// cache versions per source object rather than rehash everything on every change.
//
// Threading: pure functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/model/local_config.h"

namespace controlplane {

using VersionMap = std::map<std::string, std::string>;  // resource name -> version

struct ResourceVersions {
  VersionMap addresses;       // istio.workload.Address: workloads and services
  VersionMap authorizations;  // istio.security.Authorization
};

ResourceVersions resource_versions(const ztunnel::LocalConfig& config);

struct VersionDelta {
  std::vector<std::string> updated;  // added or changed, sorted
  std::vector<std::string> removed;  // sorted
  bool empty() const { return updated.empty() && removed.empty(); }
};

VersionDelta diff(const VersionMap& before, const VersionMap& after);

}  // namespace controlplane
