// Snapshot lookups: by uid, address, (namespace, name, service account), service VIP/key,
// policy key and namespace. No allocation; pointers into the snapshot.
#include "common/state/snapshot.h"

#include "common/state/workload_index.h"

namespace ztunnel {

namespace {

// Upstream's tie-break when several workloads claim one address: Pods first (not spoofable via
// WorkloadEntry), then HBONE-enabled ones.
int address_claim_rank(const Workload& w) {
  const bool is_pod = w.uid.find("//Pod/") != std::string::npos;
  const bool is_hbone = w.tunnel_protocol == TunnelProtocol::Hbone;
  return (is_pod ? 2 : 0) + (is_hbone ? 1 : 0);
}

const std::pair<std::string, size_t>* find_in(
    const std::unordered_map<IpAddr, std::vector<std::pair<std::string, size_t>>>& idx, std::string_view network,
    const IpAddr& ip) {
  auto it = idx.find(canonical_ip(ip));
  if (it == idx.end()) return nullptr;
  for (const auto& entry : it->second) {
    if (entry.first == network) return &entry;
  }
  return nullptr;
}

}  // namespace

const Workload* Snapshot::find_workload_by_uid(std::string_view uid) const {
  return workload_index_->by_uid(uid);
}

const Workload* Snapshot::find_workload(std::string_view network, const IpAddr& ip) const {
  // Among the claimants on that network, upstream's preference; equal rank -> the larger uid
  // (deterministic whatever order the workloads arrived in).
  const Workload* best = nullptr;
  for (const Workload* w : workload_index_->claimants(canonical_ip(ip))) {
    if (w->network != network) continue;
    if (best == nullptr) {
      best = w;
      continue;
    }
    const int rw = address_claim_rank(*w), rb = address_claim_rank(*best);
    if (rw > rb || (rw == rb && w->uid > best->uid)) best = w;
  }
  return best;
}

const Workload* Snapshot::find_workload_by_info(std::string_view ns, std::string_view name,
                                                std::string_view service_account) const {
  // Hashed by name: this runs on every proxied connection. Duplicates of one (namespace, name,
  // service account) resolve to the smallest uid — what a scan of the xDS path's uid-ordered
  // workloads found first.
  const Workload* best = nullptr;
  for (const Workload* w : workload_index_->named(name)) {
    if (w->ns != ns || w->service_account != service_account) continue;
    if (best == nullptr || w->uid < best->uid) best = w;
  }
  return best;
}

const Service* Snapshot::find_service(std::string_view network, const IpAddr& vip) const {
  const auto* e = find_in(services_lookup_->by_vip, network, vip);
  if (e != nullptr) return services_[e->second].get();
  const auto& cidrs = services_lookup_->by_cidr;
  if (cidrs.empty()) return nullptr;
  const IpAddr ip = canonical_ip(vip);
  for (const CidrVip& c : cidrs) {  // sorted longest prefix first: the first hit is the best
    if (c.network == network && c.cidr.contains(ip)) return services_[c.index].get();
  }
  return nullptr;
}

const Service* Snapshot::find_service_by_key(std::string_view key) const {
  auto it = services_lookup_->by_key.find(key);
  return it == services_lookup_->by_key.end() ? nullptr : services_[it->second].get();
}

const Service* Snapshot::find_service_by_host(std::string_view ns, std::string_view hostname) const {
  // Small stack buffer would be premature: this is not on the per-connection path.
  std::string key;
  key.reserve(ns.size() + hostname.size() + 1);
  key.append(ns).append("/").append(hostname);
  return find_service_by_key(key);
}

const Authorization* Snapshot::find_policy(std::string_view key) const {
  auto it = policies_lookup_->by_key.find(key);
  return it == policies_lookup_->by_key.end() ? nullptr : policies_[it->second].get();
}

std::span<const Authorization* const> Snapshot::namespace_policies(std::string_view ns) const {
  auto it = policies_lookup_->by_ns.find(ns);
  if (it == policies_lookup_->by_ns.end()) return {};
  return it->second;
}

std::span<const ServiceEndpoint> Snapshot::endpoints(const Service& service) const {
  // `service` must come from this snapshot (an object of another generation may be shared with
  // this one, and then its endpoints here are this snapshot's).
  auto it = services_lookup_->position.find(&service);
  if (it == services_lookup_->position.end()) return {};  // not one of ours
  return *endpoints_[it->second];
}

std::vector<const Service*> Snapshot::services_of(const Workload& workload) const {
  std::vector<const Service*> out;
  out.reserve(workload.services.size());
  for (const auto& [key, ports] : workload.services) {
    if (const Service* s = find_service_by_key(key)) out.push_back(s);
  }
  return out;
}

}  // namespace ztunnel
