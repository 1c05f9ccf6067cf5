#include "controlplane/cached_loader.h"

#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "controlplane/k8s_loader.h"

namespace controlplane {
namespace {

template <typename T>
void append(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// Reads and parses one file the way load_directory() does.
void parse_file(const FileStamp& stamp, ResourceSet& out, Diagnostics& diags) {
  if (stamp.size > kMaxManifestBytes) {
    diags.push_back({Severity::Error, stamp.path, "", "",
                     "larger than " + std::to_string(kMaxManifestBytes) + " bytes; file ignored"});
    return;
  }
  std::ifstream in(stamp.path, std::ios::binary);
  if (!in) {
    diags.push_back({Severity::Error, stamp.path, "", "", "cannot open file; file ignored"});
    return;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    diags.push_back({Severity::Error, stamp.path, "", "", "read error; file ignored"});
    return;
  }
  const std::string text = buf.str();
  if (text.size() > kMaxManifestBytes) {  // grew between stat() and read
    diags.push_back({Severity::Error, stamp.path, "", "",
                     "larger than " + std::to_string(kMaxManifestBytes) + " bytes; file ignored"});
    return;
  }
  parse_manifests(text, stamp.path, out, diags);
}

// Appends the objects of `from` whose partition passes `keep`.
template <typename Keep>
void append_if(const ResourceSet& from, Keep keep, ResourceSet& to) {
  auto copy = [&](auto& dst, const auto& src) {
    for (const auto& o : src) {
      if (keep(o)) dst.push_back(o);
    }
  };
  copy(to.namespaces, from.namespaces);
  copy(to.service_accounts, from.service_accounts);
  copy(to.pods, from.pods);
  copy(to.workload_entries, from.workload_entries);
  copy(to.services, from.services);
  copy(to.endpoint_slices, from.endpoint_slices);
  copy(to.gateways, from.gateways);
  copy(to.policies, from.policies);
}

bool is_waypoint_pod(const PodObject& p) {
  return p.meta.labels.count(std::string(kGatewayNameLabel)) > 0;
}

}  // namespace

bool CachedLoader::is_context(const ResourceSet& r, const std::string& root_namespace) {
  if (!r.gateways.empty()) return true;
  for (const auto& p : r.pods) {
    if (is_waypoint_pod(p)) return true;
  }
  for (const auto& p : r.policies) {
    if (p.meta.ns == root_namespace) return true;
  }
  return false;
}

void CachedLoader::index(const std::string& path, const Entry& e, bool add) {
  for (const auto& ns : e.partitions) {
    if (add) {
      partition_files_[ns].insert(path);
    } else if (auto it = partition_files_.find(ns); it != partition_files_.end()) {
      it->second.erase(path);
      if (it->second.empty()) partition_files_.erase(it);
    }
  }
  for (const auto& p : e.objects.pods) {
    PodKey key{p.meta.ns, p.meta.name};
    if (add) {
      pod_files_[key].insert(path);
    } else if (auto it = pod_files_.find(key); it != pod_files_.end()) {
      it->second.erase(path);
      if (it->second.empty()) pod_files_.erase(it);
    }
    if (!is_waypoint_pod(p)) continue;
    if (add) {
      ++labelled_pods_[key];
    } else if (auto it = labelled_pods_.find(key); it != labelled_pods_.end() && --it->second == 0) {
      labelled_pods_.erase(it);
    }
  }
  if (add && e.context) {
    context_files_.insert(path);
  } else if (!add) {
    context_files_.erase(path);
  }
}

bool CachedLoader::holds_context(const Entry& e) const {
  if (e.context) return true;
  for (const auto& p : e.objects.pods) {
    if (labelled_pods_.count({p.meta.ns, p.meta.name})) return true;
  }
  return false;
}

CachedLoader::Change CachedLoader::refresh(const DirFingerprint& files, const std::string& root_namespace) {
  Change change;
  parsed_last_ = 0;
  if (root_namespace != root_namespace_) {  // context flags depend on it (rare: options change)
    root_namespace_ = root_namespace;
    for (auto& [path, e] : cache_) {
      index(path, e, false);
      e.context = is_context(e.objects, root_namespace_);
      index(path, e, true);
    }
    change.context = true;
  }
  auto note = [&](const Entry& e) {
    change.namespaces.insert(e.partitions.begin(), e.partitions.end());
    change.context = change.context || holds_context(e);
    change.l7 = change.l7 || e.l7;
    change.files = true;
  };
  std::set<std::string> listed;
  std::vector<std::string> order;
  order.reserve(files.size());
  for (const FileStamp& f : files) {
    listed.insert(f.path);
    order.push_back(f.path);
    auto it = cache_.find(f.path);
    if (it != cache_.end() && it->second.stamp == f) continue;
    if (it != cache_.end()) {
      note(it->second);
      index(f.path, it->second, false);
      cache_.erase(it);
    }
    Entry e;
    e.stamp = f;
    parse_file(f, e.objects, e.diags);
    ++parsed_last_;
    auto add_all = [&](const auto& v) {
      for (const auto& o : v) e.partitions.insert(partition_of(o));
    };
    add_all(e.objects.namespaces);
    add_all(e.objects.service_accounts);
    add_all(e.objects.pods);
    add_all(e.objects.workload_entries);
    add_all(e.objects.services);
    add_all(e.objects.endpoint_slices);
    add_all(e.objects.gateways);
    add_all(e.objects.policies);
    e.context = is_context(e.objects, root_namespace_);
    e.l7 = e.objects.l7.size() > 0 || !e.objects.rate_limits.empty() || !e.objects.request_authns.empty() ||
           e.objects.mesh.has_value() || !e.objects.telemetries.empty();
    index(f.path, e, true);
    note(e);
    cache_.emplace(f.path, std::move(e));
  }
  if (listed.size() != cache_.size()) {  // files gone from the directory leave the cache
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (listed.count(it->first)) {
        ++it;
        continue;
      }
      note(it->second);
      index(it->first, it->second, false);
      it = cache_.erase(it);
    }
  }
  if (order != order_) change.files = true;  // a reorder changes which duplicate wins
  order_ = std::move(order);
  return change;
}

ResourceSet CachedLoader::all(Diagnostics& dedupe_diags) const {
  ResourceSet out;
  for (const auto& path : order_) {  // file order, as load_directory()
    const Entry& e = cache_.at(path);
    append(out.namespaces, e.objects.namespaces);
    append(out.service_accounts, e.objects.service_accounts);
    append(out.pods, e.objects.pods);
    append(out.workload_entries, e.objects.workload_entries);
    append(out.services, e.objects.services);
    append(out.endpoint_slices, e.objects.endpoint_slices);
    append(out.gateways, e.objects.gateways);
    append(out.policies, e.objects.policies);
    append(out.request_authns, e.objects.request_authns);
    append(out.l7.virtual_services, e.objects.l7.virtual_services);
    append(out.l7.destination_rules, e.objects.l7.destination_rules);
    append(out.l7.gateway_routes, e.objects.l7.gateway_routes);
    append(out.l7.istio_gateways, e.objects.l7.istio_gateways);
    append(out.rate_limits, e.objects.rate_limits);
    append(out.telemetries, e.objects.telemetries);
    if (e.objects.mesh) {  // the first in file order wins, as remove_duplicates keeps the first
      if (!out.mesh) {
        out.mesh = e.objects.mesh;
      } else {
        dedupe_diags.push_back({Severity::Error, e.objects.mesh->file, e.objects.mesh->object, "",
                                "a second mesh config (the first is in " + out.mesh->file + "); ignored"});
      }
    }
  }
  remove_duplicates(out, dedupe_diags);
  return out;
}

void CachedLoader::file_diagnostics(Diagnostics& out) const {
  for (const auto& path : order_) append(out, cache_.at(path).diags);
}

ResourceSet CachedLoader::partition(const std::string& ns, Diagnostics& dedupe_diags) const {
  ResourceSet out;
  auto files = partition_files_.find(ns);
  if (files == partition_files_.end()) return out;
  for (const auto& path : order_) {
    if (!files->second.count(path)) continue;
    append_if(
        cache_.at(path).objects, [&](const auto& o) { return partition_of(o) == ns; }, out);
  }
  remove_duplicates(out, dedupe_diags);
  return out;
}

ResourceSet CachedLoader::context_except(const std::string& ns) const {
  // Files to read: those with context objects, and those naming a labelled pod (an earlier
  // unlabelled namesake wins the duplicate, and then that pod is no waypoint's).
  std::set<std::string> files = context_files_;
  for (const auto& [key, n] : labelled_pods_) {
    if (key.first == ns) continue;
    if (auto it = pod_files_.find(key); it != pod_files_.end()) files.insert(it->second.begin(), it->second.end());
  }
  ResourceSet out;
  for (const auto& path : order_) {
    if (!files.count(path)) continue;
    const ResourceSet& r = cache_.at(path).objects;
    for (const auto& g : r.gateways) {
      if (g.meta.ns != ns) out.gateways.push_back(g);
    }
    for (const auto& p : r.pods) {
      if (p.meta.ns != ns && labelled_pods_.count({p.meta.ns, p.meta.name})) out.pods.push_back(p);
    }
    for (const auto& p : r.policies) {
      if (p.meta.ns != ns && p.meta.ns == root_namespace_) out.policies.push_back(p);
    }
  }
  Diagnostics ignored;  // reported by the partition that owns them
  remove_duplicates(out, ignored);
  std::erase_if(out.pods, [](const PodObject& p) { return !is_waypoint_pod(p); });
  return out;
}

bool CachedLoader::has_waypoint_gateways() const {
  for (const auto& path : context_files_) {
    for (const auto& g : cache_.at(path).objects.gateways) {
      if (g.class_name == kWaypointGatewayClass || g.class_name == kIngressGatewayClass) return true;
    }
    // Ingress gateways' endpoints follow pods and services the same way.
    if (!cache_.at(path).objects.l7.istio_gateways.empty()) return true;
  }
  return false;
}

ResourceSet CachedLoader::load(const DirFingerprint& files, Diagnostics& diags) {
  refresh(files, root_namespace_);
  file_diagnostics(diags);
  return all(diags);
}

common::Result<ResourceSet> CachedLoader::load_directory(const std::string& dir, Diagnostics& diags,
                                                         const std::vector<std::string>& exclude) {
  auto fp = fingerprint(dir, exclude);
  if (!fp) return common::make_error(fp.error());
  return load(*fp, diags);
}

}  // namespace controlplane
