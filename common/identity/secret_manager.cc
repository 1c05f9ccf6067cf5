#include "common/identity/secret_manager.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>

#include "common/identity/certs.h"

namespace common {

namespace {

using SysClock = std::chrono::system_clock;

// One identity's certificate state. Owned by Impl::entries; callbacks hold weak_ptrs so a
// forgotten identity silently drops late timer or provider completions.
struct Entry {
  Entry(boost::asio::io_context& io, Identity identity) : id(std::move(identity)), timer(io) {}

  Identity id;
  SecretManager::CredentialsPtr creds;  // latest certificate obtained (may have expired)
  std::map<uint64_t, SecretManager::Watcher> watchers;
  std::map<uint64_t, SecretManager::FailureWatcher> failure_watchers;
  boost::asio::steady_timer timer;  // next refresh or retry
  std::chrono::milliseconds backoff{0};
  bool fetching = false;
  std::string last_error;
};

bool valid_now(const SecretManager::CredentialsPtr& c) {
  return c != nullptr && SysClock::now() < c->not_after;
}

std::vector<CertDetails> details_of(const std::string& pem_bundle) {
  std::vector<CertDetails> out;
  auto certs = certs::inspect_pem_chain(pem_bundle);
  if (!certs) return out;
  for (auto& c : *certs) {
    out.push_back(CertDetails{std::move(c.pem), std::move(c.serial_hex),
                              certs::to_rfc3339(c.not_before), certs::to_rfc3339(c.not_after)});
  }
  return out;
}

}  // namespace

struct SecretManager::Impl : std::enable_shared_from_this<SecretManager::Impl> {
  Impl(boost::asio::io_context& io, CertProvider& provider, Options opts)
      : io(io), provider(provider), opts(opts) {}

  boost::asio::io_context& io;
  CertProvider& provider;
  Options opts;
  std::map<Identity, std::shared_ptr<Entry>> entries;
  uint64_t next_token = 1;

  void start_fetch(const std::shared_ptr<Entry>& e) {
    if (e->fetching) return;
    e->fetching = true;
    std::weak_ptr<Impl> weak_self = weak_from_this();
    std::weak_ptr<Entry> weak_entry = e;
    // `done` may run inline; everything it touches is re-checked through the weak pointers.
    // A rotation (a valid certificate is serving) yields to workloads that have none yet.
    const auto priority = valid_now(e->creds) ? FetchPriority::Background : FetchPriority::Warmup;
    provider.fetch(e->id, [weak_self, weak_entry](Result<tls::Credentials> r) {
      auto self = weak_self.lock();
      auto entry = weak_entry.lock();
      if (!self || !entry) return;
      self->on_fetched(entry, std::move(r));
    }, priority);
  }

  void on_fetched(const std::shared_ptr<Entry>& e, Result<tls::Credentials> r) {
    e->fetching = false;
    if (!r) {
      e->last_error = r.error();
      e->backoff = e->backoff.count() == 0 ? opts.retry_initial
                                           : std::min(e->backoff * 2, opts.retry_max);
      spdlog::warn("certificate fetch for {} failed (retry in {} ms, current certificate {}): {}",
                   e->id.uri(), e->backoff.count(), valid_now(e->creds) ? "kept" : "none",
                   e->last_error);
      schedule(e, e->backoff);
      if (!valid_now(e->creds)) notify_failure(e);
      return;
    }
    e->last_error.clear();
    e->backoff = std::chrono::milliseconds(0);
    e->creds = std::make_shared<const tls::Credentials>(std::move(r).value());
    const auto& c = *e->creds;
    const auto refresh_at = c.not_before + (c.not_after - c.not_before) / 2;
    auto delay =
        std::chrono::duration_cast<std::chrono::milliseconds>(refresh_at - SysClock::now());
    // A certificate already past half life (clock skew, long CA backdate) is refreshed soon,
    // but not in a tight loop.
    if (delay.count() <= 0) delay = opts.retry_initial;
    spdlog::info("certificate for {} obtained, expires {}, refresh in {} ms", e->id.uri(),
                 certs::to_rfc3339(c.not_after), delay.count());
    schedule(e, delay);
    notify(e);
  }

  void schedule(const std::shared_ptr<Entry>& e, std::chrono::milliseconds delay) {
    e->timer.expires_after(delay);
    std::weak_ptr<Impl> weak_self = weak_from_this();
    std::weak_ptr<Entry> weak_entry = e;
    e->timer.async_wait([weak_self, weak_entry](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: identity forgotten or rescheduled
      auto self = weak_self.lock();
      auto entry = weak_entry.lock();
      if (self && entry) self->start_fetch(entry);
    });
  }

  // Calls every watcher registered now; ones released by an earlier watcher are skipped.
  void notify(const std::shared_ptr<Entry>& e) {
    std::vector<uint64_t> tokens;
    tokens.reserve(e->watchers.size());
    for (const auto& [token, w] : e->watchers) tokens.push_back(token);
    const CredentialsPtr creds = e->creds;
    for (uint64_t token : tokens) {
      auto it = e->watchers.find(token);
      if (it == e->watchers.end()) continue;
      Watcher w = it->second;  // copy: the watcher may release itself while running
      w(creds);
    }
  }

  // Same contract as notify(), for the failure watchers and the entry's last error.
  void notify_failure(const std::shared_ptr<Entry>& e) {
    std::vector<uint64_t> tokens;
    tokens.reserve(e->failure_watchers.size());
    for (const auto& [token, w] : e->failure_watchers) tokens.push_back(token);
    const std::string error = e->last_error;  // copy: a watcher may drop the entry
    for (uint64_t token : tokens) {
      auto it = e->failure_watchers.find(token);
      if (it == e->failure_watchers.end()) continue;
      FailureWatcher w = it->second;
      w(error);
    }
  }

  void unsubscribe(const Identity& id, uint64_t token) {
    auto it = entries.find(id);
    if (it == entries.end()) return;
    it->second->watchers.erase(token);
    it->second->failure_watchers.erase(token);
    if (it->second->watchers.empty()) {
      spdlog::debug("forgetting certificate for {}", id.uri());
      it->second->timer.cancel();
      entries.erase(it);
    }
  }
};

SecretManager::Subscription::Subscription(Subscription&& o) noexcept
    : impl_(std::move(o.impl_)), id_(std::move(o.id_)), token_(o.token_) {
  o.id_.reset();
}

SecretManager::Subscription& SecretManager::Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    release();
    impl_ = std::move(o.impl_);
    id_ = std::move(o.id_);
    token_ = o.token_;
    o.id_.reset();
  }
  return *this;
}

SecretManager::Subscription::~Subscription() { release(); }

void SecretManager::Subscription::release() {
  if (!id_) return;
  if (auto impl = impl_.lock()) impl->unsubscribe(*id_, token_);
  id_.reset();
  impl_.reset();
}

SecretManager::SecretManager(boost::asio::io_context& control, CertProvider& provider,
                             Options options)
    : impl_(std::make_shared<Impl>(control, provider, options)) {}

SecretManager::~SecretManager() = default;

SecretManager::Subscription SecretManager::subscribe(const Identity& id, Watcher watcher, FailureWatcher on_failure) {
  auto& slot = impl_->entries[id];
  const bool is_new = slot == nullptr;
  if (is_new) slot = std::make_shared<Entry>(impl_->io, id);
  std::shared_ptr<Entry> entry = slot;
  const uint64_t token = impl_->next_token++;
  entry->watchers.emplace(token, std::move(watcher));
  if (on_failure) entry->failure_watchers.emplace(token, std::move(on_failure));

  Subscription sub;
  sub.impl_ = impl_;
  sub.id_ = id;
  sub.token_ = token;

  if (is_new) {
    // Deferred so that no watcher ever runs inside subscribe(), even with an inline provider.
    std::weak_ptr<Impl> weak_self = impl_;
    std::weak_ptr<Entry> weak_entry = entry;
    boost::asio::post(impl_->io, [weak_self, weak_entry] {
      auto self = weak_self.lock();
      auto e = weak_entry.lock();
      if (self && e) self->start_fetch(e);
    });
  } else if (valid_now(entry->creds)) {
    // Late subscriber: hand it the current certificate, but not re-entrantly from subscribe().
    std::weak_ptr<Entry> weak_entry = entry;
    boost::asio::post(impl_->io, [weak_entry, token] {
      auto e = weak_entry.lock();
      if (!e || !valid_now(e->creds)) return;
      auto it = e->watchers.find(token);
      if (it == e->watchers.end()) return;
      Watcher w = it->second;
      w(e->creds);
    });
  } else if (!entry->last_error.empty()) {
    // Late subscriber to an identity whose fetches are failing: tell it, deferred likewise.
    std::weak_ptr<Entry> weak_entry = entry;
    boost::asio::post(impl_->io, [weak_entry, token] {
      auto e = weak_entry.lock();
      if (!e || valid_now(e->creds) || e->last_error.empty()) return;
      auto it = e->failure_watchers.find(token);
      if (it == e->failure_watchers.end()) return;
      FailureWatcher w = it->second;
      w(e->last_error);
    });
  }
  return sub;
}

SecretManager::CredentialsPtr SecretManager::current(const Identity& id) const {
  auto it = impl_->entries.find(id);
  if (it == impl_->entries.end() || !valid_now(it->second->creds)) return nullptr;
  return it->second->creds;
}

std::vector<CertInfo> SecretManager::dump() const {
  std::vector<CertInfo> out;
  out.reserve(impl_->entries.size());
  for (const auto& [id, e] : impl_->entries) {
    CertInfo info{id, "", e->last_error, {}, {}};
    if (valid_now(e->creds)) {
      info.state = "Available";
    } else if (e->creds == nullptr && e->last_error.empty()) {
      info.state = "Initializing";
    } else {
      info.state = "Unavailable";
    }
    if (e->creds) {
      info.cert_chain = details_of(e->creds->cert_chain_pem);
      info.root_certs = details_of(e->creds->roots_pem);
    }
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace common
