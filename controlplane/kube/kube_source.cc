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

using common::make_error;
using nlohmann::json;

std::shared_ptr<spdlog::logger> kube_log() {
  static const std::shared_ptr<spdlog::logger> lg = common::log::logger("kube");
  return lg;
}

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
}

// One complete list of `kind`, fetched in pages of `page_size` (0 = one request) and returned
// as a single List body (first page's metadata.resourceVersion, all items), or the first
// non-200 response as is.
common::Result<KubeResponse> list_paged(KubeClient& client, const ResourceKind& kind, size_t page_size,
                                        Cancel& cancel) {
  for (int attempt = 0;; ++attempt) {
    json combined;
    std::string token;
    bool restart = false;
    for (size_t page = 0;; ++page) {
      std::string target = kind.collection_path();
      if (page_size > 0) {
        target += "?limit=" + std::to_string(page_size);
        if (!token.empty()) target += "&continue=" + url_encode(token);
      }
      auto r = client.request("GET", target, {}, {}, std::chrono::seconds(60), &cancel);
      if (!r) return r;
      if (r->status == 410 && page > 0 && attempt < 3) {
        kube_log()->info("list {}: continue token expired after {} page(s); listing again", kind.plural, page);
        restart = true;
        break;
      }
      if (r->status != 200) return r;
      if (page_size == 0) return r;
      json body = json::parse(r->body, nullptr, false);
      if (body.is_discarded() || !body.is_object()) return r;  // apply_list reports it
      if (page == 0) {
        combined = std::move(body);
        if (!combined.contains("items") || combined["items"].is_null()) combined["items"] = json::array();
      } else {
        auto items = body.find("items");
        if (items != body.end() && items->is_array() && combined["items"].is_array()) {
          for (auto& it : *items) combined["items"].push_back(std::move(it));
        }
      }
      token.clear();
      auto meta = page == 0 ? combined.find("metadata") : body.find("metadata");
      json& m = page == 0 ? combined : body;
      if (meta != m.end() && meta->is_object()) {
        auto c = meta->find("continue");
        if (c != meta->end() && c->is_string()) token = c->get<std::string>();
      }
      if (token.empty()) break;
    }
    if (restart) continue;
    if (combined.is_object() && combined.contains("metadata") && combined["metadata"].is_object()) {
      combined["metadata"].erase("continue");
      combined["metadata"].erase("remainingItemCount");
    }
    KubeResponse out;
    out.status = 200;
    out.body = combined.dump();
    return out;
  }
}

std::string status_message(const KubeResponse& r) {
  json st = json::parse(r.body, nullptr, false);
  if (st.is_object() && st.contains("message") && st["message"].is_string()) {
    return "HTTP " + std::to_string(r.status) + ": " + st["message"].get<std::string>();
  }
  return "HTTP " + std::to_string(r.status);
}

}  // namespace

struct KubeSource::Impl {
  KubeSourceOptions opt;
  std::unique_ptr<KubeClient> client;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<WatchState> states;  // one per watched kind, same order as watched_kinds()
  std::vector<bool> synced;        // listed once (or not served)
  uint64_t generation = 0;
  bool stopping = false;
  std::function<void()> listener;
  std::vector<std::unique_ptr<Cancel>> cancels;
  std::vector<std::thread> threads;

  // snapshot()'s parse cache: "<plural>/<key>" -> the object's JSON and what it parsed into.
  struct Parsed {
    std::string json;
    ResourceSet objects;
    Diagnostics diags;
  };
  std::mutex cache_mu;
  std::map<std::string, Parsed> cache;

  void run(size_t i);
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
  // Sleeps `d` unless stopping; false when stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> g(mu);
    return !cv.wait_for(g, d, [&] { return stopping; });
  }
  bool is_stopping() {
    std::lock_guard<std::mutex> g(mu);
    return stopping;
  }
  void mark_synced(size_t i) {
    {
      std::lock_guard<std::mutex> g(mu);
      synced[i] = true;
    }
    cv.notify_all();
  }
};

void KubeSource::Impl::run(size_t i) {
  ResourceKind kind;
  {
    std::lock_guard<std::mutex> g(mu);
    kind = states[i].kind();
  }
  Cancel& cancel = *cancels[i];
  auto backoff = opt.backoff_initial;
  auto fail_wait = [&]() {
    const bool go_on = pause(backoff);
    backoff = std::min(backoff * 2, opt.backoff_max);
    return go_on;
  };
  bool need_list = true;
  bool reported_absent = false;
  uint64_t events_since_list = 0;
  while (!is_stopping()) {
    if (need_list) {
      // Paged as client-go's reflector: `limit` per page, `continue` until the server stops
      // sending one; every page belongs to the first page's resourceVersion. A 410 on a
      // continuation (the token expired) starts the list over.
      auto r = list_paged(*client, kind, opt.list_page_size, cancel);
      if (!r) {
        if (is_stopping()) return;
        kube_log()->warn("list {}: {}; retrying in {} ms", kind.plural, r.error(), backoff.count());
        if (!fail_wait()) return;
        continue;
      }
      if (r->status == 404) {
        if (!reported_absent) {
          kube_log()->warn(
              "{} ({}) is not served by the API server (CRD not installed?); treated as empty, retried every 30 s",
              kind.kind, kind.api_version());
          reported_absent = true;
        }
        bool had;
        {
          std::lock_guard<std::mutex> g(mu);
          had = !states[i].objects().empty();
          if (had) (void)states[i].apply_list(R"({"metadata":{"resourceVersion":"0"},"items":[]})");
          states[i].require_list();
        }
        if (had) changed();
        mark_synced(i);
        if (!pause(std::chrono::seconds(30))) return;
        continue;
      }
      if (r->status != 200) {
        kube_log()->warn("list {}: {}; retrying in {} ms", kind.plural, status_message(*r), backoff.count());
        if (!fail_wait()) return;
        continue;
      }
      common::Status applied = common::ok_status();
      uint64_t before = 0, after = 0;
      size_t count = 0;
      std::string rv;
      {
        std::lock_guard<std::mutex> g(mu);
        before = states[i].changes();
        applied = states[i].apply_list(r->body);
        after = states[i].changes();
        count = states[i].objects().size();
        rv = states[i].resource_version();
      }
      if (!applied) {
        kube_log()->error("list {}: {}; retrying in {} ms", kind.plural, applied.error(), backoff.count());
        if (!fail_wait()) return;
        continue;
      }
      kube_log()->info("listed {} {} at resourceVersion {}", count, kind.plural, rv);
      reported_absent = false;
      need_list = false;
      events_since_list = 0;  // the backoff is reset by a watch that delivers, not by a list
      if (after != before) changed();
      mark_synced(i);
    }

    std::string target;
    {
      std::lock_guard<std::mutex> g(mu);
      target = states[i].watch_target(opt.watch_timeout_seconds);
    }
    const bool fresh_list = !need_list && events_since_list == 0;
    bool gone = false;
    bool errored = false;
    uint64_t delivered = 0;
    std::string why;
    auto on_line = [&](std::string_view line) {
      WatchState::EventResult res;
      {
        std::lock_guard<std::mutex> g(mu);
        res = states[i].apply_event(line);
      }
      switch (res.outcome) {
        case WatchState::Outcome::Changed:
          ++events_since_list;
          ++delivered;
          changed();
          return true;
        case WatchState::Outcome::Unchanged:
          ++events_since_list;
          ++delivered;
          return true;
        case WatchState::Outcome::Gone:
          gone = true;
          why = res.message;
          return false;
        case WatchState::Outcome::Error:
          errored = true;
          why = res.message;
          return false;
      }
      return false;
    };
    auto r = client->stream_lines(target, on_line, std::chrono::seconds(opt.watch_timeout_seconds + 30), &cancel);
    if (is_stopping()) return;
    if (r && r->status == 410) {
      gone = true;
      why = status_message(*r);
    }
    if (delivered > 0) backoff = opt.backoff_initial;
    if (gone) {
      kube_log()->info("watch {}: 410 Gone ({}); re-listing", kind.plural, why);
      // A 410 right after a fresh list means the server compacts faster than we list: back off
      // rather than list in a loop.
      if (fresh_list && !fail_wait()) return;
      std::lock_guard<std::mutex> g(mu);
      states[i].require_list();
      need_list = true;
      continue;
    }
    if (!r || r->status != 200 || errored) {
      const std::string msg = !r ? r.error() : r->status != 200 ? status_message(*r) : why;
      kube_log()->warn("watch {}: {}; retrying in {} ms", kind.plural, msg, backoff.count());
      if (r && r->status == 404) need_list = true;
      if (!fail_wait()) return;
      continue;
    }
    // The watch ended normally (server timeout): watch again; at once only if it delivered
    // something, so a server that ends every watch at once is not hammered.
    if (delivered == 0 && !fail_wait()) return;
  }
}

common::Result<std::shared_ptr<KubeSource>> KubeSource::start(KubeSourceOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  impl->client = std::make_unique<KubeClient>(impl->opt.config);
  for (const auto& k : watched_kinds()) {
    impl->states.emplace_back(k);
    impl->synced.push_back(false);
    impl->cancels.push_back(std::make_unique<Cancel>());
  }
  Impl* self = impl.get();
  std::shared_ptr<KubeSource> src(new KubeSource(std::move(impl)));
  for (size_t i = 0; i < self->states.size(); ++i) self->threads.emplace_back([self, i] { self->run(i); });
  std::unique_lock<std::mutex> g(self->mu);
  const bool ok = self->cv.wait_for(g, self->opt.initial_sync_timeout, [&] {
    for (bool s : self->synced)
      if (!s) return false;
    return true;
  });
  if (!ok) {
    std::string missing;
    for (size_t i = 0; i < self->states.size(); ++i) {
      if (!self->synced[i]) missing += (missing.empty() ? "" : ", ") + self->states[i].kind().plural;
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
    std::lock_guard<std::mutex> g(impl_->mu);
    generation = impl_->generation;
    for (const auto& st : impl_->states) {
      if (st.kind().plural == "nodes") continue;  // annotate() only
      for (const auto& [key, obj] : st.objects()) objects.emplace_back(st.kind().plural + "/" + key, obj.json);
    }
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
    if (impl_->stopping && impl_->threads.empty()) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  for (auto& c : impl_->cancels) c->cancel();
  for (auto& t : impl_->threads) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
  impl_->threads.clear();
}

std::map<std::string, StoredObject> KubeSource::objects_of(const std::string& plural) const {
  std::lock_guard<std::mutex> g(impl_->mu);
  for (const auto& st : impl_->states) {
    if (st.kind().plural == plural) return st.objects();
  }
  return {};
}

void KubeSource::set_listener(std::function<void()> listener) {
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->listener = std::move(listener);
}

}  // namespace controlplane::kube
