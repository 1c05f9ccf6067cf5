// make_cert_provider(): where a proxy's certificates come from, for ztunnel and the waypoint
// alike — the Istio CA over gRPC (CA_ADDRESS), else a local CA directory in Istio's cacerts
// layout (LOCAL_CA_DIR), else, when asked (ztunnel's FAKE_CA), a throwaway in-memory CA; with
// none of them, an error naming the settings. Each proxy fills CertSourceSettings from its own
// Config (cert_source_settings() copies the fields both Configs share by name).
// Threading: call on the control thread; the provider is used there (CertProvider contract);
// `control` must outlive the provider.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/grpc/channel.h"
#include "common/identity/cert_provider.h"
#include "common/result.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace common::ca {

struct CertSourceSettings {
  std::optional<std::string> ca_address;            // CA_ADDRESS; nullopt = no remote CA
  std::optional<std::string> local_ca_dir;          // LOCAL_CA_DIR
  grpcx::GrpcEndpoint ca;                           // how to reach ca_address (its `address` is set from it)
  bool impersonate = false;                         // ask for the identities of workloads on this node
  std::optional<std::string> fake_ca_trust_domain;  // FAKE_CA: an in-memory CA for this domain
  std::chrono::seconds ttl{std::chrono::hours(24)};
};

// The settings both proxies' Configs name alike: ca_address, local_ca_dir, ca_root_ca,
// alt_ca_hostname, auth_token, cluster_id, secret_ttl.
template <typename Config>
CertSourceSettings cert_source_settings(const Config& cfg) {
  CertSourceSettings s;
  s.ca_address = cfg.ca_address;
  s.local_ca_dir = cfg.local_ca_dir;
  s.ca.root_ca = cfg.ca_root_ca;
  s.ca.alt_hostname = cfg.alt_ca_hostname;
  s.ca.auth_token = cfg.auth_token;
  s.ca.cluster_id = cfg.cluster_id;
  s.ttl = std::chrono::duration_cast<std::chrono::seconds>(cfg.secret_ttl);
  return s;
}

Result<std::unique_ptr<CertProvider>> make_cert_provider(CertSourceSettings settings, boost::asio::io_context& control);

}  // namespace common::ca
