// The CNI plugin's side of the agent's control channel (control.h protocol: one JSON request
// per SOCK_SEQPACKET connection, the pod's netns fd attached with SCM_RIGHTS, one JSON reply).
// Self-contained — libc and nlohmann::json only — so `ambient-cni-plugin`, the binary copied
// onto nodes, links statically and runs on any host whatever its libraries. The agent-side
// CLI keeps using ctl_call (control.h); both speak the same bytes.
// Threading: blocking, self-contained.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace cni {

common::Result<nlohmann::json> plugin_ctl_call(const std::string& ctl_path, const nlohmann::json& request, int fd,
                                               std::chrono::milliseconds timeout);

}  // namespace cni
