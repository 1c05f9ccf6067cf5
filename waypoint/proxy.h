// Proxy: the waypoint's data path on the runtime's workers.
//   - one SO_REUSEPORT acceptor per worker on the HBONE port (15008): TLS 1.3 mutual auth with
//     the waypoint's certificate; the peer's SPIFFE SAN is the request's source identity;
//   - each CONNECT stream: `:authority` = service VIP:port (or pod IP:port) selects what is
//     served. A service port with a route configuration (`inbound-vip|P|http|H`) is HTTP: the
//     tunnel carries HTTP/1.1 requests, each run through request_flow; a port with only a TCP
//     cluster (`inbound-vip|P|tcp|H`) is relayed at L4. A pod that names a waypoint is reached
//     directly at L4. Anything else is refused with 503 (flag NR) — never forwarded, so a
//     misdirected service can never loop back through a waypoint;
//   - upstream: per-worker connector (HBONE pool / keep-alive), least-request LB;
//   - telemetry, access log and (with a tracer) a span per request; drain = GOAWAY + in-flight requests finish.
// Threading: construct, start(), set_config(), set_credentials(), drain(), force_close() on the
// control thread; connections live on one worker each. Config and TLS contexts reach workers
// as atomically published immutable snapshots (one load per stream/request).
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json_fwd.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/identity/identity.h"
#include "common/result.h"
#include "common/runtime.h"
#include "common/identity/tls.h"
#include "hbone/tls_glue.h"
#include "waypoint/config_source.h"
#include "waypoint/naming.h"
#include "waypoint/telemetry.h"
#include "common/state/snapshot.h"

namespace waypoint {

namespace tracing {
class Tracer;
}

struct ProxyOptions {
  std::string listen_address = "::";  // "::" = dual stack; "127.0.0.1" in tests
  uint16_t port = 15008;              // 0 = pick a free one (tests)
  uint16_t upstream_hbone_port = 15008;
  uint32_t mark = 0;
  uint32_t max_body = 1u << 20;
  uint32_t pool_max_streams = 100;
  std::chrono::milliseconds pool_idle{std::chrono::minutes(5)};
  // Zipkin tracer (waypoint/tracing); null = no tracing, trace headers pass through untouched.
  std::shared_ptr<tracing::Tracer> tracer;
  // Ingress gateway role (PROXY_TYPE=router): start() opens no HBONE listener; downstream
  // connections arrive through serve_gateway() from waypoint/ingress/listeners.
  bool gateway = false;
};

class Proxy {
 public:
  Proxy(common::Runtime& rt, ProxyOptions opts, common::Identity self, Telemetry& telemetry);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  common::Status start();
  uint16_t port() const { return bound_port_; }

  void set_config(ConfigSnapshotPtr config);
  ConfigSnapshotPtr config() const;
  // Ingress gateway role: serve one accepted plain-TCP downstream connection (HTTP/1.1) with
  // the RouteConfiguration `route_name`; `sock` belongs to worker `worker`'s io_context.
  // `remote`: the client's address when `sock` is not the client's own connection (the
  // decrypted side of a TLS terminator: set = the client used TLS, x-forwarded-proto https).
  // Any thread; the connection then lives on that worker.
  void serve_gateway(size_t worker, boost::asio::ip::tcp::socket sock, std::string route_name,
                     std::optional<boost::asio::ip::tcp::endpoint> remote = std::nullopt);
  size_t workers() const { return workers_.size(); }
  common::Status set_credentials(std::shared_ptr<const common::tls::Credentials> creds);
  bool has_credentials() const;

  void drain();
  void force_close();
  // Per cluster: circuit-breaker counts and limits, hosts with their outlier state (the
  // waypoint's /config_dump "upstreamClusters").
  nlohmann::json cluster_status() const;
  int64_t active_requests() const;
  int64_t active_streams() const;

  struct Shared;
  struct Worker;

 private:
  common::Runtime& rt_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::shared_ptr<Worker>> workers_;
  uint16_t bound_port_ = 0;
};

}  // namespace waypoint
