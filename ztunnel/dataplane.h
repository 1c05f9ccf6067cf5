// Dataplane: the part of a ztunnel process that differs by mode — one proxy for one workload
// (PROXY_MODE=dedicated, ztunnel/proxy/dedicated_plane.cc) or one proxy per pod handed over
// by the node agent (PROXY_MODE=shared, ztunnel/inpod/node_plane.cc). run_app() owns one.
// Threading: every method runs on the control thread; the proxies hand work to the workers.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>

#include "common/admin/metrics.h"
#include "common/admin/readiness.h"
#include "common/identity/secret_manager.h"
#include "common/result.h"
#include "common/runtime.h"
#include "common/state/snapshot.h"
#include "ztunnel/config.h"

namespace ztunnel {

class OnDemand;

class Dataplane {
 public:
  virtual ~Dataplane() = default;
  virtual common::Status start() = 0;
  virtual void set_snapshot(SnapshotConstSharedPtr s) = 0;
  virtual void drain() = 0;
  virtual void force_close() = 0;
  // After a CRL reload: tear down live connections to/from peers the new CRLs revoke.
  virtual void close_revoked_peers() = 0;
  virtual int64_t active_connections() const = 0;
  virtual void dump(nlohmann::json& out) const = 0;
  // XDS_ON_DEMAND: where address misses are demanded (before start()). Planes that do not
  // support it ignore it (their misses stay unknown destinations).
  virtual void set_on_demand(std::shared_ptr<OnDemand> /*on_demand*/) {}
};

// The certificate for the configured workload is requested at once; readiness "proxy" is
// marked when it is installed.
std::unique_ptr<Dataplane> make_dedicated_plane(common::Runtime& rt, const Config& cfg, common::metrics::Registry& reg,
                                                common::SecretManager& secrets, common::Readiness& readiness,
                                                SnapshotConstSharedPtr snapshot);
// Serves the node agent's ZDS socket; readiness "workload proxy manager" is marked after the
// agent's first snapshot.
std::unique_ptr<Dataplane> make_node_plane(common::Runtime& rt, const Config& cfg, common::metrics::Registry& reg,
                                           common::SecretManager& secrets, common::Readiness& readiness,
                                           SnapshotConstSharedPtr snapshot);

}  // namespace ztunnel
