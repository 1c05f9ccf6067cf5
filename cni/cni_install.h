// Installing the plugin on a node, as istio-cni's installer does: the agent copies the static
// plugin binary (ambient-cni-plugin, see plugin_main.cc) to <bin dir>/ambient-cni (write to a temp name, then rename: a
// runtime exec'ing the old file is never disturbed) and chains the plugin into the node's CNI configuration: the first
// *.conflist / *.conf of <conf dir> in lexical order (the one the runtime uses). A .conf (single
// plugin) becomes a .conflist with that plugin first. An existing ambient-cni entry is replaced,
// so re-installing is idempotent. Uninstall removes the entry and the binary.
// Threading: blocking file I/O; the agent calls it at start and at exit.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace cni {

constexpr const char* kPluginType = "ambient-cni";

struct CniInstallOptions {
  std::string bin_dir;       // host's CNI bin dir as mounted in the agent (e.g. /host/opt/cni/bin)
  std::string conf_dir;      // host's CNI conf dir (e.g. /host/etc/cni/net.d)
  std::string agent_socket;  // control socket path as the HOST sees it (plugins run there)
  std::vector<std::string> exclude_namespaces;
  // The binary installed as <bin dir>/ambient-cni: the static ambient-cni-plugin next to the
  // agent's own executable when present, else the agent's executable itself.
  std::string plugin_binary = "/proc/self/exe";
};

// Our conflist entry.
nlohmann::json plugin_entry(const CniInstallOptions& o);
// `conf` (a conflist, or a single-plugin .conf) with our entry appended last (replacing any
// earlier ambient-cni entry). Errors name what is wrong with `conf`.
common::Result<nlohmann::json> chain_plugin(const nlohmann::json& conf, const nlohmann::json& entry);
// `conflist` without ambient-cni entries.
nlohmann::json unchain_plugin(const nlohmann::json& conflist);

// The config file the runtime uses, or an error when the directory has none yet.
common::Result<std::string> primary_cni_config(const std::string& conf_dir);

// Copies the binary and chains the config; returns the conflist path written.
common::Result<std::string> install_cni(const CniInstallOptions& o);
// Removes our entry from every conflist of conf_dir and the binary.
common::Status uninstall_cni(const CniInstallOptions& o);

}  // namespace cni
