// The circuit-breaker gate in front of the upstream HTTP/1.1 connection pool, as Envoy's pool
// applies max_connections and max_pending_requests:
//   1. a kept-alive idle connection to the endpoint is used at once;
//   2. else a new connection is opened if the cluster is under max_connections (an idle
//      connection to another endpoint of this worker is closed to make room first);
//   3. else the request waits as pending (under max_pending_requests; over it: overflow,
//      503 UO) until a connection is released or capacity frees, or the attempt is cancelled.
// The returned connection carries its connection count (released when it closes) and the
// cluster's max_requests_per_connection / idle_timeout.
// Threading: one worker's executor (its Connector); breaker counts are process-wide atomics.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <string>

#include "waypoint/upstream/cluster_state.h"
#include "waypoint/upstream/connector.h"

namespace waypoint::upstream {

struct GateResult {
  std::unique_ptr<Conn> conn;
  bool overflow = false;   // max_pending_requests reached
  bool cancelled = false;  // `cancelled()` turned true while pending
  std::string error;       // connect failure
};

boost::asio::awaitable<GateResult> acquire_gated(Connector& connector, const std::shared_ptr<ClusterState>& state,
                                                 const Cluster& cluster, const Target& target, hbone::TlsContext tls,
                                                 const std::string& self, std::function<bool()> cancelled);

}  // namespace waypoint::upstream
