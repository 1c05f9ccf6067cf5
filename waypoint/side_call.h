// A unary gRPC call from the data path to a side service — the global rate limit service
// (ShouldRateLimit) and an ext_authz provider (Check) — over an HTTP/2 session from the
// waypoint's connector (HBONE or plain TCP, as for any upstream). One place for the deadline,
// the cancel on expiry and the gRPC status rules, so both filters fail the same way.
//
// Threading: a coroutine on the calling worker's executor (env.exec); no locks.
// Invariants: `timeout` covers connecting and the call; a connection still being set up when it
// fires is left to finish for later calls (its own connect timeout bounds it). Every failure is
// an error value whose text starts with `who` ("rate limit service ..."); never an exception.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"

namespace waypoint {

struct FlowEnv;
struct Cluster;
namespace upstream {
struct Target;
}

// POSTs the gRPC-framed `body` to `path` with `authority` and returns the answer's message (the
// gRPC frame's payload) when the stream ended with HTTP 200 and grpc-status 0.
boost::asio::awaitable<common::Result<std::string>> unary_grpc_call(FlowEnv& env, const Cluster& cluster,
                                                                     const upstream::Target& target,
                                                                     std::string authority, std::string_view path,
                                                                     std::chrono::milliseconds timeout,
                                                                     std::string body, std::string_view who);

}  // namespace waypoint
