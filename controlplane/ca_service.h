// The control plane's Istio CA service (istio.v1.auth.IstioCertificateService/CreateCertificate),
// signing with a LocalCa over a `cacerts` directory. It does what istiod does for ztunnel:
// - the bearer token must be known (else UNAUTHENTICATED);
// - the CSR must verify and name exactly one SPIFFE URI SAN (else INVALID_ARGUMENT);
// - without "ImpersonatedIdentity" metadata the SAN must be the caller's own identity; with it,
//   the caller must be a trusted node account and a pod with that identity must run on the
//   caller's node (else PERMISSION_DENIED), and the SAN must equal the impersonated identity;
// - validity_duration <= 0 means the default TTL; longer than the maximum is capped.
// The response is the PEM chain, leaf first, root last.
//
// Threading: the returned service is called on gRPC's threads; everything it holds is immutable
// or thread-safe, and `identity_on_node` must be safe to call concurrently.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/identity/identity.h"
#include "common/identity/local_ca.h"
#include "controlplane/tokens.h"

namespace grpc {
class Service;
}  // namespace grpc

namespace controlplane {

struct CaServiceOptions {
  std::string trust_domain = "cluster.local";
  TrustedNodeAccounts trusted{{"istio-system/ztunnel"}};
  std::chrono::seconds default_ttl{std::chrono::hours(24)};
  std::chrono::seconds max_ttl{std::chrono::hours(24 * 90)};
};

// Whether a pod (or WorkloadEntry) running as `id` is scheduled on `node`, in the current state.
using IdentityOnNode = std::function<bool(const std::string& node, const common::Identity& id)>;

std::unique_ptr<grpc::Service> make_ca_service(common::LocalCa ca, std::shared_ptr<const TokenAuthenticator> tokens,
                                               CaServiceOptions options, IdentityOnNode identity_on_node);

}  // namespace controlplane
