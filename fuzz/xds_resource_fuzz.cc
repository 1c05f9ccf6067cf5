// libFuzzer target: xDS resource bodies as ztunnel receives them from a control plane
// (istio.workload.Address and istio.security.Authorization, serialized protobuf) through
// common/model/xds/xds_convert.h, with the resource name beside them. A rejection must carry its reason
// (it is what the NACK says); an accepted resource goes through the same snapshot build,
// /config_dump, routing and authorization evaluation as a real one.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/rbac/authz.h"
#include "common/state/snapshot.h"
#include "common/model/xds/xds_convert.h"
#include "ztunnel/state/route.h"

namespace {

void must_say_why(const std::string& error) {
  if (error.empty()) std::abort();  // every rejection names its reason (it becomes the NACK)
}

void exercise(const ztunnel::SnapshotConstSharedPtr& snap) {
  (void)snap->to_json().dump();
  for (const auto& src : snap->workloads()) {
    for (const auto& ip : src->addresses) {
      (void)ztunnel::route_outbound(*snap, *src, ip, 80, 7);
      ztunnel::ConnectionInfo c{ip, ip, 80, src->identity()};
      (void)ztunnel::evaluate(*snap, c, *src);
    }
    for (const auto& svc : snap->services()) {
      for (const auto& vip : svc->vips) (void)ztunnel::route_outbound(*snap, *src, vip.ip, 80, 3);
    }
  }
}

}  // namespace

// Input: [mode][name length n][n bytes of resource name][body]. mode bit 0 picks the type.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const size_t n = std::min<size_t>(data[1], size - 2);
  const std::string_view name(reinterpret_cast<const char*>(data + 2), n);
  const std::string_view body(reinterpret_cast<const char*>(data + 2 + n), size - 2 - n);

  if (mode & 1) {
    auto a = ztunnel::parse_authorization_resource(name, body);
    if (!a) {
      must_say_why(a.error());
      return 0;
    }
    exercise(ztunnel::Snapshot::build({}, {}, {a.value()}, 1));
    return 0;
  }
  auto v = ztunnel::parse_address_resource(name, body);
  if (!v) {
    must_say_why(v.error());
    return 0;
  }
  std::vector<ztunnel::Workload> ws;
  std::vector<ztunnel::Service> ss;
  if (auto* w = std::get_if<ztunnel::Workload>(&v.value())) {
    ws.push_back(*w);
    ss.push_back(ztunnel::Service{});  // an empty service beside it: lookups across both maps
  } else {
    ss.push_back(std::get<ztunnel::Service>(v.value()));
  }
  exercise(ztunnel::Snapshot::build(std::move(ws), std::move(ss), {}, 1));
  return 0;
}
