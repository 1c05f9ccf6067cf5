// Caller authentication for the control plane's gRPC services (delta ADS and the Istio CA):
// a static token list standing in for Kubernetes TokenReview, plus istiod's node-authorization
// rule for certificate impersonation.
//
// Tokens file (YAML; `--tokens FILE`):
//   tokens:
//   - token: "3f9c..."                       # the bearer token, as sent in `authorization`
//     serviceAccount: istio-system/ztunnel   # the caller's own Kubernetes identity (ns/name)
//     node: node-a                           # the node the caller runs on (node agents only)
// Unknown keys, a missing token or serviceAccount, or a repeated token fail the load naming
// the entry. Tokens are compared in constant time.
//
// Impersonation (istiod with CA_TRUSTED_NODE_ACCOUNTS): a caller whose serviceAccount is in
// the trusted list may ask for another identity, and only for one that a pod on the caller's
// own node runs as. Without impersonation a caller gets only its own identity.
//
// Threading: immutable after load; authenticate() is const and safe from any gRPC thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace controlplane {

struct Caller {
  std::string ns;               // from serviceAccount "ns/name"
  std::string service_account;
  std::string node;             // "" when the token names no node
};

class TokenAuthenticator {
 public:
  static common::Result<TokenAuthenticator> parse(std::string_view yaml);
  static common::Result<TokenAuthenticator> load(const std::string& path);

  // `authorization` is the raw metadata value ("Bearer <token>"). nullopt = unknown token or
  // malformed header (the caller answers UNAUTHENTICATED).
  std::optional<Caller> authenticate(std::string_view authorization) const;

  size_t size() const { return entries_.size(); }

  // Tokens not in the list are passed (without "Bearer ") to `reviewer` when one is set, e.g.
  // a Kubernetes TokenReview (kube/token_review.h). Set before the authenticator is shared;
  // the reviewer must be thread-safe.
  using Reviewer = std::function<std::optional<Caller>(std::string_view token)>;
  void set_reviewer(Reviewer reviewer) { reviewer_ = std::move(reviewer); }
  bool has_reviewer() const { return static_cast<bool>(reviewer_); }

 private:
  struct Entry {
    std::string token;
    Caller caller;
  };
  std::vector<Entry> entries_;
  Reviewer reviewer_;
};

// "istio-system/ztunnel" entries of CA_TRUSTED_NODE_ACCOUNTS.
struct TrustedNodeAccounts {
  std::vector<std::string> accounts;  // "ns/sa"
  bool contains(const Caller& c) const;
};

}  // namespace controlplane
