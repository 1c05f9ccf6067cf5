#include "ztunnel/inpod/workload_manager.h"

#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "ztunnel/state/admin_dump.h"

namespace ztunnel {
namespace asio = boost::asio;

struct WorkloadManager::Pod {
  std::string uid;
  WorkloadInfo info;
  std::shared_ptr<const Netns> netns;
  std::unique_ptr<Proxy> proxy;
  common::SecretManager::Subscription cert;
  std::string state = "starting";
  std::shared_ptr<int> alive = std::make_shared<int>(0);  // guards callbacks posted before retire
};

WorkloadManager::WorkloadManager(common::Runtime& runtime, const Config& config, common::metrics::Registry& registry,
                                 common::SecretManager& secrets)
    : runtime_(runtime),
      cfg_(config),
      registry_(registry),
      secrets_(secrets),
      snapshot_(Snapshot::empty()),
      active_gauge_(registry.gauge("workload_manager_active_proxy_count", "The total number current workloads with active proxies").get({})),
      pending_gauge_(registry.gauge("workload_manager_pending_proxy_count", "The total number current workloads with pending proxies").get({})),
      started_(registry.counter("workload_manager_proxies_started_total", "The total number of proxies that were started").get({})),
      stopped_(registry.counter("workload_manager_proxies_stopped_total", "The total number of proxies that were stopped").get({})) {}

WorkloadManager::~WorkloadManager() = default;

common::Status WorkloadManager::add(const std::string& uid, const WorkloadInfo& info,
                                    std::shared_ptr<const Netns> netns) {
  if (auto it = pods_.find(uid); it != pods_.end()) {
    const Pod& p = *it->second;
    if (p.netns->inode() == netns->inode() && p.netns->dev() == netns->dev()) return common::ok_status();  // same sandbox
    spdlog::info("pod {} ({}/{}) re-added with a new network namespace: replacing its proxy", uid, info.ns, info.name);
    auto old = std::move(it->second);
    pods_.erase(it);
    retire(std::move(old));
  }
  auto pod = std::make_unique<Pod>();
  pod->uid = uid;
  pod->info = info;
  pod->netns = netns;
  pod->proxy = std::make_unique<Proxy>(runtime_, cfg_, registry_, ProxyTarget{info, uid, netns});
  pod->proxy->set_snapshot(snapshot_);
  if (on_demand_) pod->proxy->set_on_demand(on_demand_);
  std::string td = cfg_.trust_domain;
  if (const Workload* w = snapshot_->find_workload_by_info(info.ns, info.name, info.service_account)) {
    td = w->trust_domain;
  }
  common::Identity id(td, info.ns, info.service_account);
  Proxy* proxy = pod->proxy.get();
  Pod* raw = pod.get();
  std::weak_ptr<int> alive = pod->alive;
  pod->cert = secrets_.subscribe(id, [this, proxy, raw, id, uid, alive](common::SecretManager::CredentialsPtr creds) {
    if (alive.expired() || raw->state == "draining") return;
    if (auto st = proxy->set_credentials(creds); !st) {
      spdlog::error("pod {}: certificate for {} unusable: {}", uid, id.uri(), st.error());
      return;
    }
    if (raw->state != "running") {
      raw->state = "running";
      pending_gauge_->dec();
      active_gauge_->inc();
    }
  }, [proxy, raw, alive](const std::string& error) {
    if (alive.expired() || raw->state == "draining") return;
    proxy->set_credentials_error(error);
  });
  if (auto st = pod->proxy->start(); !st) {
    return common::make_error("starting proxy for pod " + info.ns + "/" + info.name + ": " + st.error());
  }
  pending_gauge_->inc();
  started_->inc();
  spdlog::info("pod {} ({}/{}, sa {}) added: proxy listening in its network namespace", uid, info.ns, info.name,
               info.service_account);
  pods_.emplace(uid, std::move(pod));
  return common::ok_status();
}

void WorkloadManager::del(const std::string& uid) {
  auto it = pods_.find(uid);
  if (it == pods_.end()) return;
  spdlog::info("pod {} ({}/{}) deleted: draining its proxy", uid, it->second->info.ns, it->second->info.name);
  auto pod = std::move(it->second);
  pods_.erase(it);
  retire(std::move(pod));
}

void WorkloadManager::snapshot_done(const std::set<std::string>& mentioned) {
  std::vector<std::string> stale;
  for (auto& [uid, pod] : pods_) {
    if (!mentioned.count(uid)) stale.push_back(uid);
  }
  for (auto& uid : stale) del(uid);
}

void WorkloadManager::retire(std::unique_ptr<Pod> pod) {
  if (pod->state == "running") active_gauge_->dec();
  else pending_gauge_->dec();
  stopped_->inc();
  pod->state = "draining";
  pod->proxy->drain();
  pod->cert.release();
  // Live connections get the termination deadline, then are closed; the proxy object lives
  // until then so its workers' state stays valid.
  auto timer = std::make_shared<asio::steady_timer>(runtime_.control(), cfg_.termination_deadline);
  Pod* raw = pod.get();
  draining_.push_back(std::move(pod));
  timer->async_wait([this, timer, raw](boost::system::error_code) {
    raw->proxy->force_close();
    auto t2 = std::make_shared<asio::steady_timer>(runtime_.control(), std::chrono::seconds(1));
    t2->async_wait([this, t2, raw](boost::system::error_code) {
      std::erase_if(draining_, [raw](const std::unique_ptr<Pod>& p) { return p.get() == raw; });
    });
  });
}

void WorkloadManager::set_snapshot(SnapshotConstSharedPtr snapshot) {
  snapshot_ = snapshot;
  for (auto& [uid, pod] : pods_) pod->proxy->set_snapshot(snapshot);
  for (auto& pod : draining_) pod->proxy->set_snapshot(snapshot);
}

void WorkloadManager::drain_all() {
  for (auto& [uid, pod] : pods_) pod->proxy->drain();
}

void WorkloadManager::close_revoked_peers() {
  for (auto& [uid, pod] : pods_) pod->proxy->close_revoked_peers();
  for (auto& pod : draining_) pod->proxy->close_revoked_peers();
}

void WorkloadManager::force_close_all() {
  for (auto& [uid, pod] : pods_) pod->proxy->force_close();
  for (auto& pod : draining_) pod->proxy->force_close();
}

int64_t WorkloadManager::active_connections() const {
  int64_t n = 0;
  for (auto& [uid, pod] : pods_) n += pod->proxy->active_connections();
  for (auto& pod : draining_) n += pod->proxy->active_connections();
  return n;
}

nlohmann::json WorkloadManager::dump() const {
  // Upstream's shape (istioctl decodes it): uid -> {state: Pending|Up, connections, info}.
  // A draining proxy is still up (upstream lists it until its proxy ends); it keeps its uid
  // unless a replacement for the same pod took it, and carries "draining": true, an extra
  // field istioctl ignores.
  auto entry = [](const Pod& pod, const char* state) {
    return nlohmann::json{{"state", state},
                          {"connections", connections_json(pod.proxy->connections())},
                          {"info",
                           {{"name", pod.info.name},
                            {"namespace", pod.info.ns},
                            {"trustDomain", ""},
                            {"serviceAccount", pod.info.service_account}}},
                          {"netns", {{"inode", pod.netns->inode()}, {"dev", pod.netns->dev()}}},
                          {"activeConnections", pod.proxy->active_connections()}};
  };
  nlohmann::json out = nlohmann::json::object();
  for (auto& [uid, pod] : pods_) out[uid] = entry(*pod, pod->state == "running" ? "Up" : "Pending");
  for (auto& pod : draining_) {
    std::string key = out.contains(pod->uid) ? pod->uid + " (draining)" : pod->uid;
    auto e = entry(*pod, "Up");
    e["draining"] = true;
    out[key] = std::move(e);
  }
  return out;
}

}  // namespace ztunnel
