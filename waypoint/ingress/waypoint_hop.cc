#include "waypoint/ingress/waypoint_hop.h"

namespace waypoint::ingress {

namespace {

// The first healthy HBONE endpoint of a waypoint Service (deterministic: the model's order).
const ztunnel::Workload* pod_of(const ztunnel::Snapshot& model, const ztunnel::Service& svc) {
  for (const auto& ep : model.endpoints(svc)) {
    if (ep.workload && ep.status == ztunnel::HealthStatus::Healthy &&
        ep.workload->tunnel_protocol == ztunnel::TunnelProtocol::Hbone)
      return ep.workload;
  }
  for (const auto& ep : model.endpoints(svc)) {
    if (ep.workload && ep.status == ztunnel::HealthStatus::Healthy) return ep.workload;
  }
  return nullptr;
}

}  // namespace

std::optional<WaypointHop> waypoint_hop(const ztunnel::Snapshot& model, const ztunnel::IpAddr& vip) {
  const ztunnel::Service* svc = model.find_service("", vip);
  if (!svc || !svc->waypoint) return std::nullopt;
  const ztunnel::Workload* pod = nullptr;
  if (const auto* a = svc->waypoint->address()) {
    pod = model.find_workload(a->network, a->ip);
    if (!pod) {
      if (const auto* wsvc = model.find_service(a->network, a->ip)) pod = pod_of(model, *wsvc);
    }
  } else if (const auto* h = svc->waypoint->hostname()) {
    if (const auto* wsvc = model.find_service_by_host(h->ns, h->hostname)) pod = pod_of(model, *wsvc);
  }
  if (!pod || pod->addresses.empty()) return std::nullopt;
  return WaypointHop{pod->addresses.front(), pod->identity()};
}

}  // namespace waypoint::ingress
