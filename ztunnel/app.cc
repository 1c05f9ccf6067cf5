#include "ztunnel/app.h"

#include <malloc.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <fstream>
#include <optional>
#include <sstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/admin/admin_servers.h"
#include "common/admin/metrics.h"
#include "common/admin/readiness.h"
#include "common/graceful_shutdown.h"
#include "common/resident_trim.h"
#include "common/runtime.h"
#include "common/file_watch.h"
#include "common/identity/crl.h"
#include "common/identity/secret_manager.h"
#include "hbone/connection_stats.h"
#include "hbone/overload.h"
#include "ztunnel/state/admin_dump.h"
#include "ztunnel/cert_source.h"
#include "ztunnel/dataplane.h"
#include "common/model/local_config.h"
#include "ztunnel/inpod/netns.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/inpod/workload_manager.h"
#include "ztunnel/state/xds_source.h"
#include "ztunnel/inpod/zds_client.h"

namespace ztunnel {
namespace asio = boost::asio;

namespace {

constexpr const char* kVersion = "0.1.0";

common::Result<SnapshotConstSharedPtr> load_snapshot(const Config& cfg, uint64_t version) {
  common::Result<LocalConfig> lc = cfg.local_xds_path ? load_local_config(*cfg.local_xds_path)
                                                      : parse_local_config(*cfg.local_xds);
  if (!lc) {
    return common::make_error((cfg.local_xds_path ? "LOCAL_XDS_PATH " + *cfg.local_xds_path : std::string("LOCAL_XDS")) +
                              ": " + lc.error());
  }
  return Snapshot::from_local_config(std::move(lc.value()), version);
}

common::Result<std::shared_ptr<const common::tls::CrlSet>> load_crls(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return common::make_error("CRL_PATH " + path + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  auto set = common::tls::CrlSet::parse_pem(text.str());
  if (!set) return common::make_error("CRL_PATH " + path + ": " + set.error());
  return set;
}

}  // namespace

int run_app(const Config& cfg) {
  const bool dedicated = cfg.proxy_mode == ProxyMode::Dedicated;
  // Configuration sources: the local file (LOCAL_XDS_PATH / LOCAL_XDS) and/or delta xDS
  // (XDS_ADDRESS). With both, the local snapshot serves until xDS has synced; from then on the
  // xDS snapshots replace it and the file watch stops applying edits (simplified from
  // upstream, which merges both into one store). With xDS only, the dataplane starts on an
  // empty snapshot (version 0) and readiness waits for the first sync.
  const bool use_local = cfg.local_xds_path || cfg.local_xds;
  const bool use_xds = cfg.xds_address.has_value();
  if (!use_local && !use_xds) {
    spdlog::error("no configuration source: set XDS_ADDRESS (the Istio xDS server) or LOCAL_XDS_PATH (or LOCAL_XDS)");
    return 2;
  }

  uint64_t version = 1;
  SnapshotConstSharedPtr initial = Snapshot::empty();
  if (use_local) {
    auto snapshot = load_snapshot(cfg, version);
    if (!snapshot) {
      spdlog::error("{}", snapshot.error());
      return 2;
    }
    initial = snapshot.value();
  }
  // What staticConfig shows: the last good load of the local file (kept through xDS).
  SnapshotConstSharedPtr local_snapshot = use_local ? initial : nullptr;
  std::string istio_version;
  for (const auto& [k, v] : cfg.istio_meta) {
    if (k == "ISTIO_VERSION") istio_version = v;
  }

  common::Runtime runtime(cfg.worker_threads);
  common::metrics::Registry registry;
  common::metrics::register_process_metrics(registry);
  // Upstream's tag is the Istio release it ships with (ISTIO_META_ISTIO_VERSION in the chart).
  common::metrics::register_build_info(registry, "ztunnel", istio_version.empty() ? kVersion : istio_version);
  hbone::register_connection_stats(registry);
  hbone::overload().set_budget(cfg.hbone_buffer_budget);
  // CRL_PATH: refuse revoked peers from the first handshake on (a bad file fails the start).
  auto& crl_rejections = registry.counter("istio_crl_policy_rejections_total",
                                          "Connections refused because a CRL revokes the peer's certificate",
                                          {"reporter"});
  {
    auto* as_source = crl_rejections.get({"source"});
    auto* as_destination = crl_rejections.get({"destination"});
    common::tls::set_crl_rejection_hook(
        [as_source, as_destination](bool server) { (server ? as_destination : as_source)->inc(); });
  }
  if (cfg.crl_path) {
    auto crls = load_crls(*cfg.crl_path);
    if (!crls) {
      spdlog::error("{}", crls.error());
      return 2;
    }
    spdlog::info("CRL checking on: {} CRL(s) from {}", crls.value()->size(), *cfg.crl_path);
    common::tls::install_crls(crls.value());
  }
  common::Readiness readiness;
  readiness.register_task("state manager");
  readiness.register_task(dedicated ? "proxy" : "workload proxy manager");

  // The Istio CA (CA_ADDRESS) or a local CA (LOCAL_CA_DIR); must outlive `secrets`.
  auto provider = make_cert_provider(cfg, runtime.control());
  if (!provider) {
    spdlog::error("{}", provider.error());
    return 2;
  }
  common::SecretManager secrets(runtime.control(), *provider.value());

  std::unique_ptr<Dataplane> plane;
  if (dedicated) {
    plane = make_dedicated_plane(runtime, cfg, registry, secrets, readiness, initial);
  } else {
    plane = make_node_plane(runtime, cfg, registry, secrets, readiness, initial);
  }
  SnapshotConstSharedPtr current = initial;
  // Set once xDS has delivered its first complete state; the local file no longer applies.
  bool xds_synced = false;
  std::optional<common::FileWatch> local_watch;  // LOCAL_XDS_PATH, until xDS serves
  std::unique_ptr<XdsSource> xds;
  if (use_xds) {
    // Both callbacks are posted to the control thread, snapshot first.
    xds = std::make_unique<XdsSource>(
        cfg, registry, runtime.control(),
        [&](SnapshotConstSharedPtr s) {
          if (!xds_synced && local_watch) {
            spdlog::info("xDS is serving the configuration; {} is no longer watched", local_watch->path());
            local_watch->stop();
          }
          xds_synced = true;
          current = std::move(s);
          plane->set_snapshot(current);
        },
        [&] {
          spdlog::info("xDS configuration synced from {} (version {})", *cfg.xds_address, current->version());
          readiness.mark_done("state manager");
        });
  } else {
    readiness.mark_done("state manager");
  }
  if (xds && xds->on_demand()) plane->set_on_demand(xds->on_demand());
  if (auto st = plane->start(); !st) {
    spdlog::error("{}", st.error());
    return 1;
  }
  if (xds) {
    spdlog::info("xDS: connecting to {}", *cfg.xds_address);
    xds->start();
  }

  // Drain: stop accepting, GOAWAY, let live connections finish until the deadline.
  common::ShutdownSteps steps;
  steps.live = [&] { return plane->active_connections(); };
  steps.drain = [&] {
    spdlog::info("draining: no new connections; {} live, deadline {} ms", plane->active_connections(),
                 cfg.termination_deadline.count());
    if (xds) xds->stop();  // prompt: cancels the stream and joins its thread
    plane->drain();
  };
  steps.force_close = [&] {
    if (plane->active_connections() > 0) {
      spdlog::info("termination deadline: closing {} live connections", plane->active_connections());
    }
    plane->force_close();
  };
  common::GracefulShutdown shutdown(runtime, cfg.termination_deadline, std::move(steps));
  shutdown.on_signal();

  common::AdminHooks hooks;
  hooks.registry = &registry;
  hooks.readiness = &readiness;
  hooks.shutdown = [&] { shutdown.begin(); };
  hooks.config_dump = [&]() {
    // Upstream's top level: the proxy state flattened (workloads, services, policies,
    // stagedServices), staticConfig (the local file's content), version, config,
    // certificates, and in node mode workloadState.
    nlohmann::json dump = current->to_json();
    // Endpoints that arrive before their service: ours are indexed when the service comes,
    // nothing is held back, so the staging area upstream shows is always empty.
    dump["stagedServices"] = nlohmann::json::object();
    dump["certificates"] = certificates_json(secrets.dump());
    dump["config"] = cfg.to_json();
    dump["version"] = version_json(istio_version);
    nlohmann::json local = local_snapshot ? local_snapshot->to_json() : nlohmann::json::object();
    dump["staticConfig"] = {{"workloads", local.value("workloads", nlohmann::json::array())},
                            {"policies", local.value("policies", nlohmann::json::array())},
                            {"services", local.value("services", nlohmann::json::array())}};
    std::string source = cfg.local_xds_path ? *cfg.local_xds_path : std::string(cfg.local_xds ? "LOCAL_XDS" : "");
    if (xds_synced) source = "xds " + *cfg.xds_address;
    dump["configSource"] = {{"source", source}, {"configVersion", current->version()}};
    if (xds) dump["xds"] = xds->status();
    plane->dump(dump);
    return dump.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  common::AdminAddresses addrs{cfg.admin_addr, cfg.stats_addr, cfg.readiness_addr};
  auto admin = common::AdminServers::start(runtime.control(), runtime.worker(0), addrs, hooks);
  if (!admin) {
    spdlog::error("{}", admin.error());
    return 1;
  }

  // LOCAL_XDS_PATH is watched: an edit is applied as a new snapshot; a broken edit is reported
  // and the last good configuration keeps serving. Once xDS serves, the file no longer applies.
  if (cfg.local_xds_path && !xds_synced) {
    local_watch.emplace(runtime.control(), *cfg.local_xds_path, std::chrono::seconds(1), [&] {
      auto next = load_snapshot(cfg, ++version);
      if (next) {
        current = next.value();
        local_snapshot = current;
        plane->set_snapshot(current);
        spdlog::info("configuration reloaded from {} (version {})", *cfg.local_xds_path, version);
      } else {
        spdlog::error("configuration reload rejected, keeping the last good one: {}", next.error());
      }
    });
    local_watch->start();
  }

  // CRL_PATH is re-read when it changes (a ConfigMap update swaps the file); a broken update
  // keeps the last good CRLs. Connections already open are re-checked against the new CRLs.
  std::optional<common::FileWatch> crl_watch;
  if (cfg.crl_path) {
    crl_watch.emplace(runtime.control(), *cfg.crl_path, std::chrono::seconds(2), [&] {
      if (auto crls = load_crls(*cfg.crl_path)) {
        common::tls::install_crls(crls.value());
        spdlog::info("CRLs reloaded: {} CRL(s) from {}", crls.value()->size(), *cfg.crl_path);
        // As upstream: connections already up with a peer the new CRLs revoke are torn down.
        plane->close_revoked_peers();
      } else {
        spdlog::error("CRL reload rejected, keeping the last good CRLs: {}", crls.error());
      }
    });
    crl_watch->start();
  }

  // Return freed heap to the kernel: after a burst of connections closes, glibc keeps the
  // pages in its arenas and RSS would stay at the burst's peak. Every 15 s, and within a
  // second of the live connections falling to a quarter of their level at the last trim
  // (e.g. 10k closed at once), so memory comes back when the burst ends, not up to 15 s later.
  // A one-second tick on the control thread costs nothing measurable while idle.
  asio::steady_timer trim(runtime.control());
  std::function<void()> arm_trim;
  int64_t live_at_trim = 0;
  int ticks_since_trim = 0;
  int ticks_since_start = 0;
  arm_trim = [&] {
    trim.expires_after(std::chrono::seconds(1));
    trim.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      const int64_t live = plane ? plane->active_connections() : 0;
      if (live > live_at_trim) live_at_trim = live;  // the level since the last trim
      ++ticks_since_trim;
      const bool burst_ended = live_at_trim >= 256 && live * 4 <= live_at_trim;
      ++ticks_since_start;
      if (ticks_since_start == 2 || (ticks_since_trim >= 15 && live == 0)) {
        // Start-up is over (or nothing is connected): also drop the clean library pages the
        // loader and initialisation touched once (common/resident_trim.h).
        runtime.release_free_heap_everywhere();
        const auto t = common::trim_resident_memory();
        spdlog::debug("idle trim: {} kB of clean file pages in {} mappings released", t.file_kb, t.mappings);
        live_at_trim = live;
        ticks_since_trim = 0;
      } else if (burst_ended || ticks_since_trim >= 15) {
        runtime.release_free_heap_everywhere();
        live_at_trim = live;
        ticks_since_trim = 0;
      }
      arm_trim();
    });
  };
  arm_trim();

  spdlog::debug("allocator: {}", common::allocator_name());
  if (dedicated) {
    const auto& wi = *cfg.workload_info;
    spdlog::info("ztunnel {} started: dedicated mode for {}/{}", kVersion, wi.ns, wi.name);
  } else {
    spdlog::info("ztunnel {} started: node (in-pod) mode, node agent socket {}", kVersion, cfg.inpod_uds);
  }
  runtime.run();
  if (xds) xds->stop();
  admin.value()->stop();
  spdlog::info("ztunnel stopped");
  return 0;
}

}  // namespace ztunnel
