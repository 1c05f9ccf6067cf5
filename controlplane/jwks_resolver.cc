#include "controlplane/jwks_resolver.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace controlplane {

const char* const kFailedJwks =
    R"({"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid":"jwks-fetch-failed","e":"AQAB","n":")"
    "pRrLM-6nY0ydpcylJAF8Kcp7nFWniOB8DbPJUaVQEjWp5AsfpUCGXkjB-FvG4sMOe85Dd7JTeQ4gNnEr9lI1Mnb92fViLURBHIb69TCM3fKtIMF89gu"
    "MTZ5lMByn7VEAZGnGIYHmHHWQOgxhGTTqm-Ji7TG300fDFndxD0dnrndZJY0B7gkqfxGAR_s6WytDXHs-IzvonXGGDeHX_zuQKHD_WbrRKdxj24-g9n"
    "zL936mTrMjeN1aSbF8aPfA8GY2nNQQ1OGcrCs7pNrTPXxzC3LI75F7-QerMwzzijRnI4FC5vNCCRZGTF1DFc87TtSDumVwsIwg3R6vdOEfQI0xxw"
    R"("}]})";

std::string check_jwks(const std::string& text) {
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return "not a JSON object";
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array() || keys->empty()) return "no 'keys' array with at least one key";
  return "";
}

namespace {
constexpr const char* kIssuerPrefix = "issuer:";
}

JwksResolver::JwksResolver(JwksResolverOptions options) : opt_(std::move(options)) {
  thread_ = std::thread([this] { run(); });
}

JwksResolver::~JwksResolver() { stop(); }

void JwksResolver::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

uint64_t JwksResolver::generation() const {
  std::lock_guard<std::mutex> l(mu_);
  return generation_;
}

void JwksResolver::set_listener(std::function<void()> listener) {
  std::lock_guard<std::mutex> l(mu_);
  listener_ = std::move(listener);
}

JwksResolver::Keys JwksResolver::keys_for_uri(const std::string& uri) { return lookup(uri, false); }

JwksResolver::Keys JwksResolver::keys_for_issuer(const std::string& issuer) {
  return lookup(kIssuerPrefix + issuer, true);
}

JwksResolver::Keys JwksResolver::lookup(const std::string& key, bool discovery) {
  bool added = false;
  Keys out;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto [it, inserted] = entries_.try_emplace(key);
    if (inserted) {
      it->second.discovery = discovery;
      it->second.next_fetch = std::chrono::steady_clock::time_point::min();
      added = true;
    }
    it->second.last_used = std::chrono::steady_clock::now();
    out.jwks = it->second.jwks;
    out.error = it->second.error;
  }
  if (added) cv_.notify_all();
  return out;
}

void JwksResolver::forget_unused_since(std::chrono::steady_clock::time_point t) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.last_used < t) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

common::Result<std::string> JwksResolver::fetch(const std::string& key, bool discovery) const {
  std::string uri = key;
  if (discovery) {
    std::string issuer = key.substr(std::string(kIssuerPrefix).size());
    while (!issuer.empty() && issuer.back() == '/') issuer.pop_back();
    const std::string conf_url = issuer + "/.well-known/openid-configuration";
    auto conf = http_get(conf_url, opt_.fetch);
    if (!conf) return common::make_error("OpenID discovery: " + conf.error());
    const auto doc = nlohmann::json::parse(*conf, nullptr, false);
    auto j = doc.is_object() ? doc.find("jwks_uri") : doc.end();
    if (!doc.is_object() || j == doc.end() || !j->is_string() || j->get<std::string>().empty())
      return common::make_error("OpenID discovery: " + conf_url + ": no 'jwks_uri' string");
    uri = j->get<std::string>();
  }
  auto body = http_get(uri, opt_.fetch);
  if (!body) return body;
  if (auto why = check_jwks(*body); !why.empty()) return common::make_error(uri + ": not a JWKS: " + why);
  return body;
}

void JwksResolver::run() {
  using clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    const auto now = clock::now();
    std::vector<std::pair<std::string, bool>> due;
    auto wake = clock::time_point::max();
    for (const auto& [key, e] : entries_) {
      if (e.next_fetch <= now) {
        due.emplace_back(key, e.discovery);
      } else {
        wake = std::min(wake, e.next_fetch);
      }
    }
    if (due.empty()) {
      if (wake == clock::time_point::max()) {
        cv_.wait(l);
      } else {
        cv_.wait_until(l, wake);
      }
      continue;
    }
    bool changed = false;
    for (const auto& [key, discovery] : due) {
      l.unlock();
      auto got = fetch(key, discovery);
      l.lock();
      if (stopping_) return;
      auto it = entries_.find(key);
      if (it == entries_.end()) continue;
      Entry& e = it->second;
      const auto done = clock::now();
      if (got) {
        if (*got != e.jwks) {
          e.jwks = std::move(*got);
          changed = true;
        }
        e.error.clear();
        e.backoff = std::chrono::milliseconds(0);
        e.next_fetch = done + opt_.refresh_interval;
      } else {
        e.error = got.error();
        e.backoff = e.backoff.count() == 0 ? std::min(opt_.retry_initial, opt_.refresh_interval) : std::min(2 * e.backoff, opt_.refresh_interval);
        e.next_fetch = done + e.backoff;
      }
    }
    if (changed) {
      ++generation_;
      auto listener = listener_;
      l.unlock();
      if (listener) listener();
      l.lock();
    }
  }
}

}  // namespace controlplane
