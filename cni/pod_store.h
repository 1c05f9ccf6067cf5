// PodStore: the pods the node agent holds (uid -> identity + an open fd of the pod's netns),
// persisted as JSON in <state-dir>/pods.json so an agent restart replays the same set to
// ztunnel. Only the path and inode of each netns are persisted; on load, each path is reopened
// and kept only if it still names the same namespace (a re-created sandbox at the same path is
// a different pod instance and is dropped with a warning).
// Threading: not thread-safe; owned by the agent's io thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "proto/zds_wire.h"

namespace cni {

struct Pod {
  std::string uid;
  zds::WorkloadInfo info;
  std::string netns_path;    // as given to `add` (informational after load)
  std::string container_id;  // sandbox id when added by the CNI plugin (DEL finds it by this)
  zds::NetnsId netns_id;
  std::shared_ptr<zds::UniqueFd> netns;  // shared so in-flight sends can hold it
};

class PodStore {
 public:
  // `state_dir` empty = in memory only.
  explicit PodStore(std::string state_dir) : dir_(std::move(state_dir)) {}

  // Reads pods.json (missing file = empty). Returns warnings for pods that were dropped.
  common::Result<std::vector<std::string>> load();
  common::Status save() const;

  const Pod* find(const std::string& uid) const;
  // The pod added by the CNI plugin for this sandbox, or nullptr.
  const Pod* find_container(const std::string& container_id) const;
  void put(Pod pod);
  void erase(const std::string& uid);
  const std::map<std::string, Pod>& pods() const { return pods_; }

 private:
  void load_entries(const nlohmann::json& entries, std::vector<std::string>& warnings);

  std::string dir_;
  std::map<std::string, Pod> pods_;
};

}  // namespace cni
