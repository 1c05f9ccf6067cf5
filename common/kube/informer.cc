#include "common/kube/informer.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/admin/log.h"

namespace common::kube {
namespace {

using nlohmann::json;

std::shared_ptr<spdlog::logger> kube_log() {
  static const std::shared_ptr<spdlog::logger> lg = common::log::logger("kube");
  return lg;
}

// One complete list of `kind`, fetched in pages of `page_size` (0 = one request) and returned
// as a single List body (first page's metadata.resourceVersion, all items), or the first
// non-200 response as is.
common::Result<KubeResponse> list_paged(const KubeClient& client, const ResourceKind& kind, const std::string& path,
                                        const std::string& query,
                                        size_t page_size, Cancel& cancel) {
  for (int attempt = 0;; ++attempt) {
    json combined;
    std::string token;
    bool restart = false;
    for (size_t page = 0;; ++page) {
      std::string target = path;
      std::string params = query;
      if (page_size > 0) {
        params += (params.empty() ? "" : "&") + std::string("limit=") + std::to_string(page_size);
        if (!token.empty()) params += "&continue=" + url_encode(token);
      }
      if (!params.empty()) target += "?" + params;
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

}  // namespace

std::string status_message(const KubeResponse& r) {
  json st = json::parse(r.body, nullptr, false);
  if (st.is_object() && st.contains("message") && st["message"].is_string()) {
    return "HTTP " + std::to_string(r.status) + ": " + st["message"].get<std::string>();
  }
  return "HTTP " + std::to_string(r.status);
}

struct Informer::Impl {
  Impl(const KubeClient& c, InformerOptions o, Callbacks cb)
      : client(c),
        opt(std::move(o)),
        callbacks(std::move(cb)),
        state(opt.kind,
              opt.field_selector.empty() ? std::string() : "fieldSelector=" + url_encode(opt.field_selector), opt.ns) {}

  const KubeClient& client;
  const InformerOptions opt;
  const Callbacks callbacks;
  Cancel cancel;
  std::thread thread;

  mutable std::mutex mu;
  std::condition_variable cv;
  WatchState state;
  bool is_synced = false;
  bool stopping = false;

  void run();
  void changed() {
    if (callbacks.changed) callbacks.changed();
  }
  void mark_synced() {
    {
      std::lock_guard<std::mutex> g(mu);
      is_synced = true;
    }
    if (callbacks.synced) callbacks.synced();
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
};

void Informer::Impl::run() {
  const ResourceKind& kind = opt.kind;
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
      auto r = list_paged(client, kind, state.path(), state.query(), opt.list_page_size, cancel);
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
          had = !state.objects().empty();
          if (had) (void)state.apply_list(R"({"metadata":{"resourceVersion":"0"},"items":[]})");
          state.require_list();
        }
        if (had) changed();
        mark_synced();
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
        before = state.changes();
        applied = state.apply_list(r->body);
        after = state.changes();
        count = state.objects().size();
        rv = state.resource_version();
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
      mark_synced();
    }

    std::string target;
    {
      std::lock_guard<std::mutex> g(mu);
      target = state.watch_target(opt.watch_timeout_seconds);
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
        res = state.apply_event(line);
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
    auto r = client.stream_lines(target, on_line, std::chrono::seconds(opt.watch_timeout_seconds + 30), &cancel);
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
      state.require_list();
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

Informer::Informer(const KubeClient& client, InformerOptions options, Callbacks callbacks)
    : impl_(std::make_unique<Impl>(client, std::move(options), std::move(callbacks))) {}

Informer::~Informer() {
  stop();
}

void Informer::start() {
  if (impl_->thread.joinable()) return;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void Informer::stop() {
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->cancel.cancel();
  if (impl_->thread.joinable() && impl_->thread.get_id() != std::this_thread::get_id()) impl_->thread.join();
}

const ResourceKind& Informer::kind() const {
  return impl_->opt.kind;
}

bool Informer::synced() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->is_synced;
}

std::map<std::string, StoredObject> Informer::objects() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->state.objects();
}

std::optional<StoredObject> Informer::get(const std::string& key) const {
  std::lock_guard<std::mutex> g(impl_->mu);
  const auto& objs = impl_->state.objects();
  auto it = objs.find(key);
  if (it == objs.end()) return std::nullopt;
  return it->second;
}

}  // namespace common::kube
