#include "common/identity/cert_provider.h"

#include "common/identity/certs.h"

namespace common {

Result<tls::Credentials> make_credentials(const Identity& id, std::string key_pem,
                                          const std::vector<std::string>& ca_chain,
                                          std::string roots_pem) {
  if (ca_chain.empty()) return make_error("CA returned an empty certificate chain");
  // Each element may itself hold several PEM blocks; flatten to single certificates.
  std::vector<certs::CertSummary> certs;
  for (const std::string& pem : ca_chain) {
    auto part = certs::inspect_pem_chain(pem);
    if (!part) return make_error("CA returned an unparsable certificate: " + part.error());
    for (auto& c : *part) certs.push_back(std::move(c));
  }
  const certs::CertSummary& leaf = certs.front();
  if (leaf.uri_sans.size() != 1 || leaf.uri_sans.front() != id.uri()) {
    std::string got;
    for (const auto& u : leaf.uri_sans) got += (got.empty() ? "" : ", ") + u;
    return make_error("CA returned a certificate for [" + got + "], requested " + id.uri());
  }
  const bool trailing_root = certs.size() > 1 && certs.back().self_signed;
  if (roots_pem.empty()) {
    if (!trailing_root) return make_error("no trust roots: CA chain does not end with a root");
    roots_pem = certs.back().pem;
  }
  std::string chain;
  const size_t n = trailing_root ? certs.size() - 1 : certs.size();
  for (size_t i = 0; i < n; ++i) chain += certs[i].pem;
  return tls::Credentials{id, std::move(chain), std::move(key_pem), std::move(roots_pem),
                          leaf.not_before, leaf.not_after};
}

}  // namespace common
