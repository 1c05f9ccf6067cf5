// Istio's names for the resources of one service port at a waypoint (facts §3.3-3.4), which is
// how the data path finds what to serve for a CONNECT :authority (VIP:port -> service -> names).
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace waypoint {

std::string http_route_name(uint16_t port, std::string_view hostname);   // inbound-vip|P|http|H
std::string tcp_cluster_name(uint16_t port, std::string_view hostname);  // inbound-vip|P|tcp|H

// Not istiod's: our controlplane's carrier of the network RBAC for pod-addressed traffic (a
// workload bound to the waypoint, relayed without a service cluster): a STATIC cluster without
// endpoints whose metadata holds the policies that target the waypoint itself, compiled for TCP
// (as on `inbound-vip|P|tcp|H`). Absent = no such policy (the connection is relayed).
inline constexpr std::string_view kPodTcpRbacCluster = "inbound-pod|tcp";

}  // namespace waypoint
