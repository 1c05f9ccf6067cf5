#include "ztunnel/state/on_demand.h"

#include <utility>

namespace ztunnel {

OnDemand::OnDemand(std::function<void(const std::string& key)> subscribe) : subscribe_(std::move(subscribe)) {}

std::string OnDemand::key(std::string_view network, const IpAddr& ip) {
  std::string k(network);
  k += '/';
  k += canonical_ip(ip).to_string();
  return k;
}

bool OnDemand::demand(std::string_view network, const IpAddr& ip, Done done) {
  std::string k = key(network, ip);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (absent_.count(k)) return false;
    auto [it, first] = pending_.try_emplace(k);
    it->second.waiters.push_back(std::move(done));
    if (!first) return true;
    it->second.network = std::string(network);
    it->second.ip = canonical_ip(ip);
  }
  subscribe_(k);
  return true;
}

void OnDemand::answered(const SnapshotConstSharedPtr& snap, const std::vector<std::string>& removed) {
  if (!snap) return;
  std::vector<Done> ready;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& name : removed) {
      auto it = pending_.find(name);
      if (it == pending_.end()) continue;
      absent_.insert(name);
      for (auto& w : it->second.waiters) ready.push_back(std::move(w));
      pending_.erase(it);
    }
    for (auto it = pending_.begin(); it != pending_.end();) {
      const auto& p = it->second;
      if (snap->find_workload(p.network, p.ip) != nullptr || snap->find_service(p.network, p.ip) != nullptr) {
        for (auto& w : it->second.waiters) ready.push_back(std::move(w));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : ready) w(snap);
}

size_t OnDemand::pending() const {
  std::lock_guard<std::mutex> l(mu_);
  return pending_.size();
}

size_t OnDemand::absent() const {
  std::lock_guard<std::mutex> l(mu_);
  return absent_.size();
}

}  // namespace ztunnel
