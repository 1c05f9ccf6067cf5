// CertProvider: where workload certificates come from. Two implementations: LocalCaProvider
// (signs in-process with a LocalCa; common/identity/local_ca_provider.h) and the Istio CA gRPC client
// (CreateCertificate with impersonation). SecretManager is the only caller.
//
// Threading: fetch() is called on the control thread and `done` must be invoked on the control
// thread, exactly once, possibly inline (before fetch() returns). An implementation that works
// on other threads (gRPC) posts its result back to the control io_context.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/identity/identity.h"
#include "common/result.h"
#include "common/identity/tls.h"

namespace common {

// Upstream's order of certificate requests when they queue (at most 8 in flight): one a
// connection is waiting on, then a new workload's first certificate, then rotations.
enum class FetchPriority { RealTime = 0, Warmup = 1, Background = 2 };

class CertProvider {
 public:
  using Done = std::function<void(Result<tls::Credentials>)>;

  virtual ~CertProvider() = default;

  // Obtains a fresh certificate for `id`: a new key every time (keys are never reused), a leaf
  // that carries exactly `id` (an implementation must reject a CA answer naming anyone else),
  // cert_chain_pem = leaf + intermediates, roots_pem = the trust anchors, not_before/not_after
  // of the leaf. Must not call back into SecretManager other than through `done`. A provider
  // that queues requests starts higher priorities first; one that answers at once ignores it.
  virtual void fetch(const Identity& id, Done done, FetchPriority priority) = 0;
  void fetch(const Identity& id, Done done) { fetch(id, std::move(done), FetchPriority::RealTime); }
};

// Turns a CA answer into Credentials, applying the acceptance rules every provider shares:
// `ca_chain` is leaf first, root last (IstioCertificateResponse.cert_chain order); the leaf
// must carry exactly one URI SAN equal to id.uri(); a trailing self-signed root is dropped
// from cert_chain_pem (peers have it). `roots_pem` empty: the trailing root of `ca_chain` is
// used as the trust anchor (an error if there is none).
Result<tls::Credentials> make_credentials(const Identity& id, std::string key_pem,
                                          const std::vector<std::string>& ca_chain,
                                          std::string roots_pem);

}  // namespace common
