// XdsSource: ztunnel's configuration source over delta ADS (XDS_ADDRESS). Owns a
// common::xds::DeltaAdsClient subscribed (wildcard) to istio.workload.Address and
// istio.security.Authorization, converts every resource with xds_convert.h, keeps the current
// set by resource name (an Address name is either a workload uid or a service key; we remember
// which, so a removal drops the right one), and publishes immutable Snapshots.
//
// Publication: nothing is published until the first response of BOTH types has been applied
// (so a snapshot never has workloads without their policies, which would mean allow-all for a
// moment); from then on every applied response publishes a new Snapshot (version 1, 2, ...).
// on_snapshot and on_synced are posted to the control io_context in that order, so the first
// snapshot is installed before readiness is released. A disconnect clears nothing: the last
// snapshot keeps serving.
//
// XDS_ON_DEMAND=true: Address is subscribed on demand (nothing in bulk) and on_demand() hands
// workers the OnDemand registry whose alias subscriptions this source sends and answers.
//
// Threading: the handlers run on the client's thread and own the resource maps; the callbacks
// run on the control thread (posted). start()/stop()/status() from any thread; stop() is
// idempotent and prompt (cancels the stream and joins); the destructor stops. Callbacks that
// were already posted may still run after stop(): they must stay valid while `control` runs.
#pragma once

#include <boost/asio/io_context.hpp>
#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <memory>

#include "common/state/snapshot.h"
#include "common/xds/node.h"
#include "ztunnel/config.h"
#include "ztunnel/state/on_demand.h"

namespace common::metrics {
class Registry;
}

namespace ztunnel {

// The xDS node of this ztunnel (ztunnel-facts §4.2) from the downward-API settings.
common::xds::Node make_xds_node(const Config& cfg);

class XdsSource {
 public:
  // Requires cfg.xds_address.
  XdsSource(const Config& cfg, common::metrics::Registry& registry, boost::asio::io_context& control,
            std::function<void(SnapshotConstSharedPtr)> on_snapshot, std::function<void()> on_synced);
  ~XdsSource();
  XdsSource(const XdsSource&) = delete;
  XdsSource& operator=(const XdsSource&) = delete;

  void start();
  void stop();

  // The "xds" section of /config_dump: {address, connected, synced, connects, responses,
  // resources: {workloads, services, policies}, lastNack, lastDisconnect}.
  nlohmann::json status() const;

  // The on-demand registry (XDS_ON_DEMAND=true), else null. Shared with the proxies.
  std::shared_ptr<OnDemand> on_demand() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ztunnel
