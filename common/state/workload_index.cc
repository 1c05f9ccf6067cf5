#include "common/state/workload_index.h"

#include <algorithm>

namespace ztunnel {

namespace {

void erase_value(std::vector<const Workload*>& v, const Workload* w) {
  v.erase(std::remove(v.begin(), v.end(), w), v.end());
}

}  // namespace

WorkloadIndexPtr WorkloadIndex::build(std::span<const std::shared_ptr<const Workload>> workloads) {
  auto idx = std::make_shared<WorkloadIndex>();
  idx->uid_.reserve(workloads.size());
  idx->addr_.reserve(workloads.size());
  for (const auto& w : workloads) idx->add(*w);
  return idx;
}

WorkloadIndexPtr WorkloadIndex::with(std::span<const Change> changes) const {
  auto idx = std::make_shared<WorkloadIndex>(*this);  // shares all shards
  // Removals first, so a replacement never meets its own old entries.
  for (const auto& [old_w, new_w] : changes) {
    if (old_w) idx->remove(*old_w);
  }
  for (const auto& [old_w, new_w] : changes) {
    if (new_w) idx->add(*new_w);
  }
  return idx;
}

void WorkloadIndex::add(const Workload& w) {
  uid_.writable(std::string_view(w.uid))[std::string_view(w.uid)] = &w;
  if (w.network_mode != NetworkMode::HostNetwork) {  // the node's IP is shared: not ours
    for (const auto& ip : w.addresses) addr_.writable(ip)[ip].push_back(&w);
  }
  for (const auto& [key, ports] : w.services) {
    (void)ports;
    auto& shard = members_.writable(std::string_view(key));
    auto it = shard.find(std::string_view(key));
    if (it == shard.end()) it = shard.emplace(key, std::vector<const Workload*>{}).first;
    it->second.push_back(&w);
  }
  by_name_.writable(std::string_view(w.name))[std::string_view(w.name)].push_back(&w);
}

void WorkloadIndex::remove(const Workload& w) {
  {
    auto& shard = uid_.writable(std::string_view(w.uid));
    auto it = shard.find(std::string_view(w.uid));
    if (it != shard.end() && it->second == &w) shard.erase(it);
  }
  if (w.network_mode != NetworkMode::HostNetwork) {
    for (const auto& ip : w.addresses) {
      auto& shard = addr_.writable(ip);
      auto it = shard.find(ip);
      if (it == shard.end()) continue;
      erase_value(it->second, &w);
      if (it->second.empty()) shard.erase(it);
    }
  }
  for (const auto& [key, ports] : w.services) {
    (void)ports;
    auto& shard = members_.writable(std::string_view(key));
    auto it = shard.find(std::string_view(key));
    if (it == shard.end()) continue;
    erase_value(it->second, &w);
    if (it->second.empty()) shard.erase(it);
  }
  {
    auto& shard = by_name_.writable(std::string_view(w.name));
    auto it = shard.find(std::string_view(w.name));
    if (it != shard.end()) {
      erase_value(it->second, &w);
      // The key views a name inside a workload: never leave it pointing into `w`.
      auto rest = std::move(it->second);
      shard.erase(it);
      if (!rest.empty()) shard.emplace(std::string_view(rest.front()->name), std::move(rest));
    }
  }
}

const Workload* WorkloadIndex::by_uid(std::string_view uid) const {
  const auto* w = uid_.find(uid);
  return w ? *w : nullptr;
}

std::span<const Workload* const> WorkloadIndex::claimants(const IpAddr& ip) const {
  const auto* v = addr_.find(ip);
  if (v == nullptr) return {};
  return *v;
}

std::span<const Workload* const> WorkloadIndex::members(std::string_view service_key) const {
  const auto* v = members_.find(service_key);
  if (v == nullptr) return {};
  return *v;
}

std::span<const Workload* const> WorkloadIndex::named(std::string_view name) const {
  const auto* v = by_name_.find(name);
  if (v == nullptr) return {};
  return *v;
}

}  // namespace ztunnel
