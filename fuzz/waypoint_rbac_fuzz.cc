// libFuzzer target: the waypoint's RBAC per-filter config converter (waypoint/xds/rbac_convert.h),
// which parses bytes from the xDS server, and the evaluator over whatever it accepts. The first
// byte picks the filter instance key, the next bytes are a request, the rest is the serialized
// RBACPerRoute. Contract: no crash, no unbounded recursion (validation caps nesting), and an
// accepted config is evaluable for any request; a DENY decision always names its policy.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "waypoint/authz/rbac_eval.h"
#include "waypoint/xds/rbac_convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  static const char* const kKeys[] = {"envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow",
                                      "envoy.filters.http.rbac.audit", "envoy.filters.http.rbac"};
  const char* key = kKeys[in.ConsumeIntegralInRange<int>(0, 3)];
  waypoint::router::HttpRequest req;
  req.method = in.ConsumeRandomLengthString(8);
  req.path = in.ConsumeRandomLengthString(32);
  req.authority = in.ConsumeRandomLengthString(16);
  req.headers.add(in.ConsumeRandomLengthString(8), in.ConsumeRandomLengthString(16));
  waypoint::authz::RequestContext ctx;
  ctx.request = &req;
  if (in.ConsumeBool()) ctx.peer_principal = in.ConsumeRandomLengthString(48);
  ctx.source_ip = boost::asio::ip::address_v4(in.ConsumeIntegral<uint32_t>());
  ctx.destination_port = in.ConsumeIntegral<uint16_t>();
  const std::string bytes = in.ConsumeRemainingBytesAsString();

  waypoint::authz::RbacFilters filters;
  auto st = waypoint::xds::parse_rbac_per_route(key, bytes, filters);
  if (!st.ok()) {
    if (st.error().empty()) std::abort();
    return 0;
  }
  const auto d = waypoint::authz::authorize(filters, ctx);
  if (!d.allowed && filters.deny && d.policy.empty() && !filters.allow) std::abort();
  return 0;
}
