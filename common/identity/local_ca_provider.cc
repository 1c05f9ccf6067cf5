#include "common/identity/local_ca_provider.h"

#include "common/identity/certs.h"

namespace common {

Result<tls::Credentials> LocalCaProvider::issue(const Identity& id) const {
  auto kc = certs::generate_key_and_csr(id);
  if (!kc) return Error{kc.error()};
  auto signed_chain = ca_.sign(kc->csr_pem, id, ttl_);
  if (!signed_chain) return Error{signed_chain.error()};
  // Same acceptance rules as for a remote CA.
  return make_credentials(id, std::move(kc->key_pem), *signed_chain, ca_.roots_pem());
}

void LocalCaProvider::fetch(const Identity& id, Done done, FetchPriority) { done(issue(id)); }

}  // namespace common
