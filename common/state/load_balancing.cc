// Endpoint choice for a service port: upstream's load_balance (routing-preference ranks,
// capacity weights) and target-port resolution.
#include "common/state/snapshot.h"

#include <random>

namespace ztunnel {

namespace {

const ServiceEndpoint* find_endpoint(std::span<const ServiceEndpoint> eps, const Workload& w) {
  for (const auto& e : eps) {
    if (e.workload == &w) return &e;
  }
  return nullptr;
}

std::optional<uint16_t> resolve_target_port(const Service& service, uint16_t service_port, const Workload& w,
                                            const PortMap* ep_ports) {
  if (ep_ports) {
    if (auto p = ep_ports->find(service_port)) return *p;
  }
  const uint16_t svc_target = service.ports.find(service_port).value_or(0);
  if (svc_target > 0) return svc_target;
  if (w.application_tunnel && w.application_tunnel->port != 0) return service_port;
  return std::nullopt;
}

// Number of leading routing preferences on which `src` and `dst` agree.
size_t rank_of(const LoadBalancer& lb, const Workload* src, const Workload& dst) {
  if (src == nullptr) return 0;
  size_t rank = 0;
  for (LoadBalancerScope scope : lb.routing_preferences) {
    bool same = false;
    switch (scope) {
      case LoadBalancerScope::Region:
        same = src->locality.region == dst.locality.region;
        break;
      case LoadBalancerScope::Zone:
        same = src->locality.zone == dst.locality.zone;
        break;
      case LoadBalancerScope::Subzone:
        same = src->locality.subzone == dst.locality.subzone;
        break;
      case LoadBalancerScope::Node:
        same = src->node == dst.node;
        break;
      case LoadBalancerScope::Cluster:
        same = src->cluster_id == dst.cluster_id;
        break;
      case LoadBalancerScope::Network:
        same = src->network == dst.network;
        break;
    }
    if (!same) break;
    ++rank;
  }
  return rank;
}

}  // namespace

std::optional<uint16_t> Snapshot::target_port(const Service& service, uint16_t service_port,
                                              const Workload& workload) const {
  const ServiceEndpoint* ep = find_endpoint(endpoints(service), workload);
  return resolve_target_port(service, service_port, workload, ep ? ep->port : nullptr);
}

std::optional<EndpointChoice> Snapshot::choose_endpoint(const Service& service, uint16_t service_port,
                                                        const Workload* source, uint64_t random,
                                                        ResolutionMode mode) const {
  const auto svc_target = service.ports.find(service_port);
  if (mode == ResolutionMode::Standard && !svc_target) return std::nullopt;
  const std::span<const ServiceEndpoint> eps = endpoints(service);

  // Port filter (upstream): a named (0) target port needs a per-endpoint override; in waypoint
  // mode an undefined port is fine only for application-tunnel waypoints.
  auto eligible = [&](const ServiceEndpoint& e) {
    if (mode == ResolutionMode::Standard) {
      return svc_target.value_or(0) != 0 || e.port->find(service_port).has_value();
    }
    return svc_target.has_value() || e.workload->application_tunnel.has_value();
  };

  const LoadBalancer* lb = service.load_balancer && service.load_balancer->mode != LoadBalancerMode::Standard
                               ? &*service.load_balancer
                               : nullptr;
  constexpr size_t kDropped = static_cast<size_t>(-1);
  auto rank = [&](const ServiceEndpoint& e) -> size_t {
    if (lb == nullptr) return 0;
    const size_t r = rank_of(*lb, source, *e.workload);
    if (lb->mode == LoadBalancerMode::Strict && r != lb->routing_preferences.size()) return kDropped;
    return r;
  };

  // Three passes over a handful of endpoints instead of a temporary vector: best rank, total
  // weight at that rank, then the weighted pick.
  size_t best = kDropped;
  for (const auto& e : eps) {
    if (!eligible(e)) continue;
    const size_t r = rank(e);
    if (r == kDropped) continue;
    if (best == kDropped || r > best) best = r;
  }
  if (best == kDropped) return std::nullopt;

  uint64_t total_weight = 0;
  uint64_t count = 0;
  for (const auto& e : eps) {
    if (!eligible(e) || rank(e) != best) continue;
    total_weight += e.workload->capacity;
    ++count;
  }
  // Upstream's weighted choice fails when every weight is 0: no upstream.
  if (total_weight == 0 || count == 0) return std::nullopt;
  uint64_t pick = random % total_weight;

  for (const auto& e : eps) {
    if (!eligible(e) || rank(e) != best) continue;
    const uint64_t w = e.workload->capacity;
    if (pick >= w) {
      pick -= w;
      continue;
    }
    auto port = resolve_target_port(service, service_port, *e.workload, e.port);
    if (!port) return std::nullopt;  // upstream: chosen endpoint without a usable port
    return EndpointChoice{e.workload, *port};
  }
  return std::nullopt;  // unreachable: pick < total
}

uint64_t lb_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace ztunnel
