// JwksResolver: the JSON Web Key Sets of RequestAuthentication jwtRules whose keys live at a
// URL, fetched by the control plane itself and inlined into the waypoint's jwt_authn config
// (waypoint_authn.h), as istiod's JwksResolver does:
//   - keys_for_uri(jwksUri) / keys_for_issuer(issuer) never block: they return the last good
//     JWKS, or nothing when none was fetched yet, and register the URL for the background
//     thread. keys_for_issuer uses OpenID discovery (<issuer>/.well-known/openid-configuration,
//     its `jwks_uri`).
//   - The thread fetches a new URL at once, then every refresh_interval (istiod: 20 min); a
//     failed fetch is retried after retry_initial, doubling up to refresh_interval. A failure
//     keeps the last good keys. A body that is not a JWKS (no non-empty `keys` array) is a
//     failure.
//   - When a URL's keys first arrive or change, generation() increases and the listener runs
//     (on the resolver thread): the server then recompiles the waypoints.
//   - forget_unused_since(t): the server calls it after each waypoint compile with the time the
//     compile started, so URLs of rules that are gone stop being fetched.
// kFailedJwks is what the compiler inlines while a URL has no keys yet: a key whose private
// half nobody has, so every token is rejected (401) instead of let through.
//
// Threading: every public method is thread-safe. One background thread, started by the
// constructor and joined by stop()/the destructor. The listener must not call stop().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "controlplane/http_fetch.h"

namespace controlplane {

// An RSA public key generated for this purpose and whose private key was thrown away.
extern const char* const kFailedJwks;

struct JwksResolverOptions {
  std::chrono::milliseconds refresh_interval{std::chrono::minutes(20)};
  std::chrono::milliseconds retry_initial{std::chrono::seconds(1)};
  HttpFetchOptions fetch;  // timeout 5 s, 1 MiB, extra CA
};

// Empty when `text` is a usable JWKS document (an object with a non-empty "keys" array); else why not.
std::string check_jwks(const std::string& text);

class JwksResolver {
 public:
  explicit JwksResolver(JwksResolverOptions options);
  ~JwksResolver();
  JwksResolver(const JwksResolver&) = delete;
  JwksResolver& operator=(const JwksResolver&) = delete;

  struct Keys {
    std::string jwks;   // the last good JWKS; empty when none yet
    std::string error;  // the last fetch's failure ("" after a success or before any attempt)
  };
  Keys keys_for_uri(const std::string& uri);
  Keys keys_for_issuer(const std::string& issuer);

  // Drops every URL not asked for since `t`.
  void forget_unused_since(std::chrono::steady_clock::time_point t);

  uint64_t generation() const;
  void set_listener(std::function<void()> listener);
  void stop();

 private:
  struct Entry {
    bool discovery = false;  // the key is an issuer: discover its jwks_uri first
    std::string jwks, error;
    std::chrono::steady_clock::time_point next_fetch, last_used;
    std::chrono::milliseconds backoff{0};
  };
  Keys lookup(const std::string& key, bool discovery);
  void run();
  // One fetch of `key` (no lock held): the JWKS text or an error.
  common::Result<std::string> fetch(const std::string& key, bool discovery) const;

  const JwksResolverOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;  // jwksUri, or "issuer:" + issuer
  uint64_t generation_ = 0;
  bool stopping_ = false;
  std::function<void()> listener_;
  std::thread thread_;
};

}  // namespace controlplane
