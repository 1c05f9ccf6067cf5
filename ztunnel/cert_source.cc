#include "ztunnel/cert_source.h"

#include "common/ca/cert_source.h"

namespace ztunnel {

common::Result<std::unique_ptr<common::CertProvider>> make_cert_provider(const Config& cfg,
                                                                         boost::asio::io_context& control) {
  auto s = common::ca::cert_source_settings(cfg);
  s.ca.extra_headers = cfg.ca_headers;
  s.ca.packet_mark = cfg.packet_mark;
  // A node proxy asks for the identities of the workloads it serves; a dedicated proxy only
  // for its own.
  s.impersonate = cfg.proxy_mode == ProxyMode::Shared;
  if (cfg.fake_ca) s.fake_ca_trust_domain = cfg.trust_domain;
  return common::ca::make_cert_provider(std::move(s), control);
}

}  // namespace ztunnel
