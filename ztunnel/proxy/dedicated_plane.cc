// DedicatedPlane: PROXY_MODE=dedicated — one Proxy for the configured workload in ztunnel's
// own network namespace, with that workload's certificate.
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "ztunnel/dataplane.h"
#include "ztunnel/proxy/proxy.h"

namespace ztunnel {
namespace {

class DedicatedPlane : public Dataplane {
 public:
  DedicatedPlane(common::Runtime& rt, const Config& cfg, common::metrics::Registry& reg, common::SecretManager& secrets,
                 common::Readiness& readiness, SnapshotConstSharedPtr snap)
      : proxy_(rt, cfg, reg, ProxyTarget{*cfg.workload_info, "", nullptr}) {
    proxy_.set_snapshot(snap);
    const auto& wi = *cfg.workload_info;
    std::string td = cfg.trust_domain;
    if (const Workload* w = snap->find_workload_by_info(wi.ns, wi.name, wi.service_account)) {
      td = w->trust_domain;
    } else if (snap->workloads().empty()) {
      // xDS-only start: nothing received yet. The identity is fixed here, so TRUST_DOMAIN is it.
      spdlog::info("no configuration yet (waiting for xDS); certificate identity uses TRUST_DOMAIN {}", td);
    } else {
      spdlog::warn("workload {}/{} (sa {}) is not in the configuration yet; outbound traffic fails until it is", wi.ns,
                   wi.name, wi.service_account);
    }
    common::Identity identity(td, wi.ns, wi.service_account);
    sub_ = secrets.subscribe(
        identity,
        [this, identity, &readiness](common::SecretManager::CredentialsPtr creds) {
          if (auto st = proxy_.set_credentials(creds); !st) {
            spdlog::error("certificate for {} unusable: {}", identity.uri(), st.error());
            return;
          }
          spdlog::info("certificate for {} installed", identity.uri());
          readiness.mark_done("proxy");
        },
        [this](const std::string& error) { proxy_.set_credentials_error(error); });
  }
  common::Status start() override { return proxy_.start(); }
  void set_snapshot(SnapshotConstSharedPtr s) override { proxy_.set_snapshot(std::move(s)); }
  void drain() override { proxy_.drain(); }
  void force_close() override { proxy_.force_close(); }
  void close_revoked_peers() override { proxy_.close_revoked_peers(); }
  int64_t active_connections() const override { return proxy_.active_connections(); }
  void set_on_demand(std::shared_ptr<OnDemand> on_demand) override { proxy_.set_on_demand(std::move(on_demand)); }
  void dump(nlohmann::json&) const override {}

 private:
  Proxy proxy_;
  common::SecretManager::Subscription sub_;
};

}  // namespace

std::unique_ptr<Dataplane> make_dedicated_plane(common::Runtime& rt, const Config& cfg, common::metrics::Registry& reg,
                                                common::SecretManager& secrets, common::Readiness& readiness,
                                                SnapshotConstSharedPtr snapshot) {
  return std::make_unique<DedicatedPlane>(rt, cfg, reg, secrets, readiness, std::move(snapshot));
}

}  // namespace ztunnel
