// Snapshot construction: dedup by key, address normalisation, and the indexes (services by
// VIP and key, endpoints per service, policies by key and namespace) built once per generation.
#include "common/state/snapshot.h"

#include <algorithm>
#include <unordered_set>

#include "common/model/local_config.h"
#include "common/state/workload_index.h"

namespace ztunnel {

namespace {

// Later duplicates replace earlier ones, keeping first-seen order for stable dumps.
template <typename Ptr, typename KeyOf>
void dedup(std::vector<Ptr>& items, KeyOf key_of) {
  std::unordered_map<std::string, size_t> pos;
  pos.reserve(items.size());
  std::vector<Ptr> out;
  out.reserve(items.size());
  for (auto& item : items) {
    auto [it, inserted] = pos.emplace(key_of(*item), out.size());
    if (inserted) {
      out.push_back(std::move(item));
    } else {
      out[it->second] = std::move(item);
    }
  }
  items = std::move(out);
}

bool all_canonical(const std::vector<IpAddr>& ips) {
  return std::all_of(ips.begin(), ips.end(), [](const IpAddr& ip) { return canonical_ip(ip) == ip; });
}

}  // namespace

SnapshotConstSharedPtr Snapshot::build(std::vector<Workload> workloads, std::vector<Service> services,
                                       std::vector<Authorization> policies, uint64_t version) {
  std::vector<WorkloadPtr> ws;
  ws.reserve(workloads.size());
  for (auto& w : workloads) ws.push_back(std::make_shared<const Workload>(std::move(w)));
  std::vector<ServicePtr> ss;
  ss.reserve(services.size());
  for (auto& s : services) ss.push_back(std::make_shared<const Service>(std::move(s)));
  std::vector<AuthorizationPtr> ps;
  ps.reserve(policies.size());
  for (auto& p : policies) ps.push_back(std::make_shared<const Authorization>(std::move(p)));
  return build_shared(std::move(ws), std::move(ss), std::move(ps), version);
}

SnapshotConstSharedPtr Snapshot::build_shared(std::vector<WorkloadPtr> workloads, std::vector<ServicePtr> services,
                                              std::vector<AuthorizationPtr> policies, uint64_t version, bool prepared) {
  auto snap = std::make_shared<Snapshot>(Tag{});
  snap->version_ = version;
  if (prepared) {
    snap->workloads_ = std::move(workloads);
    snap->services_ = std::move(services);
    snap->policies_ = std::move(policies);
    snap->index();
    return snap;
  }

  dedup(workloads, [](const Workload& w) { return w.uid; });
  dedup(services, [](const Service& s) { return s.key(); });
  dedup(policies, [](const Authorization& a) { return a.key(); });

  // Canonical IPs make the address indexes exact-match. Objects are shared, so a fix is made
  // on a copy (xDS input is normalised at conversion and never takes this path).
  for (auto& w : workloads) {
    if (all_canonical(w->addresses)) continue;
    auto copy = std::make_shared<Workload>(*w);
    for (auto& ip : copy->addresses) ip = canonical_ip(ip);
    w = std::move(copy);
  }
  for (auto& s : services) {
    if (std::all_of(s->vips.begin(), s->vips.end(),
                    [](const NetworkAddress& v) { return canonical_ip(v.ip) == v.ip; })) {
      continue;
    }
    auto copy = std::make_shared<Service>(*s);
    for (auto& v : copy->vips) v.ip = canonical_ip(v.ip);
    s = std::move(copy);
  }

  snap->workloads_ = std::move(workloads);
  snap->services_ = std::move(services);
  snap->policies_ = std::move(policies);
  snap->index();
  return snap;
}

SnapshotConstSharedPtr Snapshot::update(const Snapshot& prev, std::vector<WorkloadPtr> workloads,
                                        std::vector<ServicePtr> services, std::vector<AuthorizationPtr> policies,
                                        std::span<const std::pair<WorkloadPtr, WorkloadPtr>> workload_changes,
                                        uint64_t version) {
  if (!prev.workload_index_ || !prev.services_lookup_ || prev.services_lookup_->explicit_endpoints) {
    return build_shared(std::move(workloads), std::move(services), std::move(policies), version, true);
  }
  auto snap = std::make_shared<Snapshot>(Tag{});
  snap->version_ = version;
  snap->workloads_ = std::move(workloads);
  snap->services_ = std::move(services);
  snap->policies_ = std::move(policies);
  snap->workload_index_ = prev.workload_index_->with(workload_changes);

  const bool same_services = snap->services_ == prev.services_;  // the same objects, same order
  if (same_services) {
    snap->services_lookup_ = prev.services_lookup_;
  } else {
    snap->index_services();
  }
  if (snap->services_lookup_->explicit_endpoints) {
    snap->endpoints_.reserve(snap->services_.size());
    for (const auto& s : snap->services_) snap->endpoints_.push_back(snap->build_endpoints(*s));
  } else {
    // Services a changed workload joins or leaves get new lists; the rest share prev's.
    std::unordered_set<std::string_view> touched;
    for (const auto& [old_w, new_w] : workload_changes) {
      for (const WorkloadPtr* w : {&old_w, &new_w}) {
        if (!*w) continue;
        for (const auto& kv : (*w)->services) touched.insert(kv.first);
      }
    }
    if (same_services) {
      snap->endpoints_ = prev.endpoints_;
      for (std::string_view key : touched) {
        auto it = snap->services_lookup_->by_key.find(key);
        if (it != snap->services_lookup_->by_key.end()) {
          snap->endpoints_[it->second] = snap->build_endpoints(*snap->services_[it->second]);
        }
      }
    } else {
      snap->endpoints_.reserve(snap->services_.size());
      std::string key;
      for (const auto& s : snap->services_) {
        key.assign(s->ns).append("/").append(s->hostname);
        auto old = prev.services_lookup_->position.find(s.get());
        if (old != prev.services_lookup_->position.end() && !touched.count(key)) {
          snap->endpoints_.push_back(prev.endpoints_[old->second]);
        } else {
          snap->endpoints_.push_back(snap->build_endpoints(*s));
        }
      }
    }
  }
  if (snap->policies_ == prev.policies_) {
    snap->policies_lookup_ = prev.policies_lookup_;
  } else {
    snap->index_policies();
  }
  return snap;
}

SnapshotConstSharedPtr Snapshot::from_local_config(LocalConfig config, uint64_t version) {
  return build(std::move(config.workloads), std::move(config.services), std::move(config.policies), version);
}

SnapshotConstSharedPtr Snapshot::empty() {
  static const SnapshotConstSharedPtr kEmpty = build({}, {}, {}, 0);
  return kEmpty;
}

void Snapshot::index() {
  if (!workload_index_) workload_index_ = WorkloadIndex::build(workloads_);
  index_services();
  endpoints_.clear();
  endpoints_.reserve(services_.size());
  for (const auto& s : services_) endpoints_.push_back(build_endpoints(*s));
  index_policies();
}

void Snapshot::index_services() {
  auto lookup = std::make_shared<ServiceLookup>();
  lookup->position.reserve(services_.size());
  lookup->by_key.reserve(services_.size());
  for (size_t i = 0; i < services_.size(); ++i) {
    const Service& s = *services_[i];
    lookup->position.emplace(&s, i);
    lookup->by_key.emplace(s.key(), i);
    lookup->explicit_endpoints = lookup->explicit_endpoints || !s.endpoints.empty();
    for (const auto& vip : s.vips) {
      auto& slot = lookup->by_vip[vip.ip];
      auto it = std::find_if(slot.begin(), slot.end(), [&](const auto& e) { return e.first == vip.network; });
      if (it == slot.end()) {
        slot.emplace_back(vip.network, i);
      } else {
        it->second = i;
      }
    }
    for (const auto& c : s.cidr_vips) lookup->by_cidr.push_back(CidrVip{c.network, c.cidr, i});
  }
  // Longest prefix first; for one (network, prefix) the later service wins, as for exact VIPs
  // (the stable sort keeps equal keys in service order, so the last of each run is kept).
  auto& cidrs = lookup->by_cidr;
  std::stable_sort(cidrs.begin(), cidrs.end(), [](const CidrVip& a, const CidrVip& b) {
    if (a.cidr.prefix_len != b.cidr.prefix_len) return a.cidr.prefix_len > b.cidr.prefix_len;
    if (a.network != b.network) return a.network < b.network;
    return a.cidr.addr < b.cidr.addr;
  });
  std::vector<CidrVip> unique;
  unique.reserve(cidrs.size());
  for (auto& c : cidrs) {
    if (!unique.empty() && unique.back().network == c.network && unique.back().cidr == c.cidr) {
      unique.back().index = c.index;
    } else {
      unique.push_back(std::move(c));
    }
  }
  cidrs = std::move(unique);
  services_lookup_ = std::move(lookup);
}

// Endpoints: from each workload's services map, then explicit ones from the service (the
// explicit entry wins for the same workload). Health filtering happens here, as upstream
// does at ingest. Needs workload_index_.
Snapshot::EndpointList Snapshot::build_endpoints(const Service& s) const {
  auto include = [&s](HealthStatus status) {
    return status == HealthStatus::Healthy ||
           (s.load_balancer && s.load_balancer->health_policy == LoadBalancerHealthPolicy::AllowAll);
  };
  auto eps = std::make_shared<std::vector<ServiceEndpoint>>();
  std::string key;
  key.assign(s.ns).append("/").append(s.hostname);
  for (const Workload* w : workload_index_->members(key)) {
    if (!include(w->status)) continue;
    eps->push_back(ServiceEndpoint{w, &w->services.find(key)->second, w->status});
  }
  for (const Endpoint& ep : s.endpoints) {
    const Workload* w = find_workload_by_uid(ep.workload_uid);
    if (w == nullptr) continue;
    eps->erase(std::remove_if(eps->begin(), eps->end(), [&](const ServiceEndpoint& e) { return e.workload == w; }),
               eps->end());
    if (!include(ep.status)) continue;
    eps->push_back(ServiceEndpoint{w, &ep.port, ep.status});
  }
  return eps;
}

void Snapshot::index_policies() {
  auto lookup = std::make_shared<PolicyLookup>();
  for (size_t i = 0; i < policies_.size(); ++i) {
    const Authorization& p = *policies_[i];
    lookup->by_key.emplace(p.key(), i);
    switch (p.scope) {
      case AuthzScope::Global:
        lookup->by_ns[""].push_back(&p);
        break;
      case AuthzScope::Namespace:
        lookup->by_ns[p.ns].push_back(&p);
        break;
      case AuthzScope::WorkloadSelector:
        break;  // reachable only through Workload::authorization_policies
    }
  }
  policies_lookup_ = std::move(lookup);
}

}  // namespace ztunnel
