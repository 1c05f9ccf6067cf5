#include "ztunnel/cert_source.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "common/ca/istio_ca_client.h"
#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"

namespace ztunnel {

common::Result<std::unique_ptr<common::CertProvider>> make_cert_provider(const Config& cfg,
                                                                         boost::asio::io_context& control) {
  const auto ttl = std::chrono::duration_cast<std::chrono::seconds>(cfg.secret_ttl);
  if (cfg.ca_address) {
    common::grpcx::GrpcEndpoint ep;
    ep.address = *cfg.ca_address;
    ep.root_ca = cfg.ca_root_ca;
    ep.alt_hostname = cfg.alt_ca_hostname;
    ep.auth_token = cfg.auth_token;
    ep.cluster_id = cfg.cluster_id;
    ep.extra_headers = cfg.ca_headers;
    ep.packet_mark = cfg.packet_mark;
    common::ca::IstioCaClient::Options opts;
    opts.ttl = ttl;
    // A node proxy asks for the identities of the workloads it serves; a dedicated proxy only
    // for its own.
    opts.impersonate = cfg.proxy_mode == ProxyMode::Shared;
    spdlog::info("certificates from the Istio CA at {} (ttl {}s{})", ep.address, ttl.count(),
                 opts.impersonate ? ", impersonating workloads on this node" : "");
    return std::unique_ptr<common::CertProvider>(
        std::make_unique<common::ca::IstioCaClient>(control, std::move(ep), opts));
  }
  if (cfg.local_ca_dir) {
    auto ca = common::LocalCa::load(*cfg.local_ca_dir);
    if (!ca) return common::make_error("LOCAL_CA_DIR " + *cfg.local_ca_dir + ": " + ca.error());
    spdlog::info("certificates from the local CA in {} (ttl {}s)", *cfg.local_ca_dir, ttl.count());
    return std::unique_ptr<common::CertProvider>(
        std::make_unique<common::LocalCaProvider>(std::move(ca.value()), ttl));
  }
  return common::make_error(
      "no certificate source: set CA_ADDRESS to an Istio CA, or LOCAL_CA_DIR to an Istio cacerts directory "
      "(scripts/make-cacerts.sh creates one)");
}

}  // namespace ztunnel
