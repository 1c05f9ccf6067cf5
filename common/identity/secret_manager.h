// SecretManager: the node's certificate cache, keyed by workload identity (all pods sharing a
// service account share one certificate), fed by a CertProvider.
//
// Lifecycle of an identity: the first subscribe() starts a fetch ("Initializing"); each
// certificate obtained is handed to every watcher ("Available") and a refresh is scheduled at
// half its lifetime (notBefore + (notAfter - notBefore) / 2). A failed fetch is retried with
// exponential backoff (retry_initial doubling up to retry_max) while the current certificate,
// as long as it has not expired, keeps being served; with none valid the state is
// "Unavailable". When the last Subscription for an identity goes away the identity is
// forgotten: its timer is cancelled and a late provider answer is ignored.
//
// Threading: everything (construction, subscribe, current, dump, Subscription release, watcher
// calls, provider callbacks) happens on the control thread that runs `control`. Workers never
// call in here; watchers publish the credentials (or TLS contexts built from them) to workers
// themselves, e.g. as immutable snapshots. Subscriptions may outlive the SecretManager (their
// release then does nothing).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/identity/cert_provider.h"
#include "common/identity/identity.h"
#include "common/identity/tls.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace common {

// One certificate as /config_dump shows it (upstream's field names in comments).
struct CertDetails {
  std::string pem;              // "pem"
  std::string serial_number;    // "serialNumber", uppercase hex
  std::string valid_from;       // "validFrom", RFC 3339
  std::string expiration_time;  // "expirationTime", RFC 3339
};

// One identity's entry in /config_dump "certificates".
struct CertInfo {
  Identity identity;
  std::string state;                   // "Initializing" | "Available" | "Unavailable"
  std::string error;                   // last fetch error ("" after a success)
  std::vector<CertDetails> cert_chain;  // "certChain": leaf first
  std::vector<CertDetails> root_certs;  // "rootCerts"
};

struct SecretManagerOptions {
  std::chrono::milliseconds retry_initial{500};
  std::chrono::milliseconds retry_max{150'000};
};

class SecretManager {
  struct Impl;

 public:
  using Options = SecretManagerOptions;
  using CredentialsPtr = std::shared_ptr<const tls::Credentials>;
  // Called on the control thread with the first certificate, on every rotation, and once soon
  // after subscribe() when a certificate is already available. May subscribe or release.
  using Watcher = std::function<void(CredentialsPtr)>;
  // Called on the control thread with the fetch error when a fetch fails while the identity
  // has no valid certificate (state "Unavailable"), and soon after subscribe() when it is
  // already in that state. Lets a proxy fail connections at once instead of waiting for a
  // certificate that is not coming yet, as upstream does.
  using FailureWatcher = std::function<void(const std::string& error)>;

  // Keeps an identity wanted. Move-only; releasing (or destroying) the last one for an identity
  // forgets it.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& o) noexcept;
    Subscription& operator=(Subscription&& o) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription();

    void release();
    explicit operator bool() const { return id_.has_value(); }

   private:
    friend class SecretManager;
    std::weak_ptr<Impl> impl_;
    std::optional<Identity> id_;
    uint64_t token_ = 0;
  };

  // `control` and `provider` must outlive the SecretManager.
  SecretManager(boost::asio::io_context& control, CertProvider& provider, Options options = {});
  ~SecretManager();
  SecretManager(const SecretManager&) = delete;
  SecretManager& operator=(const SecretManager&) = delete;

  // Starts fetching `id` if it is not known yet and registers `watcher`.
  [[nodiscard]] Subscription subscribe(const Identity& id, Watcher watcher, FailureWatcher on_failure = nullptr);

  // The current unexpired certificate of `id`, or nullptr.
  CredentialsPtr current(const Identity& id) const;

  // Every known identity, sorted by identity, for /config_dump.
  std::vector<CertInfo> dump() const;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace common
