// TokenReviewer: authenticates a caller's bearer token (ztunnel's or a waypoint's projected
// service-account token, audience istio-ca) with a Kubernetes TokenReview, as istiod does:
// POST /apis/authentication.k8s.io/v1/tokenreviews {spec: {token, audiences}}; the token is
// accepted when status.authenticated is true, the user is system:serviceaccount:<ns>:<sa>
// and (when the server reports them) status.audiences include one asked for. The node comes
// from the bound token's extra authentication.kubernetes.io/node-name (what istiod's node
// authorizer uses for impersonation).
//
// Results are cached per token (accepted 60 s, refused 5 s; at most 10,000 entries) so a
// reconnecting fleet does not turn into a TokenReview storm. A failed review (API server
// unreachable) refuses the call and is not cached.
//
// Threading: review() is called from gRPC threads concurrently; the cache has its own mutex
// and the HTTP call is made without holding it.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/kube/kube_client.h"
#include "controlplane/tokens.h"

namespace controlplane::kube {

using common::kube::KubeClient;

class TokenReviewer {
 public:
  TokenReviewer(std::shared_ptr<const KubeClient> client, std::vector<std::string> audiences);

  std::optional<Caller> review(std::string_view token);

 private:
  struct Cached {
    std::chrono::steady_clock::time_point expires;
    std::optional<Caller> caller;
  };
  std::shared_ptr<const KubeClient> client_;
  std::vector<std::string> audiences_;
  std::mutex mu_;
  std::map<std::string, Cached> cache_;  // by SHA-256 of the token
};

}  // namespace controlplane::kube
