// PortGuard: the destination ports that belong to ztunnel itself in the network namespace a
// proxy serves, so neither inbound HBONE (a CONNECT :authority) nor the plaintext capture
// path (15006, SO_ORIGINAL_DST) can be used to reach ztunnel's own listeners through the mesh.
//
// Which ports: upstream refuses {15001, 15006, 15008} ("illegal ports"). We also refuse the
// DNS proxy (15053) everywhere, and — when ztunnel shares the workload's netns (dedicated
// mode) — admin, stats and readiness (15000/15020/15021, or the ports configured in
// ADMIN_ADDR / STATS_ADDR / READINESS_ADDR): an allowed peer must never read /metrics or
// /config_dump through a tunnel. In shared (in-pod) mode those three live in ztunnel's own
// netns, not the pod's, so the pod's app may use them.
//
// Refusals are counted in `istio_inbound_self_target_rejections_total{listener,port}`.
//
// Threading: built once per proxy on the control thread, then read-only; refused() is a
// lookup in a small sorted array; count() is a relaxed atomic increment (any worker).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/admin/metrics.h"
#include "ztunnel/config.h"

namespace ztunnel {

class PortGuard {
 public:
  enum class Listener { InboundHbone, InboundPlaintext };

  // Ports for `cfg`'s mode. `registry` may be null (tests): refusals are then not counted.
  PortGuard(const Config& cfg, common::metrics::Registry* registry);

  bool refused(uint16_t port) const;
  // One refusal of `port` on `listener`.
  void count(Listener listener, uint16_t port) const;
  const std::vector<uint16_t>& ports() const { return ports_; }

 private:
  std::vector<uint16_t> ports_;  // sorted, unique
  common::metrics::CounterFamily* rejections_ = nullptr;
};

// The port of "host:port", "[v6]:port" or "localhost:port"; 0 when there is none.
uint16_t port_of_address(std::string_view addr);

}  // namespace ztunnel
