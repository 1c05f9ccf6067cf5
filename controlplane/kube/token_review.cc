#include "controlplane/kube/token_review.h"

#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/admin/log.h"

namespace controlplane::kube {
namespace {

using nlohmann::json;

constexpr size_t kMaxCached = 10000;
constexpr auto kAcceptedTtl = std::chrono::seconds(60);
constexpr auto kRefusedTtl = std::chrono::seconds(5);

std::string digest(std::string_view token) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), md);
  return std::string(reinterpret_cast<const char*>(md), sizeof md);
}

std::shared_ptr<spdlog::logger> tr_log() {
  static const std::shared_ptr<spdlog::logger> lg = common::log::logger("tokenreview");
  return lg;
}

}  // namespace

TokenReviewer::TokenReviewer(std::shared_ptr<const KubeClient> client, std::vector<std::string> audiences)
    : client_(std::move(client)), audiences_(std::move(audiences)) {}

std::optional<Caller> TokenReviewer::review(std::string_view token) {
  const std::string key = digest(token);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = cache_.find(key); it != cache_.end() && it->second.expires > now) return it->second.caller;
  }
  json req = {{"apiVersion", "authentication.k8s.io/v1"},
              {"kind", "TokenReview"},
              {"spec", {{"token", std::string(token)}, {"audiences", audiences_}}}};
  auto r = client_->request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", req.dump(), "application/json",
                            std::chrono::seconds(10));
  if (!r || (r->status != 200 && r->status != 201)) {
    tr_log()->warn("TokenReview failed: {}", r ? "HTTP " + std::to_string(r->status) : r.error());
    return std::nullopt;
  }
  std::optional<Caller> caller;
  std::string why;
  json resp = json::parse(r->body, nullptr, false);
  const json status = resp.is_object() && resp.contains("status") ? resp["status"] : json::object();
  if (!status.is_object() || !status.value("authenticated", false)) {
    why = status.is_object() ? status.value("error", std::string("not authenticated")) : "no status";
  } else {
    const json user = status.value("user", json::object());
    const std::string username = user.is_object() ? user.value("username", std::string()) : std::string();
    constexpr std::string_view kPrefix = "system:serviceaccount:";
    const auto colon = username.find(':', kPrefix.size());
    bool audience_ok = true;
    if (status.contains("audiences") && status["audiences"].is_array() && !audiences_.empty()) {
      audience_ok = false;
      for (const auto& a : status["audiences"])
        for (const auto& want : audiences_)
          if (a.is_string() && a.get<std::string>() == want) audience_ok = true;
    }
    if (username.rfind(kPrefix, 0) != 0 || colon == std::string::npos || colon + 1 >= username.size()) {
      why = "user '" + username + "' is not a service account";
    } else if (!audience_ok) {
      why = "token audiences do not include the ones asked for";
    } else {
      Caller c;
      c.ns = username.substr(kPrefix.size(), colon - kPrefix.size());
      c.service_account = username.substr(colon + 1);
      const json extra = user.value("extra", json::object());
      if (extra.is_object() && extra.contains("authentication.kubernetes.io/node-name")) {
        const json& n = extra["authentication.kubernetes.io/node-name"];
        if (n.is_array() && !n.empty() && n[0].is_string()) c.node = n[0].get<std::string>();
      }
      caller = std::move(c);
    }
  }
  if (!caller) tr_log()->info("TokenReview refused a token: {}", why);
  std::lock_guard<std::mutex> l(mu_);
  if (cache_.size() >= kMaxCached) cache_.clear();
  cache_[key] = Cached{now + (caller ? kAcceptedTtl : kRefusedTtl), caller};
  return caller;
}

}  // namespace controlplane::kube
