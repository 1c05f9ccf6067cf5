// libFuzzer target: the LOCAL_XDS YAML parser (yaml-cpp + our strict field reader), then the
// snapshot build, routing and /config_dump over whatever parsed. Must never crash, hang or
// leak an exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/rbac/authz.h"
#include "common/model/local_config.h"
#include "common/state/snapshot.h"
#include "ztunnel/state/route.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto cfg = ztunnel::parse_local_config(input);
  if (!cfg.ok()) {
    if (cfg.error().empty()) std::abort();  // every rejection must say why
    return 0;
  }
  auto snap = ztunnel::Snapshot::from_local_config(std::move(cfg).value());
  // Strict dump: the parser only admits valid UTF-8, so this must not throw.
  (void)snap->to_json().dump();

  // Exercise routing and authorization from every workload to every address we know.
  size_t budget = 256;
  for (const auto& src_ptr : snap->workloads()) {
    const ztunnel::Workload& src = *src_ptr;
    for (const auto& dst_ptr : snap->workloads()) {
      const ztunnel::Workload& dst = *dst_ptr;
      for (const auto& ip : dst.addresses) {
        if (budget-- == 0) return 0;
        auto route = ztunnel::route_outbound(*snap, src, ip, 80, budget * 7919);
        (void)route;
        ztunnel::ConnectionInfo c{ip, ip, 80, src.identity()};
        (void)ztunnel::evaluate(*snap, c, dst);
      }
    }
    for (const auto& svc_ptr : snap->services()) {
      const ztunnel::Service& svc = *svc_ptr;
      for (const auto& vip : svc.vips) {
        if (budget-- == 0) return 0;
        for (const auto& [port, target] : svc.ports) {
          (void)target;
          (void)ztunnel::route_outbound(*snap, src, vip.ip, port, budget);
        }
      }
    }
  }
  return 0;
}
