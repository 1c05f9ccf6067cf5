#include "waypoint/serving_config.h"

namespace waypoint {

namespace {
template <typename Map>
auto find_in(const Map& m, std::string_view name) -> decltype(m.begin()->second.get()) {
  auto it = m.find(std::string(name));
  return it == m.end() ? nullptr : it->second.get();
}
}  // namespace

const RouteConfig* ServingConfig::find_route(std::string_view name) const { return find_in(routes, name); }
const Cluster* ServingConfig::find_cluster(std::string_view name) const { return find_in(clusters, name); }

const ClusterLoadAssignment* ServingConfig::find_endpoints(const Cluster& cluster) const {
  const std::string& key = cluster.eds_service_name.empty() ? cluster.name : cluster.eds_service_name;
  if (auto* cla = find_in(endpoints, key)) return cla;
  return cluster.load_assignment ? &*cluster.load_assignment : nullptr;
}

std::string http_route_name(uint16_t port, std::string_view hostname) {
  return "inbound-vip|" + std::to_string(port) + "|http|" + std::string(hostname);
}

std::string tcp_cluster_name(uint16_t port, std::string_view hostname) {
  return "inbound-vip|" + std::to_string(port) + "|tcp|" + std::string(hostname);
}

}  // namespace waypoint
