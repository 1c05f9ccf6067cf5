// ztunnel::Config: every process-level setting, read once from the environment at startup with
// upstream ztunnel's variable names and defaults (facts §8), validated, then immutable.
//
// load_config() takes an EnvLookup so tests inject values; it never calls getenv() itself.
// Every malformed value fails the load with a message naming the variable. to_json() renders
// the `config` section of /config_dump.
// Threading: a plain value; share it as const after load.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/env.h"
#include "common/admin/log.h"
#include "common/result.h"
#include "hbone/socket_options.h"

namespace ztunnel {

// Fixed listener ports inside each pod's network namespace (facts §1.1).
inline constexpr uint16_t kOutboundPort = 15001;
inline constexpr uint16_t kInboundPlaintextPort = 15006;
inline constexpr uint16_t kInboundHbonePort = 15008;
inline constexpr uint16_t kDnsPort = 15053;
inline constexpr uint16_t kAdminPort = 15000;
inline constexpr uint16_t kStatsPort = 15020;
inline constexpr uint16_t kReadinessPort = 15021;

enum class ProxyMode { Shared, Dedicated };

// PROXY_WORKLOAD_INFO=<namespace>/<name>/<service account> (dedicated mode).
struct WorkloadInfo {
  std::string ns, name, service_account;
};

struct Config {
  // -- mode
  ProxyMode proxy_mode = ProxyMode::Shared;
  std::optional<WorkloadInfo> workload_info;  // required in dedicated mode

  // -- control plane and certificates
  std::optional<std::string> local_xds_path;                          // LOCAL_XDS_PATH (file)
  std::optional<std::string> local_xds;                               // LOCAL_XDS (inline YAML)
  std::optional<std::string> xds_address;                             // nullopt = xDS disabled (XDS_ADDRESS="")
  std::optional<std::string> ca_address;                              // nullopt = no remote CA (CA_ADDRESS="")
  std::optional<std::string> local_ca_dir;                            // LOCAL_CA_DIR: Istio cacerts layout (ours)
  bool fake_ca = false;  // FAKE_CA: certificates from an in-memory self-signed CA (local runs)
  std::string xds_root_ca = "./var/run/secrets/istio/root-cert.pem";  // path, "SYSTEM" or PEM
  std::string ca_root_ca = "./var/run/secrets/istio/root-cert.pem";
  std::string auth_token = "./var/run/secrets/tokens/istio-token";  // AUTH_TOKEN
  std::optional<std::string> alt_xds_hostname, alt_ca_hostname;
  std::chrono::milliseconds secret_ttl{std::chrono::hours(24)};
  // Env-var families, sorted by name: XDS_HEADER_<n> / CA_HEADER_<n> (extra gRPC metadata;
  // <n> lower-cased, '_' -> '-'), ISTIO_META_<n> (node metadata strings) and
  // ISTIO_METAJSON_<n> (node metadata parsed as JSON).
  std::vector<std::pair<std::string, std::string>> xds_headers, ca_headers, istio_meta, istio_meta_json;
  std::string trust_domain = "cluster.local";
  std::string cluster_id = "Kubernetes";
  std::string cluster_domain = "cluster.local";
  std::string network;

  // -- identity of this process (downward API)
  std::string node_name, pod_name, pod_namespace, service_account, instance_ip;

  // -- threads and shutdown
  size_t worker_threads = 2;
  std::chrono::milliseconds termination_deadline{5000};  // CONNECTION_TERMINATION_DEADLINE

  // -- HBONE pool and HTTP/2
  uint32_t pool_max_streams_per_connection = 100;
  std::chrono::milliseconds pool_unused_release_timeout{std::chrono::minutes(5)};
  uint32_t http2_stream_window_size = 4 * 1024 * 1024;
  uint32_t http2_connection_window_size = 16 * 1024 * 1024;
  uint32_t http2_frame_size = 1024 * 1024;
  // HBONE_BUFFER_BUDGET: process-wide budget for bytes queued in HBONE streams (overload
  // manager, hbone/overload.h); 0 = unlimited.
  uint64_t hbone_buffer_budget = 256ull << 20;

  // -- sockets
  // SO_MARK for our own sockets (PACKET_MARK): upstream's default per mode, 1337 in shared
  // mode, none (0) in dedicated mode (load_config applies the mode's default). 0 = no mark.
  uint32_t packet_mark = 1337;
  std::string inpod_uds = "/var/run/ztunnel/ztunnel.sock";
  bool inpod_port_reuse = true;
  std::optional<bool> enable_orig_src;  // nullopt = auto-detect IP_TRANSPARENT
  bool ipv6_enabled = true;
  bool keepalive_enabled = true;
  std::chrono::milliseconds keepalive_time{std::chrono::seconds(180)};
  std::chrono::milliseconds keepalive_interval{std::chrono::seconds(180)};
  uint32_t keepalive_retries = 9;
  bool user_timeout_enabled = false;
  // The five fields above as applied to every proxied socket (connects and accepts).
  hbone::sockopt::SocketConfig socket_config() const {
    return {keepalive_enabled, keepalive_time, keepalive_interval, keepalive_retries, user_timeout_enabled};
  }

  // -- behaviour
  bool enable_response_baggage = true;
  bool authz_policy_info_logging = false;
  bool dns_proxy = true;  // ISTIO_META_DNS_CAPTURE / DNS_CAPTURE != "false"
  // DNS proxy listener inside the pod (proxy metadata DNS_PROXY_ADDR); "localhost" = 127.0.0.1.
  std::string dns_proxy_addr = "localhost:15053";
  // PREFERED_SERVICE_NAMESPACE (upstream's spelling): among services sharing a hostname, the
  // one in this namespace wins after the client's own.
  std::string prefered_service_namespace;
  // XDS_ON_DEMAND: Address resources fetched by address as connections need them
  // (ztunnel/state/on_demand.h); refused together with the DNS proxy, as upstream.
  bool xds_on_demand = false;
  // CRL_PATH: PEM file of CRLs; peers whose certificate a CRL revokes are refused (both
  // directions) and counted in istio_crl_policy_rejections_total. Re-read when it changes.
  std::optional<std::string> crl_path;
  // ProxyConfig proxyMetadata (mesh file + PROXY_CONFIG); ISTIO_META_* variables win over it.
  std::map<std::string, std::string> proxy_config_metadata;

  // -- logging
  common::log::Format log_format = common::log::Format::Plain;
  std::string log_level = "info";  // RUST_LOG filter

  // -- operational listeners (testing knobs; admin must stay on loopback)
  std::string admin_addr = "localhost:15000";  // 127.0.0.1 and ::1 (IPV6_ENABLED=false: v4 only)
  std::string stats_addr = "[::]:15020";
  std::string readiness_addr = "[::]:15021";

  // The `config` section of /config_dump (no secrets; inline LOCAL_XDS summarised).
  nlohmann::json to_json() const;
};

// Upstream's mesh config path (relative to the working directory, "/" in the image).
inline constexpr const char* kMeshConfigPath = "./etc/istio/config/mesh";

// Reads and validates the configuration. `cores` feeds the ZTUNNEL_WORKER_THREADS rule;
// ZTUNNEL_CPU_LIMIT in the environment overrides it. The mesh config file at
// `mesh_config_path` (absent = none) and PROXY_CONFIG give the ProxyConfig (proxy_config.h).
common::Result<Config> load_config(const common::env::EnvLookup& env, size_t cores,
                                   const std::string& mesh_config_path = "");
// Same with the real environment and available_cores(), plus apply_env_families(environ).
common::Result<Config> load_config_from_process();
// Fills the env-var families of `c` from every (name, value) of an environment.
void apply_env_families(Config& c, const std::vector<std::pair<std::string, std::string>>& vars);

// TERMINATION_GRACE_PERIOD_SECONDS rule: g > 10 -> g - 5, else g - 1; never below 1 s.
std::chrono::milliseconds deadline_from_grace_period(uint64_t grace_seconds);

const char* to_string(ProxyMode m);

}  // namespace ztunnel
