// grpc_status_of_http(): Envoy's Grpc::Utility::httpToGrpcStatus, the gRPC status a gRPC client
// is told when the answer is an HTTP error (a local reply, a fault-injection abort): 404
// UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, ... and UNKNOWN for the rest. One table for the
// request path and the fault filter.
// Threading: pure.
#pragma once

#include <cstdint>

namespace waypoint::router {

uint32_t grpc_status_of_http(uint32_t http_status);

}  // namespace waypoint::router
