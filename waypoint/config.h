// waypoint::Config: the process settings of one waypoint pod, read once from the environment at
// startup with the names an Istio waypoint Deployment sets (downward API: POD_NAME,
// POD_NAMESPACE, SERVICE_ACCOUNT, INSTANCE_IP; TRUST_DOMAIN) and ztunnel's names for the
// control plane (XDS_ADDRESS, XDS_ROOT_CA, CA_ADDRESS, CA_ROOT_CA, AUTH_TOKEN, LOCAL_CA_DIR).
// Every malformed value fails the load with a message naming the variable.
// Threading: a plain value; shared as const after load.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/identity/identity.h"
#include "common/admin/log.h"
#include "common/result.h"

namespace waypoint {

inline constexpr uint16_t kHbonePort = 15008;

struct Config {
  // -- who we are
  std::string pod_name, pod_namespace, service_account, instance_ip, node_name;
  std::string trust_domain = "cluster.local";
  std::string cluster_id = "Kubernetes";
  std::string cluster_domain = "cluster.local";
  // PROXY_TYPE: "waypoint" (default: HBONE on 15008, Istio's waypoint) or "router" (the ingress
  // gateway role, docs/ingress.md: HTTP/HTTPS listeners from LDS, no HBONE listener). The first
  // part of the xDS node id.
  std::string proxy_type = "waypoint";
  bool gateway() const { return proxy_type == "router"; }
  // GATEWAY_CREDENTIAL_DIR: where the gateway's Kubernetes TLS Secrets are mounted, one
  // directory per Secret (`<dir>/<credentialName>/tls.crt`, `tls.key`).
  std::string gateway_credential_dir = "/etc/istio/gateway-credentials";

  // -- control plane and certificates
  std::optional<std::string> xds_address;  // nullopt = no xDS (XDS_ADDRESS="")
  std::optional<std::string> ca_address;   // nullopt = no remote CA
  std::optional<std::string> local_ca_dir;
  std::string xds_root_ca = "./var/run/secrets/istio/root-cert.pem";
  std::string ca_root_ca = "./var/run/secrets/istio/root-cert.pem";
  std::string auth_token = "./var/run/secrets/tokens/istio-token";
  std::optional<std::string> alt_xds_hostname, alt_ca_hostname;
  std::chrono::milliseconds secret_ttl{std::chrono::hours(24)};

  // -- data path
  size_t worker_threads = 2;
  std::chrono::milliseconds termination_deadline{5000};
  uint32_t pool_max_streams_per_connection = 100;
  std::chrono::milliseconds pool_unused_release_timeout{std::chrono::minutes(5)};
  uint32_t packet_mark = 0;          // the waypoint runs outside capture (dataplane-mode none)
  uint16_t hbone_port = kHbonePort;  // HBONE_PORT: tests run several on one host
  bool ipv6_enabled = true;
  // MAX_BODY_BYTES: the request buffer limit (Envoy's per_connection_buffer_limit_bytes).
  // Bodies stream; a request body is kept for retries and mirrors only up to this size.
  uint32_t max_body_bytes = 1u << 20;

  // -- logging and operations
  common::log::Format log_format = common::log::Format::Plain;
  std::string log_level = "info";
  std::string admin_addr = "localhost:15000";
  std::string stats_addr = "[::]:15020";
  std::string readiness_addr = "[::]:15021";

  // spiffe://<TRUST_DOMAIN>/ns/<POD_NAMESPACE>/sa/<SERVICE_ACCOUNT>
  common::Identity identity() const { return common::Identity(trust_domain, pod_namespace, service_account); }
  // Istio's node id: <proxy_type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local
  std::string node_id() const;
};

common::Result<Config> load_config(const common::env::EnvLookup& env, size_t cores);

}  // namespace waypoint
