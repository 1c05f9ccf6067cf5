// ProxyConfig as upstream ztunnel reads it: the mesh config file's `defaultConfig`
// (./etc/istio/config/mesh, mounted from the `istio` ConfigMap by the Helm chart) overlaid by
// the PROXY_CONFIG environment variable (YAML or JSON, the same schema). Only the fields
// ztunnel uses are kept (facts §8): discoveryAddress, proxyAdminPort, statsPort, concurrency,
// proxyMetadata; every other ProxyConfig field is accepted and ignored, as upstream does.
//
// Merge rule (istio's ApplyProxyConfig, field by field): a field set in the overlay replaces
// the file's; proxyMetadata merges key by key with the overlay winning.
// Errors name the source ("PROXY_CONFIG" or the file path) and the field.
// Threading: pure functions over strings; the caller reads the file.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ztunnel {

struct ProxyConfigValues {
  std::optional<std::string> discovery_address;
  std::optional<uint16_t> proxy_admin_port;
  std::optional<uint16_t> stats_port;
  std::optional<uint32_t> concurrency;  // 0 is "unset" in istio's API (= let the proxy decide)
  std::map<std::string, std::string> proxy_metadata;
};

// Parses one ProxyConfig document. `source` names it in errors.
common::Result<ProxyConfigValues> parse_proxy_config(std::string_view text, std::string_view source);

// Parses a MeshConfig document and returns its `defaultConfig` (empty values when absent).
common::Result<ProxyConfigValues> parse_mesh_default_config(std::string_view text, std::string_view source);

// `over` applied on top of `base`.
ProxyConfigValues merge_proxy_config(ProxyConfigValues base, const ProxyConfigValues& over);

}  // namespace ztunnel
