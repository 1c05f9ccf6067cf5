#include "controlplane/traffic_policy.h"

namespace controlplane {
namespace {

// GetPortLevelTrafficPolicy: the port's entry replaces every component (no inheritance).
const DrPolicyComponents* port_level(const DrTrafficPolicy& p, uint16_t port) {
  for (const auto& [number, components] : p.port_level) {
    if (number == port) return &components;
  }
  return nullptr;
}

}  // namespace

DrPolicyComponents effective_traffic_policy(const std::optional<DrTrafficPolicy>& top,
                                            const std::optional<DrTrafficPolicy>& subset, uint16_t port) {
  DrPolicyComponents merged;
  if (top) {
    const DrPolicyComponents* pl = port_level(*top, port);
    merged = pl ? *pl : top->base;
  }
  if (!subset) return merged;
  const DrPolicyComponents* spl = port_level(*subset, port);
  const DrPolicyComponents& s = spl ? *spl : subset->base;
  const bool replace_all = spl != nullptr;
  if (s.connection_pool || replace_all) merged.connection_pool = s.connection_pool;
  if (s.outlier_detection || replace_all) merged.outlier_detection = s.outlier_detection;
  if (s.load_balancer || replace_all) merged.load_balancer = s.load_balancer;
  if (s.tls_mode || replace_all) merged.tls_mode = s.tls_mode;
  return merged;
}

}  // namespace controlplane
