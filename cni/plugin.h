// The chained CNI plugin (CNI spec 1.0.0, plus STATUS/GC of 1.1.0): `ambient-cni` runs as the
// plugin whenever CNI_COMMAND is set. The runtime passes the network config (our conflist
// entry, with prevResult from the plugins before us) on stdin and the pod in CNI_ARGS
// (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID).
//
//   ADD    not a Kubernetes pod, or an excluded namespace: prevResult passed through. Else the
//          pod's netns fd goes to the node agent (`cni-add` on its control socket); the agent
//          decides from its MetadataSource (pod_metadata.h) whether the pod is ambient and, if
//          so, installs the in-pod rules and waits for ztunnel's Ack. Any failure fails the ADD
//          (fail closed: the pod must not start uncaptured); an unreachable agent is code 11.
//   DEL    `cni-del`: the agent forgets the sandbox and removes its rules; unknown sandboxes
//          and an unreachable agent succeed (idempotent; the agent replays its state later).
//   CHECK  `cni-check`: an ambient pod must be held by the agent and its rules intact.
//   STATUS the agent answers on its control socket (else code 50).
//   VERSION supported versions. GC: nothing to collect (the agent owns its state).
// Errors are the spec's JSON ({cniVersion, code, msg, details}) on stdout with exit 1; codes:
// 1 incompatible version, 4 bad environment, 5 I/O, 6 undecodable config, 7 invalid config,
// 11 agent unavailable, 50 not ready (STATUS), 100 capture failed / CHECK drift.
//
// Conflist entry (written by the agent's installer, cni_install.h):
//   {"type": "ambient-cni", "agentSocket": "/var/run/ztunnel/ztunnel.sock.ctl",
//    "excludeNamespaces": ["kube-system"]}
// Threading: single-threaded, one call per process.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace cni {

inline const std::vector<std::string>& supported_cni_versions() {
  static const std::vector<std::string> v = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return v;
}

struct PluginConfig {
  std::string cni_version;
  std::string name;
  std::string agent_socket = "/var/run/ztunnel/ztunnel.sock.ctl";
  std::vector<std::string> exclude_namespaces;
  nlohmann::json prev_result;  // null when absent
};

struct PluginError {
  int code;
  std::string msg;
  std::string details;
};

// Parses and checks the network config from stdin. Unknown keys are ignored (the runtime adds
// its own, e.g. runtimeConfig).
common::Result<PluginConfig> parse_plugin_config(const std::string& text, PluginError* err);

// "K=V;K=V" -> map (CNI_ARGS).
std::map<std::string, std::string> parse_cni_args(const std::string& args);

struct PluginOutcome {
  int exit_code = 0;
  std::string out;  // stdout
  std::string log;  // stderr (diagnostics for the runtime's log)
};

// The agent's control channel (control.h ctl_call), injectable for tests.
using AgentCall =
    std::function<common::Result<nlohmann::json>(const std::string& ctl_path, const nlohmann::json& request, int fd)>;

// Runs one plugin invocation. `env` holds the CNI_* variables.
PluginOutcome run_plugin(const std::map<std::string, std::string>& env, const std::string& input,
                         const AgentCall& agent);

// One invocation as a container runtime makes it: the CNI_* variables from the process
// environment, the network configuration on stdin (read up to 1 MiB), the result printed on
// stdout and diagnostics on stderr. Returns the exit code. Shared by `ambient-cni` (with
// CNI_COMMAND set) and the static `ambient-cni-plugin`, which differ only in `agent`.
int run_plugin_invocation(const AgentCall& agent);

}  // namespace cni
