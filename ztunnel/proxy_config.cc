#include "ztunnel/proxy_config.h"

#include <yaml-cpp/yaml.h>

#include <limits>

#include "common/yaml_path.h"

namespace ztunnel {

using common::make_error;
using common::Result;

namespace {

std::string where(std::string_view source, const std::string& path) {
  return std::string(source) + ": " + path;
}

Result<uint64_t> read_unsigned(const YAML::Node& n, std::string_view source, const std::string& path, uint64_t max) {
  if (!n.IsScalar()) {
    return make_error(where(source, path) + ": expected a number, got " + std::string(common::yaml::type_name(n)));
  }
  const std::string& s = n.Scalar();
  uint64_t v = 0;
  if (s.empty() || s.size() > 19) return make_error(where(source, path) + ": expected a number, got \"" + s + "\"");
  for (char ch : s) {
    if (ch < '0' || ch > '9') return make_error(where(source, path) + ": expected a number, got \"" + s + "\"");
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  if (v > max) return make_error(where(source, path) + ": " + s + " is above " + std::to_string(max));
  return v;
}

Result<ProxyConfigValues> from_node(const YAML::Node& pc, std::string_view source, const std::string& prefix) {
  ProxyConfigValues out;
  if (!pc || pc.IsNull()) return out;
  if (!pc.IsMap()) {
    return make_error(where(source, prefix.empty() ? "<document>" : prefix) + ": expected a map, got " +
                      std::string(common::yaml::type_name(pc)));
  }
  for (const auto& kv : pc) {
    const std::string key = kv.first.as<std::string>();
    const std::string path = common::yaml::join(prefix, key);
    const YAML::Node& v = kv.second;
    if (key == "discoveryAddress") {
      if (!v.IsScalar()) return make_error(where(source, path) + ": expected a string");
      out.discovery_address = v.Scalar();
    } else if (key == "proxyAdminPort" || key == "statsPort") {
      auto n = read_unsigned(v, source, path, 65535);
      if (!n) return make_error(n.error());
      if (*n == 0) return make_error(where(source, path) + ": a port must be between 1 and 65535");
      (key == "statsPort" ? out.stats_port : out.proxy_admin_port) = static_cast<uint16_t>(*n);
    } else if (key == "concurrency") {
      auto n = read_unsigned(v, source, path, std::numeric_limits<uint32_t>::max());
      if (!n) return make_error(n.error());
      if (*n != 0) out.concurrency = static_cast<uint32_t>(*n);
    } else if (key == "proxyMetadata") {
      if (v.IsNull()) continue;
      if (!v.IsMap()) return make_error(where(source, path) + ": expected a map of strings");
      for (const auto& m : v) {
        const std::string mk = m.first.as<std::string>();
        if (!m.second.IsScalar()) return make_error(where(source, common::yaml::join(path, mk)) + ": expected a string");
        out.proxy_metadata[mk] = m.second.Scalar();
      }
    }
    // Everything else in ProxyConfig (drainDuration, tracing, ...) is Envoy's, not ztunnel's.
  }
  return out;
}

Result<YAML::Node> load(std::string_view text, std::string_view source) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return make_error(std::string(source) + ": not valid YAML/JSON: " + e.what());
  }
}

}  // namespace

Result<ProxyConfigValues> parse_proxy_config(std::string_view text, std::string_view source) {
  auto doc = load(text, source);
  if (!doc) return make_error(doc.error());
  try {
    return from_node(*doc, source, "");
  } catch (const YAML::Exception& e) {
    return make_error(std::string(source) + ": " + e.what());
  }
}

Result<ProxyConfigValues> parse_mesh_default_config(std::string_view text, std::string_view source) {
  auto doc = load(text, source);
  if (!doc) return make_error(doc.error());
  try {
    if (!doc->IsDefined() || doc->IsNull()) return ProxyConfigValues{};
    if (!doc->IsMap()) return make_error(std::string(source) + ": expected a MeshConfig map");
    return from_node((*doc)["defaultConfig"], source, "defaultConfig");
  } catch (const YAML::Exception& e) {
    return make_error(std::string(source) + ": " + e.what());
  }
}

ProxyConfigValues merge_proxy_config(ProxyConfigValues base, const ProxyConfigValues& over) {
  if (over.discovery_address) base.discovery_address = over.discovery_address;
  if (over.proxy_admin_port) base.proxy_admin_port = over.proxy_admin_port;
  if (over.stats_port) base.stats_port = over.stats_port;
  if (over.concurrency) base.concurrency = over.concurrency;
  for (const auto& [k, v] : over.proxy_metadata) base.proxy_metadata[k] = v;
  return base;
}

}  // namespace ztunnel
