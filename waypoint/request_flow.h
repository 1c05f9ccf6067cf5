// The life of one HTTP request at the waypoint, after the inner codec has read it whole and
// before the response is written back: x-request-id, route selection (NR), redirect / direct
// response, CORS, the fault filter (delay DI, then abort FI: an aborted request never reaches
// the router), rewrites and header mutations, cluster choice (NC) and endpoint choice (UH),
// then attempts over the upstream connector under the route timeout and per-try timeouts,
// with retries as the route's policy says (x-envoy-attempt-count, back-off, previous-host
// avoidance), and local replies with Envoy's status, body and response flag (UF, UC, UT, URX).
// DestinationRule traffic policy (upstream/cluster_state.h): circuit breakers (503 UO), outlier
// reports per attempt, priority/ejection-aware and consistent-hash endpoint choice.
// Mirrors are fired and forgotten. The routing decisions themselves are waypoint/router's.
// Threading: runs on one worker's executor; the FlowEnv members are that worker's own.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>

#include "hbone/tls_glue.h"
#include "waypoint/authz/authz_filter.h"
#include "waypoint/config_source.h"
#include "waypoint/http/message.h"
#include "waypoint/naming.h"
#include "waypoint/router/random.h"
#include "waypoint/upstream/connector.h"
#include "waypoint/upstream/load_balancer.h"
#include "common/state/snapshot.h"

namespace waypoint::upstream {
struct ClusterRuntimes;
}

namespace waypoint {

// The worker's pieces a request uses.
struct FlowEnv {
  boost::asio::any_io_executor exec;
  upstream::Connector* connector = nullptr;
  upstream::LoadBalancer* lb = nullptr;
  router::Random* random = nullptr;
  uint64_t* active_faults = nullptr;
  hbone::TlsContext client_tls;  // the waypoint's current client context (may be null)
  std::string self_identity;     // spiffe URI of the waypoint
  // The request buffer limit for retries and mirrors (Envoy's per_connection_buffer_limit_bytes).
  uint32_t max_body = 1u << 20;
  // Traffic-policy state of the clusters (breakers, ejections, hash tables); may be null.
  std::shared_ptr<const upstream::ClusterRuntimes> clusters;
  // Keeps whatever owns the members above alive for fire-and-forget mirrors.
  std::shared_ptr<void> owner;
};

struct FlowResult {
  http::Response response;
  std::string flags = "-";  // Envoy response flags, comma-joined
  std::string route_name;
  std::string cluster;
  std::string upstream_host;  // "ip:port" of the last attempt
  const Endpoint* endpoint = nullptr;
  uint32_t attempts = 0;
  bool from_upstream = false;  // the response is the upstream's (else a local reply)
  std::vector<authz::ShadowResult> rbac_shadow;  // dry-run RBAC results (telemetry)
  // Set when the upstream answered 101 to an upgrade: the connection to relay bytes over.
  std::unique_ptr<upstream::Conn> upgraded;
  // The request body as the flow took it over (null: no body, or not routed to an upstream).
  std::shared_ptr<http::ReplayBody> request_body;
};

// `downstream` feeds the L7 authorization filters (authz/authz_filter.h); null = none configured
// are evaluated against an unknown peer (tests that exercise routing only pass null).
boost::asio::awaitable<FlowResult> serve_request(FlowEnv& env, ConfigSnapshotPtr config, const RouteConfig& routes,
                                                 http::Request& request, std::string_view source_ip,
                                                 const authz::Downstream* downstream = nullptr);

// A local reply to a gRPC request as Envoy sends it: HTTP 200, content-type application/grpc,
// grpc-status from the HTTP status (router/grpc_status.h), grpc-message = body, no body
// (trailers-only). Replies that already carry grpc-status (fault aborts with a gRPC code) and
// non-errors are left alone.
void grpcify_local_reply(http::Response& r);

// Envoy's local reply: status, text/plain body (may be empty).
http::Response local_reply(uint16_t status, std::string body);

// Where an endpoint is reached: HBONE (with the pod's identity) when the workload model knows
// the IP as an HBONE workload, else plain TCP. nullopt when the address is not an IP.
std::optional<upstream::Target> make_target(const ConfigSnapshot& config, const Endpoint& endpoint);

// UUIDv4 text for x-request-id.
std::string make_request_id(router::Random& random);

}  // namespace waypoint
