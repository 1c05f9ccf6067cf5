#include "common/ca/cert_source.h"

#include <spdlog/spdlog.h>

#include "common/ca/istio_ca_client.h"
#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"

namespace common::ca {

Result<std::unique_ptr<CertProvider>> make_cert_provider(CertSourceSettings s, boost::asio::io_context& control) {
  const auto ttl = s.ttl;
  if (s.ca_address) {
    s.ca.address = *s.ca_address;
    IstioCaClient::Options opts;
    opts.ttl = ttl;
    opts.impersonate = s.impersonate;
    spdlog::info("certificates from the Istio CA at {} (ttl {}s{})", s.ca.address, ttl.count(),
                 opts.impersonate ? ", impersonating workloads on this node" : "");
    return std::unique_ptr<CertProvider>(std::make_unique<IstioCaClient>(control, std::move(s.ca), opts));
  }
  if (s.local_ca_dir) {
    auto ca = LocalCa::load(*s.local_ca_dir);
    if (!ca) return make_error("LOCAL_CA_DIR " + *s.local_ca_dir + ": " + ca.error());
    spdlog::info("certificates from the local CA in {} (ttl {}s)", *s.local_ca_dir, ttl.count());
    return std::unique_ptr<CertProvider>(std::make_unique<LocalCaProvider>(std::move(ca.value()), ttl));
  }
  if (s.fake_ca_trust_domain) {
    // Upstream's local-run mode: no CA anywhere, certificates from a throwaway hierarchy.
    auto ca = LocalCa::generate(*s.fake_ca_trust_domain);
    if (!ca) return make_error("FAKE_CA: " + ca.error());
    spdlog::info("FAKE_CA: certificates from an in-memory self-signed CA (ttl {}s)", ttl.count());
    return std::unique_ptr<CertProvider>(std::make_unique<LocalCaProvider>(std::move(ca.value()), ttl));
  }
  return make_error(
      "no certificate source: set CA_ADDRESS to an Istio CA, or LOCAL_CA_DIR to an Istio cacerts directory "
      "(scripts/make-cacerts.sh creates one)");
}

}  // namespace common::ca
