// Local config: upstream ztunnel's LOCAL_XDS_PATH / LOCAL_XDS YAML format, parsed into the
// config model. The document is a map with optional `workloads`, `services` and `policies`
// lists, camelCase keys, enum values spelled as upstream serialises them (protocol: HBONE|TCP,
// status: Healthy|Unhealthy, scope: Global|Namespace|WorkloadSelector, action: Allow|Deny,
// string matches {Exact: ..}/{Prefix: ..}/{Suffix: ..}/{Presence: []}); see examples/*.yaml.
//
// Strictness: unknown keys, wrong types and out-of-range numbers are errors whose message
// starts with the path of the offending field, e.g. "workloads[1].serviceAcount: unknown
// field", so a typo never silently turns into a default (which for authorization could mean
// allow-all). Defaults that upstream applies on xDS ingest (service account "default", trust
// domain "cluster.local", cluster id "Kubernetes", HBONE port 15008) are applied here too.
//
// Threading: pure functions, no shared state. Runs once at startup on the control thread;
// yaml-cpp exceptions are caught inside and never escape.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/model/model.h"

namespace ztunnel {

struct LocalConfig {
  std::vector<Workload> workloads;
  std::vector<Service> services;
  std::vector<Authorization> policies;
};

// Inputs larger than this are rejected before parsing (a local config is hand-written; a
// multi-megabyte one is a mistake, and yaml-cpp's memory use grows fast with nesting).
inline constexpr size_t kMaxLocalConfigBytes = 16 * 1024 * 1024;

common::Result<LocalConfig> parse_local_config(std::string_view yaml);
// Reads the file at `path` and parses it; errors are prefixed with the path.
common::Result<LocalConfig> load_local_config(const std::string& path);

}  // namespace ztunnel
