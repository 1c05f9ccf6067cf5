#include "controlplane/incremental_compiler.h"

#include <algorithm>
#include <utility>

namespace controlplane {
namespace {

template <typename T>
void append_move(std::vector<T>& to, std::vector<T>& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

void append_set(ResourceSet& to, ResourceSet&& from) {
  append_move(to.namespaces, from.namespaces);
  append_move(to.service_accounts, from.service_accounts);
  append_move(to.pods, from.pods);
  append_move(to.workload_entries, from.workload_entries);
  append_move(to.services, from.services);
  append_move(to.endpoint_slices, from.endpoint_slices);
  append_move(to.gateways, from.gateways);
  append_move(to.policies, from.policies);
}

// Splits one compile's outputs by namespace; each part keeps compile()'s order.
std::map<std::string, std::shared_ptr<Partition>> split(ztunnel::LocalConfig&& config, Diagnostics&& diags,
                                                        Diagnostics* unowned) {
  std::map<std::string, std::shared_ptr<Partition>> parts;
  auto part = [&](const std::string& ns) -> Partition& {
    auto& p = parts[ns];
    if (!p) p = std::make_shared<Partition>();
    return *p;
  };
  for (auto& w : config.workloads) part(w.ns).config.workloads.push_back(std::move(w));
  for (auto& s : config.services) part(s.ns).config.services.push_back(std::move(s));
  for (auto& a : config.policies) part(a.ns).config.policies.push_back(std::move(a));
  for (auto& d : diags) {
    std::string ns = IncrementalCompiler::partition_of(d);
    if (!ns.empty()) {
      part(ns).diagnostics.push_back(std::move(d));
    } else if (unowned) {
      unowned->push_back(std::move(d));
    }
  }
  return parts;
}

}  // namespace

std::string IncrementalCompiler::partition_of(const Diagnostic& d) {
  const auto space = d.object.find(' ');
  if (space == std::string::npos) return "";
  if (d.object.compare(0, space, "Namespace") == 0) return d.object.substr(space + 1);
  const auto slash = d.object.find('/', space + 1);
  if (slash == std::string::npos) return "";
  return d.object.substr(space + 1, slash - space - 1);
}

void IncrementalCompiler::full(const CachedLoader& loader) {
  Diagnostics diags;
  ResourceSet all = loader.all(diags);
  CompiledState st = compile(all, opt_);
  append_move(diags, st.diagnostics);
  st.diagnostics = std::move(diags);
  assign(std::move(st));
}

void IncrementalCompiler::assign(CompiledState st) {
  unowned_.clear();
  parts_.clear();
  for (auto& [ns, p] : split(std::move(st.config), std::move(st.diagnostics), &unowned_)) parts_.emplace(ns, p);
  compiled_ = true;
}

std::shared_ptr<const Partition> IncrementalCompiler::compile_partition(const CachedLoader& loader,
                                                                        const std::string& ns) const {
  Diagnostics diags;
  ResourceSet objects = loader.partition(ns, diags);
  if (objects.size() == 0) return nullptr;
  append_set(objects, loader.context_except(ns));
  CompiledState st = compile(objects, opt_);
  append_move(diags, st.diagnostics);
  auto parts = split(std::move(st.config), std::move(diags), nullptr);
  auto it = parts.find(ns);
  // Objects of the namespace that compile to nothing (a Namespace alone, a pod without an IP)
  // still make a partition: their findings live there.
  return it == parts.end() ? std::make_shared<const Partition>() : std::shared_ptr<const Partition>(it->second);
}

IncrementalCompiler::Update IncrementalCompiler::update(const CachedLoader& loader,
                                                        const CachedLoader::Change& change) {
  Update u;
  if (!compiled_ || change.context) {
    full(loader);
    u.full = true;
    return u;
  }
  for (const auto& ns : change.namespaces) {
    auto p = compile_partition(loader, ns);
    if (p) {
      parts_[ns] = std::move(p);
    } else {
      parts_.erase(ns);
    }
    u.touched.push_back(ns);
  }
  return u;
}

ztunnel::LocalConfig IncrementalCompiler::merged() const {
  // Workload uids and service/policy keys embed the namespace but not as a prefix, so the
  // joined lists are re-sorted to compile()'s order.
  ztunnel::LocalConfig out;
  for (const auto& [ns, p] : parts_) {
    out.workloads.insert(out.workloads.end(), p->config.workloads.begin(), p->config.workloads.end());
    out.services.insert(out.services.end(), p->config.services.begin(), p->config.services.end());
    out.policies.insert(out.policies.end(), p->config.policies.begin(), p->config.policies.end());
  }
  std::sort(out.workloads.begin(), out.workloads.end(), [](const auto& a, const auto& b) { return a.uid < b.uid; });
  std::sort(out.services.begin(), out.services.end(), [](const auto& a, const auto& b) { return a.key() < b.key(); });
  std::sort(out.policies.begin(), out.policies.end(), [](const auto& a, const auto& b) { return a.key() < b.key(); });
  return out;
}

Diagnostics IncrementalCompiler::diagnostics() const {
  Diagnostics out = unowned_;
  for (const auto& [ns, p] : parts_) out.insert(out.end(), p->diagnostics.begin(), p->diagnostics.end());
  return out;
}

}  // namespace controlplane
