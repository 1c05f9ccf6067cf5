#include "ztunnel/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <limits>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "common/admin/env_settings.h"
#include "common/admin/http_admin.h"
#include "common/control_plane_env.h"
#include "common/runtime.h"
#include "hbone/overload.h"
#include "ztunnel/proxy_config.h"

namespace ztunnel {

using common::make_error;
using common::Result;
namespace env = common::env;

namespace {

constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();

Result<WorkloadInfo> parse_workload_info(std::string_view v) {
  WorkloadInfo w;
  size_t a = v.find('/');
  size_t b = a == std::string_view::npos ? a : v.find('/', a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos || v.find('/', b + 1) != std::string_view::npos) {
    return make_error(env::invalid_var("PROXY_WORKLOAD_INFO", v, "expected <namespace>/<name>/<service account>"));
  }
  w.ns = std::string(v.substr(0, a));
  w.name = std::string(v.substr(a + 1, b - a - 1));
  w.service_account = std::string(v.substr(b + 1));
  if (w.ns.empty() || w.name.empty() || w.service_account.empty()) {
    return make_error(
        env::invalid_var("PROXY_WORKLOAD_INFO", v, "namespace, name and service account must be non-empty"));
  }
  return w;
}

}  // namespace

std::chrono::milliseconds deadline_from_grace_period(uint64_t g) {
  uint64_t secs = g > 10 ? g - 5 : (g > 0 ? g - 1 : 0);
  if (secs < 1) secs = 1;
  return std::chrono::seconds(secs);
}

const char* to_string(ProxyMode m) {
  return m == ProxyMode::Shared ? "shared" : "dedicated";
}

namespace {

// The mesh config file: absent is normal (no ConfigMap mounted), unreadable or malformed is not.
Result<ProxyConfigValues> read_mesh_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ProxyConfigValues{};
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_error("mesh config " + path + ": read failed");
  return parse_mesh_default_config(text.str(), "mesh config " + path);
}

}  // namespace

Result<Config> load_config(const env::EnvLookup& e, size_t cores, const std::string& mesh_config_path) {
  Config c;
// Each reader returns Result; unwrap or propagate the (already variable-naming) error.
#define ZT_TRY(lhs, expr)                   \
  do {                                      \
    auto r_ = (expr);                       \
    if (!r_) return make_error(r_.error()); \
    lhs = std::move(r_.value());            \
  } while (0)

  // -- ProxyConfig: the mesh file's defaultConfig, then PROXY_CONFIG over it (upstream order).
  ProxyConfigValues pc;
  {
    auto file = read_mesh_file(mesh_config_path);
    if (!file) return make_error(file.error());
    pc = std::move(file.value());
    if (auto v = e("PROXY_CONFIG"); v && !v->empty()) {
      auto over = parse_proxy_config(*v, "PROXY_CONFIG");
      if (!over) return make_error("invalid env var " + over.error());
      pc = merge_proxy_config(std::move(pc), over.value());
    }
  }
  c.proxy_config_metadata = pc.proxy_metadata;
  // Proxy metadata as upstream resolves it: ISTIO_META_<name> in the environment, else the
  // ProxyConfig's proxyMetadata entry.
  auto meta = [&](const std::string& name) -> std::optional<std::string> {
    if (auto v = e("ISTIO_META_" + name)) return v;
    if (auto it = pc.proxy_metadata.find(name); it != pc.proxy_metadata.end()) return it->second;
    return std::nullopt;
  };

  // -- mode
  if (auto m = e("PROXY_MODE"); m && !m->empty()) {
    if (*m == "shared") {
      c.proxy_mode = ProxyMode::Shared;
    } else if (*m == "dedicated") {
      c.proxy_mode = ProxyMode::Dedicated;
    } else {
      return make_error(env::invalid_var("PROXY_MODE", *m, "expected shared or dedicated"));
    }
  }
  if (auto w = e("PROXY_WORKLOAD_INFO"); w && !w->empty()) {
    ZT_TRY(c.workload_info, parse_workload_info(*w));
  }
  if (c.proxy_mode == ProxyMode::Dedicated && !c.workload_info) {
    return make_error("PROXY_WORKLOAD_INFO is required when PROXY_MODE=dedicated");
  }

  // -- control plane
  if (auto v = e("LOCAL_XDS_PATH"); v && !v->empty()) c.local_xds_path = *v;
  if (auto v = e("LOCAL_XDS"); v && !v->empty()) c.local_xds = *v;
  if (c.local_xds_path && c.local_xds) {
    return make_error("LOCAL_XDS_PATH and LOCAL_XDS are mutually exclusive; set only one");
  }
  // Upstream default: istiod's in-cluster address under Kubernetes, localhost otherwise.
  std::string default_istiod =
      e("KUBERNETES_SERVICE_HOST") ? "https://istiod.istio-system.svc:15012" : "https://localhost:15012";
  // A local config source replaces xDS unless XDS_ADDRESS is set explicitly (then both run,
  // the local file first, as upstream does); likewise LOCAL_CA_DIR replaces the remote CA.
  const bool local_config = c.local_xds_path || c.local_xds;
  if (e("XDS_ADDRESS") || !local_config) {
    std::string fallback = pc.discovery_address ? *pc.discovery_address : default_istiod;
    c.xds_address = env::control_plane_uri(env::get_string(e, "XDS_ADDRESS", fallback));
  } else {
    c.xds_address = std::nullopt;
  }
  bool fake_ca = false;
  ZT_TRY(fake_ca, env::get_bool(e, "FAKE_CA", false));
  c.fake_ca = fake_ca;
  if (auto st = env::read_control_plane(e, default_istiod, fake_ca, c); !st) return make_error(st.error());
  c.trust_domain = env::get_string(e, "TRUST_DOMAIN", c.trust_domain);
  // Upstream: the proxy metadata (ISTIO_META_CLUSTER_ID, which the chart sets) wins.
  if (auto m = meta("CLUSTER_ID"); m && !m->empty()) {
    c.cluster_id = *m;
  } else if (auto v = e("CLUSTER_ID"); v && !v->empty()) {
    c.cluster_id = *v;
  }
  c.cluster_domain = env::get_string(e, "CLUSTER_DOMAIN", c.cluster_domain);
  c.network = env::get_string(e, "NETWORK", "");

  // -- identity
  c.node_name = env::get_string(e, "NODE_NAME", "");
  c.pod_name = env::get_string(e, "POD_NAME", "");
  c.pod_namespace = env::get_string(e, "POD_NAMESPACE", "");
  c.service_account = env::get_string(e, "SERVICE_ACCOUNT", "");
  c.instance_ip = env::get_string(e, "INSTANCE_IP", "");

  // -- threads and shutdown
  if (auto lim = e("ZTUNNEL_CPU_LIMIT"); lim && !lim->empty()) {
    auto n = env::parse_unsigned(*lim);
    if (!n || *n == 0) {
      return make_error(env::invalid_var("ZTUNNEL_CPU_LIMIT", *lim, "expected a positive integer"));
    }
    cores = static_cast<size_t>(*n);
  }
  {
    // Upstream order: ZTUNNEL_WORKER_THREADS; else ProxyConfig concurrency; else the container's
    // CPU limit (ZTUNNEL_RESOURCE_CPU_LIMIT, which the chart fills from resources.limits.cpu);
    // else max(ceil(25% of cores), the CPU request, 2).
    std::optional<uint64_t> cpu_limit, cpu_request;
    ZT_TRY(cpu_limit, env::get_unsigned(e, "ZTUNNEL_RESOURCE_CPU_LIMIT"));
    ZT_TRY(cpu_request, env::get_unsigned(e, "ZTUNNEL_RESOURCE_CPU_REQUEST"));
    auto v = e("ZTUNNEL_WORKER_THREADS");
    if (v && !v->empty()) {
      ZT_TRY(c.worker_threads, common::worker_threads_from_env(std::string_view(*v), cores));
    } else if (pc.concurrency) {
      c.worker_threads = *pc.concurrency;
    } else if (cpu_limit && *cpu_limit > 0) {
      c.worker_threads = static_cast<size_t>(*cpu_limit);
    } else {
      ZT_TRY(c.worker_threads, common::worker_threads_from_env(std::nullopt, cores));
      if (cpu_request && *cpu_request > c.worker_threads) c.worker_threads = static_cast<size_t>(*cpu_request);
    }
  }
  std::optional<std::chrono::milliseconds> explicit_deadline;
  ZT_TRY(explicit_deadline, env::get_duration(e, "CONNECTION_TERMINATION_DEADLINE"));
  if (explicit_deadline) {
    c.termination_deadline = *explicit_deadline;
  } else {
    std::optional<uint64_t> grace;
    ZT_TRY(grace, env::get_unsigned(e, "TERMINATION_GRACE_PERIOD_SECONDS"));
    if (grace) c.termination_deadline = deadline_from_grace_period(*grace);
  }

  // -- pool and HTTP/2
  uint64_t u = 0;
  ZT_TRY(u, env::get_unsigned_max(e, "POOL_MAX_STREAMS_PER_CONNECTION", c.pool_max_streams_per_connection, kU32Max));
  if (u == 0) {
    return make_error(env::invalid_var("POOL_MAX_STREAMS_PER_CONNECTION", "0", "must be positive"));
  }
  c.pool_max_streams_per_connection = static_cast<uint32_t>(u);
  ZT_TRY(c.pool_unused_release_timeout,
         env::get_duration(e, "POOL_UNUSED_RELEASE_TIMEOUT", c.pool_unused_release_timeout));
  // RFC 9113 bounds: windows up to 2^31-1, frames 16 KiB .. 16 MiB-1.
  ZT_TRY(u, env::get_unsigned_max(e, "HTTP2_STREAM_WINDOW_SIZE", c.http2_stream_window_size, 0x7fffffff));
  c.http2_stream_window_size = static_cast<uint32_t>(u);
  ZT_TRY(u, env::get_unsigned_max(e, "HTTP2_CONNECTION_WINDOW_SIZE", c.http2_connection_window_size, 0x7fffffff));
  c.http2_connection_window_size = static_cast<uint32_t>(u);
  ZT_TRY(u, env::get_unsigned_max(e, "HTTP2_FRAME_SIZE", c.http2_frame_size, 16777215));
  if (u < 16384) {
    return make_error(env::invalid_var("HTTP2_FRAME_SIZE", std::to_string(u), "must be between 16384 and 16777215"));
  }
  c.http2_frame_size = static_cast<uint32_t>(u);
  if (auto v = e("HBONE_BUFFER_BUDGET")) ZT_TRY(c.hbone_buffer_budget, hbone::parse_buffer_budget(*v));

  // -- sockets
  // Upstream's default per mode: in shared mode the in-pod rules need the mark (1337); a
  // dedicated ztunnel has none unless PACKET_MARK sets one (our suites and the demo that put
  // istio-cni's in-pod rules around a dedicated ztunnel set PACKET_MARK=1337 explicitly).
  if (c.proxy_mode == ProxyMode::Dedicated) c.packet_mark = 0;
  ZT_TRY(u, env::get_unsigned_max(e, "PACKET_MARK", c.packet_mark, kU32Max));
  c.packet_mark = static_cast<uint32_t>(u);
  c.inpod_uds = env::get_string(e, "INPOD_UDS", c.inpod_uds);
  ZT_TRY(c.inpod_port_reuse, env::get_bool(e, "INPOD_PORT_REUSE", c.inpod_port_reuse));
  ZT_TRY(c.enable_orig_src, env::get_bool(e, "ENABLE_ORIG_SRC"));
  ZT_TRY(c.ipv6_enabled, env::get_bool(e, "IPV6_ENABLED", c.ipv6_enabled));
  ZT_TRY(c.keepalive_enabled, env::get_bool(e, "KEEPALIVE_ENABLED", c.keepalive_enabled));
  ZT_TRY(c.keepalive_time, env::get_duration(e, "KEEPALIVE_TIME", c.keepalive_time));
  ZT_TRY(c.keepalive_interval, env::get_duration(e, "KEEPALIVE_INTERVAL", c.keepalive_interval));
  ZT_TRY(u, env::get_unsigned_max(e, "KEEPALIVE_RETRIES", c.keepalive_retries, kU32Max));
  c.keepalive_retries = static_cast<uint32_t>(u);
  ZT_TRY(c.user_timeout_enabled, env::get_bool(e, "USER_TIMEOUT_ENABLED", false));

  // -- behaviour
  ZT_TRY(c.enable_response_baggage, env::get_bool(e, "ENABLE_RESPONSE_BAGGAGE", c.enable_response_baggage));
  ZT_TRY(c.authz_policy_info_logging, env::get_bool(e, "AUTHZ_POLICY_INFO_LOGGING", false));
  // Proxy metadata (ISTIO_META_ prefix stripped upstream): anything but "false" keeps DNS on.
  // Upstream compares the lower-cased value with "true": "True" enables, "yes" disables.
  if (auto v = meta("DNS_CAPTURE")) {
    std::string lower(*v);
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    c.dns_proxy = lower == "true";
  }
  if (auto v = meta("DNS_PROXY_ADDR"); v && !v->empty()) {
    auto hp = common::http::split_host_port(*v);
    if (!hp) return make_error(env::invalid_var("ISTIO_META_DNS_PROXY_ADDR", *v, hp.error()));
    c.dns_proxy_addr = *v;
  }
  c.prefered_service_namespace = env::get_string(e, "PREFERED_SERVICE_NAMESPACE", "");
  if (auto v = e("CRL_PATH"); v && !v->empty()) c.crl_path = *v;
  ZT_TRY(c.xds_on_demand, env::get_bool(e, "XDS_ON_DEMAND", false));
  if (c.xds_on_demand && c.dns_proxy) {
    // Upstream's own validation: the DNS proxy needs every service up front.
    return make_error("XDS_ON_DEMAND=true cannot be combined with the DNS proxy (set ISTIO_META_DNS_CAPTURE=false)");
  }

  // -- logging
  {
    common::LogSettings log;
    ZT_TRY(log, common::log_settings_from_env(e));
    c.log_format = log.format;
    c.log_level = std::move(log.level);
  }

  // -- operational listeners
  if (!c.ipv6_enabled) {
    c.admin_addr = "127.0.0.1:15000";
    c.stats_addr = "0.0.0.0:15020";
    c.readiness_addr = "0.0.0.0:15021";
  }
  // ProxyConfig ports move the listeners (upstream: proxyAdminPort, statsPort); our
  // ADMIN_ADDR / STATS_ADDR testing knobs still win.
  if (pc.proxy_admin_port) {
    c.admin_addr = std::string(c.ipv6_enabled ? "localhost:" : "127.0.0.1:") + std::to_string(*pc.proxy_admin_port);
  }
  if (pc.stats_port) {
    c.stats_addr = std::string(c.ipv6_enabled ? "[::]:" : "0.0.0.0:") + std::to_string(*pc.stats_port);
  }
  if (auto st = common::admin_addresses_from_env(e, c.admin_addr, c.stats_addr, c.readiness_addr); !st) {
    return make_error(st.error());
  }
#undef ZT_TRY
  return c;
}

void apply_env_families(Config& c, const std::vector<std::pair<std::string, std::string>>& vars) {
  auto header_name = [](std::string_view raw) {
    std::string h(raw);
    for (auto& ch : h) ch = ch == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return h;
  };
  for (const auto& [name, value] : vars) {
    std::string_view n = name;
    if (n.starts_with("XDS_HEADER_") && n.size() > 11) {
      c.xds_headers.emplace_back(header_name(n.substr(11)), value);
    } else if (n.starts_with("CA_HEADER_") && n.size() > 10) {
      c.ca_headers.emplace_back(header_name(n.substr(10)), value);
    } else if (n.starts_with("ISTIO_METAJSON_") && n.size() > 15) {
      c.istio_meta_json.emplace_back(std::string(n.substr(15)), value);
    } else if (n.starts_with("ISTIO_META_") && n.size() > 11) {
      c.istio_meta.emplace_back(std::string(n.substr(11)), value);
    }
  }
  // ProxyConfig proxyMetadata entries not overridden by an ISTIO_META_ variable.
  for (const auto& kv : c.proxy_config_metadata) {
    const std::string& key = kv.first;  // (clang 14 cannot capture a structured binding)
    bool in_env = std::any_of(c.istio_meta.begin(), c.istio_meta.end(), [&](const auto& m) { return m.first == key; });
    if (!in_env) c.istio_meta.emplace_back(key, kv.second);
  }
  auto by_name = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::sort(c.xds_headers.begin(), c.xds_headers.end(), by_name);
  std::sort(c.ca_headers.begin(), c.ca_headers.end(), by_name);
  std::sort(c.istio_meta.begin(), c.istio_meta.end(), by_name);
  std::sort(c.istio_meta_json.begin(), c.istio_meta_json.end(), by_name);
}

Result<Config> load_config_from_process() {
  auto c = load_config(env::process_env(), common::available_cores(), kMeshConfigPath);
  if (!c) return c;
  std::vector<std::pair<std::string, std::string>> vars;
  for (char** p = environ; p && *p; ++p) {
    std::string_view kv(*p);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    vars.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  apply_env_families(c.value(), vars);
  return c;
}

nlohmann::json Config::to_json() const {
  // Upstream's serialisation of its Config (serde, camelCase): durations as {secs, nanos},
  // enums externally tagged ({"File": path}), absent options as null. Settings upstream does
  // not have keep their own camelCase names after those.
  using nlohmann::json;
  auto opt = [](const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); };
  auto duration = [](std::chrono::milliseconds d) {
    return json{{"secs", d.count() / 1000}, {"nanos", (d.count() % 1000) * 1'000'000}};
  };
  auto root_cert = [](const std::string& v) {
    if (v == "SYSTEM") return json("Default");
    if (v.find("-----BEGIN") != std::string::npos) return json{{"Static", "<inline PEM>"}};
    return json{{"File", v}};
  };
  auto listener = [&](uint16_t port) {
    return std::string(ipv6_enabled ? "[::]:" : "0.0.0.0:") + std::to_string(port);
  };
  json j;
  j["proxyMode"] = proxy_mode == ProxyMode::Shared ? "Shared" : "Dedicated";
  if (workload_info) {
    j["proxyWorkloadInformation"] = {{"namespace", workload_info->ns},
                                     {"workloadName", workload_info->name},
                                     {"serviceAccount", workload_info->service_account}};
  } else {
    j["proxyWorkloadInformation"] = nullptr;
  }
  if (local_xds_path) {
    j["localXdsConfig"] = {{"File", *local_xds_path}};
  } else if (local_xds) {
    j["localXdsConfig"] = {{"Static", "<inline LOCAL_XDS>"}};
  } else {
    j["localXdsConfig"] = nullptr;
  }
  j["xdsAddress"] = opt(xds_address);
  j["caAddress"] = opt(ca_address);
  j["xdsRootCert"] = root_cert(xds_root_ca);
  j["caRootCert"] = root_cert(ca_root_ca);
  j["altXdsHostname"] = opt(alt_xds_hostname);
  j["altCaHostname"] = opt(alt_ca_hostname);
  j["secretTtl"] = duration(secret_ttl);
  j["clusterId"] = cluster_id;
  j["clusterDomain"] = cluster_domain;
  j["network"] = network;
  j["localNode"] = node_name.empty() ? json(nullptr) : json(node_name);
  j["localIp"] = instance_ip.empty() ? json(nullptr) : json(instance_ip);
  j["numWorkerThreads"] = worker_threads;
  j["selfTerminationDeadline"] = duration(termination_deadline);
  j["poolMaxStreamsPerConn"] = pool_max_streams_per_connection;
  j["poolUnusedReleaseTimeout"] = duration(pool_unused_release_timeout);
  j["windowSize"] = http2_stream_window_size;
  j["connectionWindowSize"] = http2_connection_window_size;
  j["frameSize"] = http2_frame_size;
  j["packetMark"] = packet_mark == 0 ? json(nullptr) : json(packet_mark);
  j["inpodUds"] = inpod_uds;
  j["inpodPortReuse"] = inpod_port_reuse;
  j["enableOriginalSource"] = enable_orig_src ? json(*enable_orig_src) : json(nullptr);
  j["socketConfig"] = {
      {"keepaliveTime", duration(keepalive_time)},
      {"keepaliveInterval", duration(keepalive_interval)},
      {"keepaliveRetries", keepalive_retries},
      {"keepaliveEnabled", keepalive_enabled},
      {"userTimeoutEnabled", user_timeout_enabled},
  };
  j["enableResponseBaggage"] = enable_response_baggage;
  j["dnsProxy"] = dns_proxy;
  j["fakeCa"] = fake_ca;
  j["adminAddr"] = admin_addr;
  j["statsAddr"] = stats_addr;
  j["readinessAddr"] = readiness_addr;
  j["inboundAddr"] = listener(kInboundHbonePort);
  j["inboundPlaintextAddr"] = listener(kInboundPlaintextPort);
  j["outboundAddr"] = listener(kOutboundPort);
  j["dnsProxyAddr"] = dns_proxy_addr;
  j["preferedServiceNamespace"] = prefered_service_namespace.empty() ? json(nullptr) : json(prefered_service_namespace);
  j["xdsOnDemand"] = xds_on_demand;
  j["crlPath"] = opt(crl_path);
  json meta = json::object();
  for (const auto& [k, v] : istio_meta) meta[k] = v;
  j["proxyMetadata"] = std::move(meta);
  // Ours (no upstream field).
  j["trustDomain"] = trust_domain;
  j["podName"] = pod_name;
  j["podNamespace"] = pod_namespace;
  j["serviceAccount"] = service_account;
  j["localCaDir"] = opt(local_ca_dir);
  j["hboneBufferBudget"] = hbone_buffer_budget;
  j["ipv6Enabled"] = ipv6_enabled;
  j["authzPolicyInfoLogging"] = authz_policy_info_logging;
  j["logFormat"] = log_format == common::log::Format::Json ? "json" : "plain";
  j["logLevel"] = log_level;
  return j;
}

}  // namespace ztunnel
