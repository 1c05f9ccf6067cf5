#include "waypoint/app.h"

#include <malloc.h>

#include <optional>

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/admin/admin_servers.h"
#include "common/admin/metrics.h"
#include "common/admin/readiness.h"
#include "common/graceful_shutdown.h"
#include "common/resident_trim.h"
#include "common/runtime.h"
#include "common/identity/secret_manager.h"
#include "waypoint/authz/ext_authz.h"
#include "waypoint/cert_source.h"
#include "waypoint/ingress/listeners.h"
#include "waypoint/proxy.h"
#include "waypoint/ratelimit/stats.h"
#include "waypoint/telemetry.h"
#include "waypoint/tracing/settings.h"
#include "waypoint/tracing/tracer.h"
#include "common/state/snapshot.h"

namespace waypoint {
namespace asio = boost::asio;

namespace {

constexpr const char* kVersion = "0.1.0";

const char* lb_name(LbPolicy p) {
  switch (p) {
    case LbPolicy::RoundRobin:
      return "ROUND_ROBIN";
    case LbPolicy::LeastRequest:
      return "LEAST_REQUEST";
    case LbPolicy::RingHash:
      return "RING_HASH";
    case LbPolicy::Random:
      return "RANDOM";
    case LbPolicy::Maglev:
      return "MAGLEV";
    case LbPolicy::ClusterProvided:
      return "CLUSTER_PROVIDED";
  }
  return "UNKNOWN";
}

nlohmann::json route_json(const Route& r) {
  nlohmann::json j = {{"name", r.name}};
  if (const auto* a = std::get_if<RouteAction>(&r.action)) {
    nlohmann::json ra;
    if (!a->cluster.empty()) ra["cluster"] = a->cluster;
    if (!a->weighted_clusters.empty()) {
      nlohmann::json wc = nlohmann::json::array();
      for (const auto& c : a->weighted_clusters) wc.push_back({{"name", c.name}, {"weight", c.weight}});
      ra["weightedClusters"] = wc;
    }
    ra["timeout"] = std::to_string(a->timeout.count()) + "ms";
    if (a->retry_policy) ra["retryPolicy"] = {{"numRetries", a->retry_policy->num_retries}};
    j["route"] = ra;
  } else if (std::holds_alternative<RedirectAction>(r.action)) {
    j["redirect"] = true;
  } else {
    j["directResponse"] = {{"status", std::get<DirectResponseAction>(r.action).status}};
  }
  return j;
}

}  // namespace

nlohmann::json dump_snapshot(const ConfigSnapshot& s) {
  nlohmann::json routes = nlohmann::json::array();
  for (const auto& [name, rc] : s.routes) {
    nlohmann::json vhs = nlohmann::json::array();
    for (const auto& vh : rc->virtual_hosts) {
      nlohmann::json rs = nlohmann::json::array();
      for (const auto& r : vh.routes) rs.push_back(route_json(r));
      nlohmann::json v = {{"name", vh.name}, {"domains", vh.domains}, {"routes", rs}};
      if (vh.tracing || vh.tracing_provider) {  // from Telemetry (docs/tracing.md)
        nlohmann::json t = nlohmann::json::object();
        if (vh.tracing && vh.tracing->random_sampling)
          t["randomSampling"] = std::to_string(vh.tracing->random_sampling->numerator) + "/" +
                                std::to_string(vh.tracing->random_sampling->denominator);
        if (vh.tracing_provider) {
          t["report"] = vh.tracing_provider->report;
          t["collectorCluster"] = vh.tracing_provider->collector_cluster;
        }
        v["tracing"] = t;
      }
      vhs.push_back(std::move(v));
    }
    routes.push_back({{"name", name}, {"virtualHosts", vhs}});
  }
  nlohmann::json clusters = nlohmann::json::array();
  for (const auto& [name, c] : s.clusters) {
    clusters.push_back({{"name", name},
                        {"lbPolicy", lb_name(c->policy.lb_policy)},
                        {"connectTimeout", std::to_string(c->connect_timeout.count()) + "ms"}});
  }
  nlohmann::json endpoints = nlohmann::json::array();
  for (const auto& [name, cla] : s.endpoints) {
    nlohmann::json eps = nlohmann::json::array();
    for (const auto& e : cla->endpoints) {
      eps.push_back({{"address", e.address}, {"port", e.port}, {"weight", e.weight}});
    }
    endpoints.push_back({{"clusterName", name}, {"endpoints", eps}});
  }
  return {{"version", s.version}, {"routes", routes}, {"clusters", clusters}, {"endpoints", endpoints}};
}

int run_app(const Config& cfg) {
  if (!cfg.xds_address) {
    spdlog::error(
        "no configuration source: set XDS_ADDRESS (an xDS server sending RouteConfiguration, Cluster, "
        "ClusterLoadAssignment and istio.workload.Address)");
    return 2;
  }
  common::Runtime runtime(cfg.worker_threads);
  common::metrics::Registry registry;
  common::metrics::register_process_metrics(registry);
  common::metrics::register_build_info(registry, "waypoint", kVersion);
  common::Readiness readiness;
  readiness.register_task("state manager");
  readiness.register_task("proxy");

  auto provider = make_cert_provider(cfg, runtime.control());
  if (!provider) {
    spdlog::error("{}", provider.error());
    return 2;
  }
  common::SecretManager secrets(runtime.control(), *provider.value());
  Telemetry telemetry(registry);
  registry.add_collector(ratelimit::render_stats);  // local / global rate limit counters
  registry.add_collector(authz::render_ext_authz_stats);  // ext_authz (CUSTOM) counters
  auto trace_opts = tracing::tracing_from_env(common::env::process_env(), cfg);
  if (!trace_opts) {
    spdlog::error("invalid tracing configuration: {}", trace_opts.error());
    return 2;
  }
  // Always a tracer: xDS (Telemetry) may name a provider at any time; without one and without
  // ZIPKIN_ADDRESS / PROXY_CONFIG it traces nothing and trace headers pass through.
  std::shared_ptr<tracing::Tracer> tracer;
  if (trace_opts.value()) {
    tracer = std::make_shared<tracing::Tracer>(*trace_opts.value(), registry);
    tracer->start();
    if (!trace_opts.value()->collector.host.empty())
      spdlog::info("tracing: Zipkin spans to {}:{}{} ({}% of new traces sampled) unless xDS names a provider",
                   trace_opts.value()->collector.host, trace_opts.value()->collector.port,
                   trace_opts.value()->collector_path, trace_opts.value()->sampling_percent);
  }

  ProxyOptions popts;
  popts.listen_address = cfg.ipv6_enabled ? "::" : "0.0.0.0";
  popts.port = cfg.hbone_port;
  popts.mark = cfg.packet_mark;
  popts.max_body = cfg.max_body_bytes;
  popts.pool_max_streams = cfg.pool_max_streams_per_connection;
  popts.pool_idle = cfg.pool_unused_release_timeout;
  popts.tracer = tracer;
  popts.gateway = cfg.gateway();
  const common::Identity identity = cfg.identity();
  Proxy proxy(runtime, popts, identity, telemetry);
  // Ingress role: the ports follow the Listeners of each snapshot.
  std::optional<ingress::GatewayListeners> gateway;
  if (cfg.gateway()) gateway.emplace(runtime, proxy, popts.listen_address, cfg.packet_mark, cfg.gateway_credential_dir);

  auto sub = secrets.subscribe(identity, [&](common::SecretManager::CredentialsPtr creds) {
    if (auto st = proxy.set_credentials(creds); !st) {
      spdlog::error("certificate for {} unusable: {}", identity.uri(), st.error());
      return;
    }
    spdlog::info("certificate for {} installed", identity.uri());
    readiness.mark_done("proxy");
  });

  ConfigSnapshotPtr current = proxy.config();
  XdsConfigOptions xopts;
  xopts.endpoint.address = *cfg.xds_address;
  xopts.endpoint.root_ca = cfg.xds_root_ca;
  xopts.endpoint.alt_hostname = cfg.alt_xds_hostname;
  xopts.endpoint.auth_token = cfg.auth_token;
  xopts.endpoint.cluster_id = cfg.cluster_id;
  xopts.endpoint.packet_mark = cfg.packet_mark;
  xopts.instance_ip = cfg.instance_ip;
  xopts.pod_name = cfg.pod_name;
  xopts.pod_namespace = cfg.pod_namespace;
  xopts.node_name = cfg.node_name;
  xopts.proxy_type = cfg.proxy_type;
  auto source = make_xds_config_source(
      xopts, registry, runtime.control(),
      [&](ConfigSnapshotPtr s) {
        current = s;
        proxy.set_config(std::move(s));
        if (gateway) gateway->reconcile(*current);
      },
      [&] {
        spdlog::info("xDS configuration synced from {} (version {})", *cfg.xds_address, current->version);
        readiness.mark_done("state manager");
      });

  if (auto st = proxy.start(); !st) {
    spdlog::error("{}", st.error());
    return 1;
  }
  spdlog::info("xDS: connecting to {} as {}", *cfg.xds_address, waypoint_node_id(xopts));
  source->start();

  common::ShutdownSteps steps;
  steps.live = [&] { return proxy.active_requests(); };
  steps.drain = [&] {
    spdlog::info("draining: no new connections; {} requests in flight, deadline {} ms", proxy.active_requests(),
                 cfg.termination_deadline.count());
    source->stop();
    if (gateway) gateway->close_all();
    proxy.drain();
  };
  steps.force_close = [&] { proxy.force_close(); };
  common::GracefulShutdown shutdown(runtime, cfg.termination_deadline, std::move(steps));
  shutdown.on_signal();

  common::AdminHooks hooks;
  hooks.registry = &registry;
  hooks.readiness = &readiness;
  hooks.shutdown = [&] { shutdown.begin(); };
  hooks.config_dump = [&]() {
    nlohmann::json dump = dump_snapshot(*current);
    if (current->workloads) {
      auto w = current->workloads->to_json();
      dump["workloads"] = w.value("workloads", nlohmann::json::array());
      dump["services"] = w.value("services", nlohmann::json::array());
    }
    nlohmann::json certs = nlohmann::json::array();
    for (const auto& c : secrets.dump()) {
      certs.push_back({{"identity", c.identity.uri()}, {"state", c.state}});
    }
    dump["certificates"] = certs;
    dump["xds"] = source->status();
    dump["upstreamClusters"] = proxy.cluster_status();
    dump["identity"] = identity.uri();
    dump["nodeId"] = waypoint_node_id(xopts);
    if (gateway) dump["gatewayPorts"] = gateway->ports();
    dump["version"] = kVersion;
    return dump.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  common::AdminAddresses addrs{cfg.admin_addr, cfg.stats_addr, cfg.readiness_addr};
  auto admin = common::AdminServers::start(runtime.control(), runtime.worker(0), addrs, hooks);
  if (!admin) {
    spdlog::error("{}", admin.error());
    return 1;
  }

  // Freed heap back to the kernel every 15 s; while no HBONE stream is open (and once, 2 s after
  // start), also the clean library pages start-up touched once (common/resident_trim.h).
  asio::steady_timer trim(runtime.control());
  std::function<void()> arm_trim;
  bool started = false;
  arm_trim = [&] {
    trim.expires_after(std::chrono::seconds(started ? 15 : 2));
    trim.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      if (!started || proxy.active_streams() == 0) {
        runtime.release_free_heap_everywhere();
        common::trim_resident_memory();
      } else {
        runtime.release_free_heap_everywhere();
      }
      started = true;
      arm_trim();
    });
  };
  arm_trim();

  spdlog::debug("allocator: {}", common::allocator_name());
  if (gateway) {
    spdlog::info("waypoint {} started as {} in the ingress gateway role (PROXY_TYPE=router)", kVersion,
                 identity.uri());
  } else {
    spdlog::info("waypoint {} started as {} on HBONE port {}", kVersion, identity.uri(), proxy.port());
  }
  runtime.run();
  source->stop();
  if (gateway) gateway->close_all();
  admin.value()->stop();
  if (tracer) tracer->stop();  // sends the spans still queued
  spdlog::info("waypoint stopped");
  return 0;
}

}  // namespace waypoint
