// Control channel between the `ambient-cni` CLI and the running agent (`ambient-cni serve`).
// Transport: a SOCK_SEQPACKET unix socket (default: the ZDS socket path + ".ctl"); one JSON
// object per packet each way, one request per connection. `add` attaches the pod's netns fd
// with SCM_RIGHTS (the CLI opens the path, so the agent never resolves paths in another mount
// namespace). Requests:
//   {"op":"add","uid","name","namespace","service_account","netns"}  (+1 fd)
//   {"op":"remove","uid"}
//   {"op":"list"}
// Replies: {"ok":true,...} or {"ok":false,"error":"..."}; list adds "pods":[{uid,name,
// namespace,service_account,netns,netns_inode}] and "ztunnels":<connected count>.
// Threading: ctl_call is blocking and self-contained (CLI side).
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace cni {

constexpr const char* kDefaultZdsSocket = "/var/run/ztunnel/ztunnel.sock";
constexpr std::size_t kMaxCtlMessage = 256 * 1024;

inline std::string default_ctl_path(const std::string& zds_socket) { return zds_socket + ".ctl"; }

// Sends `request` (with `fd` attached when >= 0) and waits up to `timeout` for the reply.
// Errors name the socket and say when the agent is not running.
common::Result<nlohmann::json> ctl_call(const std::string& ctl_path, const nlohmann::json& request,
                                        int fd = -1,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace cni
