#include "waypoint/config.h"

#include "common/admin/env_settings.h"
#include "common/control_plane_env.h"
#include "common/runtime.h"

namespace waypoint {

using common::make_error;
using common::Result;
namespace env = common::env;

std::string Config::node_id() const {
  return proxy_type + "~" + instance_ip + "~" + pod_name + "." + pod_namespace + "~" + pod_namespace + ".svc." +
         cluster_domain;
}

Result<Config> load_config(const env::EnvLookup& e, size_t cores) {
  Config c;
#define WP_TRY(lhs, expr)                   \
  do {                                      \
    auto r_ = (expr);                       \
    if (!r_) return make_error(r_.error()); \
    lhs = std::move(r_.value());            \
  } while (0)

  c.pod_name = env::get_string(e, "POD_NAME", "");
  c.pod_namespace = env::get_string(e, "POD_NAMESPACE", "");
  c.service_account = env::get_string(e, "SERVICE_ACCOUNT", "");
  c.instance_ip = env::get_string(e, "INSTANCE_IP", "");
  c.node_name = env::get_string(e, "NODE_NAME", "");
  for (auto [name, value] : {std::pair<const char*, const std::string*>{"POD_NAME", &c.pod_name},
                             {"POD_NAMESPACE", &c.pod_namespace},
                             {"SERVICE_ACCOUNT", &c.service_account}}) {
    if (value->empty())
      return make_error(std::string(name) + " is required (the waypoint's identity is built from it)");
  }
  c.trust_domain = env::get_string(e, "TRUST_DOMAIN", c.trust_domain);
  if (c.trust_domain.empty()) return make_error(env::invalid_var("TRUST_DOMAIN", "", "must not be empty"));
  c.cluster_id = env::get_string(e, "CLUSTER_ID", c.cluster_id);
  c.cluster_domain = env::get_string(e, "CLUSTER_DOMAIN", c.cluster_domain);
  // The identity must parse as Istio's form; a namespace with a '/' would not.
  if (!common::Identity::parse(c.identity().uri())) {
    return make_error("POD_NAMESPACE/SERVICE_ACCOUNT/TRUST_DOMAIN do not form a SPIFFE identity: " +
                      c.identity().uri());
  }

  const std::string default_istiod =
      e("KUBERNETES_SERVICE_HOST") ? "https://istiod.istio-system.svc:15012" : "https://localhost:15012";
  c.xds_address = env::control_plane_uri(env::get_string(e, "XDS_ADDRESS", default_istiod));
  if (auto st = env::read_control_plane(e, default_istiod, false, c); !st) return make_error(st.error());

  {
    auto v = e("WAYPOINT_WORKER_THREADS");
    if (!v) v = e("ZTUNNEL_WORKER_THREADS");
    WP_TRY(c.worker_threads,
           common::worker_threads_from_env(v ? std::optional<std::string_view>(*v) : std::nullopt, cores));
  }
  std::optional<std::chrono::milliseconds> deadline;
  WP_TRY(deadline, env::get_duration(e, "CONNECTION_TERMINATION_DEADLINE"));
  if (deadline) c.termination_deadline = *deadline;
  uint64_t u = 0;
  WP_TRY(u, env::get_unsigned_max(e, "POOL_MAX_STREAMS_PER_CONNECTION", c.pool_max_streams_per_connection, 0xffffffff));
  if (u == 0) return make_error(env::invalid_var("POOL_MAX_STREAMS_PER_CONNECTION", "0", "must be positive"));
  c.pool_max_streams_per_connection = static_cast<uint32_t>(u);
  WP_TRY(c.pool_unused_release_timeout,
         env::get_duration(e, "POOL_UNUSED_RELEASE_TIMEOUT", c.pool_unused_release_timeout));
  WP_TRY(u, env::get_unsigned_max(e, "PACKET_MARK", c.packet_mark, 0xffffffff));
  c.packet_mark = static_cast<uint32_t>(u);
  WP_TRY(u, env::get_unsigned_max(e, "HBONE_PORT", c.hbone_port, 65535));
  if (u == 0) return make_error(env::invalid_var("HBONE_PORT", "0", "must be a port number"));
  c.hbone_port = static_cast<uint16_t>(u);
  c.proxy_type = env::get_string(e, "PROXY_TYPE", c.proxy_type);
  if (c.proxy_type != "waypoint" && c.proxy_type != "router") {
    return make_error(env::invalid_var("PROXY_TYPE", c.proxy_type, "expected waypoint or router (ingress gateway)"));
  }
  c.gateway_credential_dir = env::get_string(e, "GATEWAY_CREDENTIAL_DIR", c.gateway_credential_dir);
  WP_TRY(c.ipv6_enabled, env::get_bool(e, "IPV6_ENABLED", c.ipv6_enabled));
  WP_TRY(u, env::get_unsigned_max(e, "MAX_BODY_BYTES", c.max_body_bytes, 1u << 30));
  c.max_body_bytes = static_cast<uint32_t>(u);

  {
    common::LogSettings log;
    WP_TRY(log, common::log_settings_from_env(e));
    c.log_format = log.format;
    c.log_level = std::move(log.level);
  }
  if (!c.ipv6_enabled) {
    c.admin_addr = "127.0.0.1:15000";
    c.stats_addr = "0.0.0.0:15020";
    c.readiness_addr = "0.0.0.0:15021";
  }
  if (auto st = common::admin_addresses_from_env(e, c.admin_addr, c.stats_addr, c.readiness_addr); !st) {
    return make_error(st.error());
  }
#undef WP_TRY
  return c;
}

}  // namespace waypoint
