// Policy routing of istio-cni's in-pod rules, programmed over netlink (libnl-route-3) instead
// of the `ip` command, so the node agent's image needs no iproute2 and failures come back as
// typed errors (which operation, which family, libnl's code):
//   ip rule add fwmark 0x111/0xfff pref 32764 lookup 100
//   ip route replace local 0.0.0.0/0 (::/0) dev lo table 100
// Replies of connections ztunnel accepted for the pod carry 0x111 (restored from conntrack by
// the mangle rules) and are routed to the local stack, i.e. back to ztunnel's socket.
//
// Each call runs on a short-lived thread that setns()es into the pod's network namespace (by
// fd), opens its own netlink socket there and exits, so the caller's thread and namespace are
// never touched. Blocking (a few netlink round trips); call from one thread at a time per netns.
#pragma once

#include <cstdint>
#include <string>

namespace cni {

enum class NetlinkOp {
  EnterNetns,
  Connect,
  ListRules,
  AddRule,
  DeleteRule,
  ListRoutes,
  ReplaceRoute,
  DeleteRoute,
  ListAddrs
};

struct NetlinkError {
  NetlinkOp op;
  int family = 0;  // 4 or 6; 0 when not family-specific
  int code = 0;    // libnl error (NLE_*, positive) or errno for EnterNetns
  std::string detail;
  std::string describe() const;  // "netlink: adding the IPv4 fwmark rule: Object exists (...)"
};

// An outcome: ok() or the error. T = bool for queries.
template <typename T>
struct NetlinkResult {
  bool ok_ = true;
  T value{};
  NetlinkError error{};
  bool ok() const { return ok_; }
  static NetlinkResult success(T v) { return NetlinkResult{true, v, {}}; }
  static NetlinkResult failure(NetlinkError e) { return NetlinkResult{false, T{}, std::move(e)}; }
};
using NetlinkStatus = NetlinkResult<bool>;

struct PolicyRouting {
  uint32_t fwmark = 0x111;
  uint32_t mask = 0xfff;
  uint32_t priority = 32764;
  uint32_t table = 100;
};

// Adds the rule when missing and replaces the table's local default route (idempotent).
NetlinkStatus install_policy_routing(int netns_fd, int family, const PolicyRouting& pr = {});
// Deletes every rule of that priority pointing at the table, and every route of the table.
NetlinkStatus remove_policy_routing(int netns_fd, int family, const PolicyRouting& pr = {});
// value = both the rule and the local default route of the table are present.
NetlinkStatus policy_routing_present(int netns_fd, int family, const PolicyRouting& pr = {});
// value = the namespace's loopback has ::1 (IPv6 enabled there).
NetlinkStatus has_ipv6_loopback(int netns_fd);

}  // namespace cni
