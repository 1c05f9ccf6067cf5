#include "ztunnel/proxy/port_guard.h"

#include <algorithm>
#include <charconv>
#include <string>

namespace ztunnel {

uint16_t port_of_address(std::string_view addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= addr.size()) return 0;
  auto digits = addr.substr(colon + 1);
  unsigned v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size() || v == 0 || v > 65535) return 0;
  return static_cast<uint16_t>(v);
}

PortGuard::PortGuard(const Config& cfg, common::metrics::Registry* registry) {
  ports_ = {kOutboundPort, kInboundPlaintextPort, kInboundHbonePort, kDnsPort};
  if (cfg.proxy_mode == ProxyMode::Dedicated) {
    // The fixed defaults too: a configured address moves the listener, but a peer probing the
    // well-known port must not find an app we would then expose in its place by accident.
    for (uint16_t p : {kAdminPort, kStatsPort, kReadinessPort}) ports_.push_back(p);
    for (const auto* a : {&cfg.admin_addr, &cfg.stats_addr, &cfg.readiness_addr}) {
      if (uint16_t p = port_of_address(*a)) ports_.push_back(p);
    }
  }
  std::sort(ports_.begin(), ports_.end());
  ports_.erase(std::unique(ports_.begin(), ports_.end()), ports_.end());
  if (registry != nullptr) {
    rejections_ = &registry->counter("istio_inbound_self_target_rejections_total",
                                     "Inbound connections refused because their destination port is one of "
                                     "ztunnel's own listeners",
                                     {"listener", "port"});
  }
}

bool PortGuard::refused(uint16_t port) const {
  return std::binary_search(ports_.begin(), ports_.end(), port);
}

void PortGuard::count(Listener listener, uint16_t port) const {
  if (rejections_ == nullptr) return;
  std::string p = std::to_string(port);
  rejections_->get({listener == Listener::InboundHbone ? "inbound_hbone" : "inbound_plaintext", p})->inc();
}

}  // namespace ztunnel
