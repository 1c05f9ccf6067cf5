// LocalCaProvider: CertProvider backed by an in-process LocalCa (single-host meshes, tests,
// the equivalent of upstream's FAKE_CA). Generates a P-256 key and CSR per fetch, signs it and
// answers inline. Threading: control thread, like every CertProvider.
#pragma once

#include <chrono>

#include "common/identity/cert_provider.h"
#include "common/identity/local_ca.h"

namespace common {

class LocalCaProvider : public CertProvider {
 public:
  // `ttl`: requested leaf lifetime (upstream SECRET_TTL, default 24 h).
  explicit LocalCaProvider(LocalCa ca, std::chrono::seconds ttl = std::chrono::hours(24))
      : ca_(std::move(ca)), ttl_(ttl) {}

  using CertProvider::fetch;
  void fetch(const Identity& id, Done done, FetchPriority priority) override;

  // The same work as fetch(), as a plain function (tools and tests that have no event loop).
  Result<tls::Credentials> issue(const Identity& id) const;

  const LocalCa& ca() const { return ca_; }

 private:
  LocalCa ca_;
  std::chrono::seconds ttl_;
};

}  // namespace common
