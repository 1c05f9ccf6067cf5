// retry_on_bit(): Envoy's retry_on condition names ("5xx", "gateway-error", "reset", the gRPC
// statuses, ...) to the model's retry_on bits (route_model.h), the one table both the xDS
// converter (which NACKs unknown names) and parse_retry_on (router.h) read.
// Threading: pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace waypoint::router {

// nullopt when `name` is not a condition the waypoint implements.
std::optional<uint32_t> retry_on_bit(std::string_view name);

}  // namespace waypoint::router
