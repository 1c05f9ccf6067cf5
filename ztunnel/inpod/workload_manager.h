// WorkloadManager: in-pod (shared) mode's set of per-pod proxies. The node agent (over ZDS)
// adds a pod with its network namespace; the manager fetches the pod identity's certificate,
// starts that pod's proxy with listeners created inside the pod's namespace, and drains it when
// the pod is deleted, replaced (same uid, new namespace) or missing from the agent's snapshot.
// Certificates are shared by every pod with one identity and released with the last of them.
// Threading: control thread only; proxies run on the workers.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "common/admin/metrics.h"
#include "common/result.h"
#include "common/runtime.h"
#include "common/identity/secret_manager.h"
#include "ztunnel/config.h"
#include "ztunnel/inpod/netns.h"
#include "ztunnel/proxy/proxy.h"
#include "common/state/snapshot.h"

namespace ztunnel {

class WorkloadManager {
 public:
  WorkloadManager(common::Runtime& runtime, const Config& config, common::metrics::Registry& registry,
                  common::SecretManager& secrets);
  ~WorkloadManager();

  // ZDS events. add() starts (or replaces) the pod's proxy; its error is the Ack's text.
  common::Status add(const std::string& uid, const WorkloadInfo& info, std::shared_ptr<const Netns> netns);
  void del(const std::string& uid);
  // The agent finished replaying its pods: drain every pod it did not mention.
  void snapshot_done(const std::set<std::string>& mentioned);

  void set_snapshot(SnapshotConstSharedPtr snapshot);
  // XDS_ON_DEMAND: handed to every pod's proxy (see Proxy::set_on_demand). Before the first add.
  void set_on_demand(std::shared_ptr<OnDemand> on_demand) { on_demand_ = std::move(on_demand); }
  void drain_all();
  void force_close_all();
  // Every pod's proxy, draining ones included: close connections of peers a CRL now revokes.
  void close_revoked_peers();
  int64_t active_connections() const;
  size_t pods() const { return pods_.size(); }
  nlohmann::json dump() const;  // /config_dump "workloadState"

 private:
  std::shared_ptr<OnDemand> on_demand_;
  struct Pod;
  void retire(std::unique_ptr<Pod> pod);

  common::Runtime& runtime_;
  const Config& cfg_;
  common::metrics::Registry& registry_;
  common::SecretManager& secrets_;
  SnapshotConstSharedPtr snapshot_;
  std::map<std::string, std::unique_ptr<Pod>> pods_;
  std::vector<std::unique_ptr<Pod>> draining_;
  common::metrics::Gauge* active_gauge_;
  common::metrics::Gauge* pending_gauge_;
  common::metrics::Counter* started_;
  common::metrics::Counter* stopped_;
};

}  // namespace ztunnel
