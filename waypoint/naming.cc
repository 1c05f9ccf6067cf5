#include "waypoint/naming.h"

namespace waypoint {

std::string http_route_name(uint16_t port, std::string_view hostname) {
  return "inbound-vip|" + std::to_string(port) + "|http|" + std::string(hostname);
}

std::string tcp_cluster_name(uint16_t port, std::string_view hostname) {
  return "inbound-vip|" + std::to_string(port) + "|tcp|" + std::string(hostname);
}

}  // namespace waypoint
