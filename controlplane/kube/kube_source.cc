#include "controlplane/kube/kube_source.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/admin/log.h"
#include "controlplane/k8s_loader.h"

namespace controlplane::kube {
namespace {

using common::kube::Informer;
using common::kube::InformerOptions;

using common::make_error;
using nlohmann::json;

void append(ResourceSet& to, ResourceSet&& from) {
  auto move_all = [](auto& dst, auto& src) {
    dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end()));
  };
  move_all(to.namespaces, from.namespaces);
  move_all(to.service_accounts, from.service_accounts);
  move_all(to.pods, from.pods);
  move_all(to.workload_entries, from.workload_entries);
  move_all(to.services, from.services);
  move_all(to.endpoint_slices, from.endpoint_slices);
  move_all(to.gateways, from.gateways);
  move_all(to.policies, from.policies);
  move_all(to.request_authns, from.request_authns);
  move_all(to.l7.virtual_services, from.l7.virtual_services);
  move_all(to.l7.destination_rules, from.l7.destination_rules);
  move_all(to.l7.gateway_routes, from.l7.gateway_routes);
  move_all(to.l7.istio_gateways, from.l7.istio_gateways);
  move_all(to.rate_limits, from.rate_limits);
  move_all(to.telemetries, from.telemetries);
  if (from.mesh && !to.mesh) to.mesh = std::move(from.mesh);  // one ConfigMap istio-system/istio
}

}  // namespace

struct KubeSource::Impl {
  KubeSourceOptions opt;
  std::unique_ptr<KubeClient> client;
  std::vector<std::unique_ptr<Informer>> informers;  // one per watched kind, as watched_kinds()

  mutable std::mutex mu;
  std::condition_variable cv;
  uint64_t generation = 0;
  bool stopping = false;
  std::function<void()> listener;

  // snapshot()'s parse cache: "<plural>/<key>" -> the object's JSON and what it parsed into.
  struct Parsed {
    std::string json;
    ResourceSet objects;
    Diagnostics diags;
  };
  std::mutex cache_mu;
  std::map<std::string, Parsed> cache;

  void changed() {
    std::function<void()> l;
    {
      std::lock_guard<std::mutex> g(mu);
      ++generation;
      l = listener;
    }
    cv.notify_all();
    if (l) l();
  }
  void synced() {
    { std::lock_guard<std::mutex> g(mu); }  // orders the notify after start()'s predicate check
    cv.notify_all();
  }
  bool all_synced() const {
    for (const auto& inf : informers)
      if (!inf->synced()) return false;
    return true;
  }
};

common::Result<std::shared_ptr<KubeSource>> KubeSource::start(KubeSourceOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  impl->client = std::make_unique<KubeClient>(impl->opt.config);
  Impl* self = impl.get();
  std::vector<ScopedKind> kinds;
  for (const auto& k : watched_kinds()) kinds.push_back({k, "", ""});
  for (const auto& k : scoped_kinds()) kinds.push_back(k);
  for (const auto& k : kinds) {
    InformerOptions io;
    io.kind = k.kind;
    io.ns = k.ns;
    io.field_selector = k.field_selector;
    io.watch_timeout_seconds = self->opt.watch_timeout_seconds;
    io.backoff_initial = self->opt.backoff_initial;
    io.backoff_max = self->opt.backoff_max;
    io.list_page_size = self->opt.list_page_size;
    self->informers.push_back(std::make_unique<Informer>(
        *self->client, std::move(io), Informer::Callbacks{[self] { self->changed(); }, [self] { self->synced(); }}));
  }
  std::shared_ptr<KubeSource> src(new KubeSource(std::move(impl)));
  for (auto& inf : self->informers) inf->start();
  std::unique_lock<std::mutex> g(self->mu);
  const bool ok = self->cv.wait_for(g, self->opt.initial_sync_timeout, [&] { return self->all_synced(); });
  if (!ok) {
    std::string missing;
    for (const auto& inf : self->informers) {
      if (!inf->synced()) missing += (missing.empty() ? "" : ", ") + inf->kind().plural;
    }
    g.unlock();
    src->stop();
    return make_error("--kube: " + self->opt.config.url() + ": no initial list within " +
                      std::to_string(self->opt.initial_sync_timeout.count()) + " s for: " + missing);
  }
  return src;
}

KubeSource::KubeSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)), client_(impl_->client.get()) {}

KubeSource::~KubeSource() {
  stop();
}

std::string KubeSource::describe() const {
  return "the Kubernetes API at " + impl_->opt.config.url();
}

uint64_t KubeSource::wait_change(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> g(impl_->mu);
  impl_->cv.wait_for(g, timeout, [&] { return impl_->generation != seen || impl_->stopping; });
  return impl_->generation;
}

ResourceSet KubeSource::snapshot(Diagnostics& diags, uint64_t& generation) {
  // Copy the JSON out under the lock; parse outside it.
  std::vector<std::pair<std::string, std::string>> objects;  // cache key, json
  {
    // The generation is read first: a change racing the copies below bumps it again, so the
    // caller compiles once more rather than missing it.
    std::lock_guard<std::mutex> g(impl_->mu);
    generation = impl_->generation;
  }
  for (const auto& inf : impl_->informers) {
    if (inf->kind().plural == "nodes") continue;  // annotate() only
    // Keyed by group too: Istio's and the Gateway API's Gateway share the plural "gateways".
    const std::string prefix = inf->kind().group.empty() ? inf->kind().plural : inf->kind().plural + "." + inf->kind().group;
    for (const auto& [key, obj] : inf->objects()) objects.emplace_back(prefix + "/" + key, obj.json);
  }
  std::lock_guard<std::mutex> g(impl_->cache_mu);
  std::map<std::string, Impl::Parsed> next;
  ResourceSet out;
  for (auto& [key, text] : objects) {
    auto it = impl_->cache.find(key);
    Impl::Parsed p;
    if (it != impl_->cache.end() && it->second.json == text) {
      p = std::move(it->second);
    } else {
      p.json = std::move(text);
      parse_manifests(p.json, "kube:" + key.substr(0, key.find('/')), p.objects, p.diags);
    }
    ResourceSet copy = p.objects;
    append(out, std::move(copy));
    diags.insert(diags.end(), p.diags.begin(), p.diags.end());
    next.emplace(key, std::move(p));
  }
  impl_->cache = std::move(next);
  return out;
}

void KubeSource::annotate(ztunnel::LocalConfig& config) const {
  std::map<std::string, ztunnel::Locality> by_node;
  for (const auto& [name, obj] : objects_of("nodes")) {
    json n = json::parse(obj.json, nullptr, false);
    if (!n.is_object()) continue;
    const json labels = n["metadata"].value("labels", json::object());
    if (!labels.is_object()) continue;
    ztunnel::Locality loc;
    auto label = [&](const char* k) {
      auto it = labels.find(k);
      return it != labels.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    loc.region = label("topology.kubernetes.io/region");
    loc.zone = label("topology.kubernetes.io/zone");
    loc.subzone = label("topology.istio.io/subzone");
    if (!loc.empty()) by_node[name] = loc;
  }
  if (by_node.empty()) return;
  for (auto& w : config.workloads) {
    if (w.node.empty() || !w.locality.empty()) continue;
    if (auto it = by_node.find(w.node); it != by_node.end()) w.locality = it->second;
  }
}

void KubeSource::stop() {
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  for (auto& inf : impl_->informers) inf->stop();
}

std::map<std::string, StoredObject> KubeSource::objects_of(const std::string& plural, const std::string& group) const {
  for (const auto& inf : impl_->informers) {
    if (inf->kind().plural == plural && (group.empty() || inf->kind().group == group)) return inf->objects();
  }
  return {};
}

void KubeSource::set_listener(std::function<void()> listener) {
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->listener = std::move(listener);
}

}  // namespace controlplane::kube
