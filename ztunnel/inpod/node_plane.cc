// NodePlane: PROXY_MODE=shared — pods arrive over ZDS from the node agent and each gets its
// own Proxy inside its network namespace (WorkloadManager).
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "ztunnel/dataplane.h"
#include "ztunnel/inpod/netns.h"
#include "ztunnel/inpod/workload_manager.h"
#include "ztunnel/inpod/zds_client.h"

namespace ztunnel {
namespace {

class NodePlane : public Dataplane, public ZdsHandler {
 public:
  NodePlane(common::Runtime& rt, const Config& cfg, common::metrics::Registry& reg, common::SecretManager& secrets,
            common::Readiness& readiness, SnapshotConstSharedPtr snap)
      : readiness_(readiness), manager_(rt, cfg, reg, secrets) {
    manager_.set_snapshot(std::move(snap));
    ZdsClientOptions opts;
    opts.socket_path = cfg.inpod_uds;
    opts.on_connection = [](bool connected, const std::string& reason) {
      if (connected)
        spdlog::info("connected to the node agent (ZDS)");
      else
        spdlog::warn("node agent connection ended: {}", reason);
    };
    zds_ = std::make_unique<ZdsClient>(rt.control(), *this, std::move(opts));
  }
  common::Status start() override {
    zds_->start();
    return common::ok_status();
  }
  void set_snapshot(SnapshotConstSharedPtr s) override { manager_.set_snapshot(std::move(s)); }
  void drain() override {
    zds_->stop();
    manager_.drain_all();
  }
  void force_close() override { manager_.force_close_all(); }
  void close_revoked_peers() override { manager_.close_revoked_peers(); }
  int64_t active_connections() const override { return manager_.active_connections(); }
  void set_on_demand(std::shared_ptr<OnDemand> on_demand) override { manager_.set_on_demand(std::move(on_demand)); }
  void dump(nlohmann::json& out) const override { out["workloadState"] = manager_.dump(); }

  // ZdsHandler (control thread).
  common::Status add_workload(const std::string& uid, const zds::WorkloadInfo& info, zds::UniqueFd netns) override {
    auto ns = Netns::from_fd(netns.release());
    if (!ns) return common::make_error(ns.error());
    return manager_.add(
        uid, WorkloadInfo{info.ns, info.name, info.service_account.empty() ? "default" : info.service_account},
        ns.value());
  }
  void keep_workload(const std::string&) override {}
  void del_workload(const std::string& uid) override { manager_.del(uid); }
  void snapshot_done(const std::set<std::string>& mentioned) override {
    manager_.snapshot_done(mentioned);
    if (!snapshot_seen_) {
      snapshot_seen_ = true;
      readiness_.mark_done("workload proxy manager");
    }
  }

 private:
  common::Readiness& readiness_;
  WorkloadManager manager_;
  std::unique_ptr<ZdsClient> zds_;
  bool snapshot_seen_ = false;
};

}  // namespace

std::unique_ptr<Dataplane> make_node_plane(common::Runtime& rt, const Config& cfg, common::metrics::Registry& reg,
                                           common::SecretManager& secrets, common::Readiness& readiness,
                                           SnapshotConstSharedPtr snapshot) {
  return std::make_unique<NodePlane>(rt, cfg, reg, secrets, readiness, std::move(snapshot));
}

}  // namespace ztunnel
