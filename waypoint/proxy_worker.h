// Proxy::Shared and Proxy::Worker: the waypoint proxy's internals, shared by the files that
// implement them (not part of the public API; include waypoint/proxy.h instead):
//   - proxy.cc            Proxy's control-thread API: config and credential publication,
//                         drain / force close, the outlier sweep loop;
//   - listeners.cc        the HBONE listener: one SO_REUSEPORT acceptor per worker, TLS and
//                         HTTP/2 termination, the ingress role's entry (serve_gateway);
//   - stream_dispatch.cc  one CONNECT stream: what its authority names (HTTP service port,
//                         TCP service port, waypoint-bound pod, else 503 NR) and the L4 relay;
//   - request_serving.cc  the HTTP requests inside a stream (sniffed HTTP/1.1 or HTTP/2) and
//                         on an ingress connection: request flow, telemetry record, tracing.
// Threading: Shared is read by every worker and written only through atomics (config, TLS,
// cluster runtimes, drain flag, counters) from the control thread. A Worker belongs to one
// io_context: its members are touched only on that thread (no locks), and Proxy reaches it by
// posting. Invariant: every coroutine a Worker spawns holds the Worker (shared_from_this) or
// checks a weak_ptr first, so a worker never goes away under its own connections.
#pragma once

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hbone/server.h"
#include "waypoint/proxy.h"
#include "waypoint/request_flow.h"
#include "waypoint/router/random.h"
#include "waypoint/telemetry.h"
#include "waypoint/tracing/tracer.h"
#include "waypoint/upstream/cluster_state.h"
#include "waypoint/upstream/connector.h"
#include "waypoint/upstream/load_balancer.h"

namespace waypoint {

namespace http {
class H2Session;
}

inline constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);

// A config snapshot with no routes, clusters or workloads (what serves before the first xDS push).
ConfigSnapshotPtr empty_snapshot();

struct Proxy::Shared {
  Shared(ProxyOptions o, common::Identity id, Telemetry& t) : opts(std::move(o)), self(std::move(id)), telemetry(t) {}
  ProxyOptions opts;
  common::Identity self;
  Telemetry& telemetry;
  std::atomic<std::shared_ptr<const ConfigSnapshot>> config{empty_snapshot()};
  // Traffic-policy runtimes of the published config (set before `config`, see set_config).
  std::atomic<std::shared_ptr<const upstream::ClusterRuntimes>> clusters{std::make_shared<upstream::ClusterRuntimes>()};
  std::mutex publish_mu;  // set_config callers (control thread; tests may call from another)
  std::shared_ptr<boost::asio::steady_timer> sweep_timer;  // worker 0's; created by start()
  std::atomic<std::shared_ptr<const hbone::TlsContexts>> tls;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active_requests{0};
  std::atomic<int64_t> active_streams{0};
};

// Outlier detection's interval sweep (un-ejection), on worker 0: sleeps until the earliest
// cluster's next sweep, or until set_config() publishes new runtimes (which cancels `t`).
boost::asio::awaitable<void> sweep_loop(std::shared_ptr<Proxy::Shared> shared,
                                        std::shared_ptr<boost::asio::steady_timer> t);

// Counts a value up for a scope (live streams / requests for drain).
class Active {
 public:
  explicit Active(std::atomic<int64_t>& c) : c_(c) { c_.fetch_add(1, std::memory_order_relaxed); }
  ~Active() { c_.fetch_sub(1, std::memory_order_relaxed); }
  Active(const Active&) = delete;
  Active& operator=(const Active&) = delete;

 private:
  std::atomic<int64_t>& c_;
};

// The IP of "ip:port", "[v6]:port" or a bare IP; nullopt when it is none of these.
std::optional<boost::asio::ip::address> ip_of(std::string_view addr);

struct Proxy::Worker : std::enable_shared_from_this<Proxy::Worker> {
  Worker(boost::asio::io_context& io, std::shared_ptr<Shared> s);

  boost::asio::io_context& io;
  std::shared_ptr<Shared> shared;
  upstream::Connector connector;
  upstream::LoadBalancer lb;
  router::Random random;
  uint64_t active_faults = 0;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
  std::vector<std::weak_ptr<hbone::Connection>> inbound;
  std::vector<std::weak_ptr<http::H2Session>> inbound_h2;  // inner HTTP/2 sessions (GOAWAY on drain)

  // The worker's pieces one request uses (request_flow.h).
  FlowEnv env();

  // listeners.cc --------------------------------------------------------------------------
  boost::asio::awaitable<void> accept_loop();
  // One accepted HBONE connection: TLS + HTTP/2, each CONNECT stream to handle().
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket sock);
  // Drain: close the acceptor, GOAWAY inbound connections and inner HTTP/2 sessions, let the
  // upstream pool finish. force_close: close whatever is left (termination deadline).
  void drain();
  void force_close();

  // stream_dispatch.cc --------------------------------------------------------------------
  // One CONNECT stream: decide what the authority names, then serve HTTP or relay TCP.
  boost::asio::awaitable<void> handle(std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> peer);
  // The network RBAC of a TCP port (policies compiled for TCP by the control plane): nullopt =
  // allowed, else why not. Once per relayed connection.
  std::optional<std::string> tcp_denied(const Cluster& c, const hbone::PeerInfo& peer, const std::string& src,
                                        std::string_view authority);
  void refuse(hbone::Stream& s, const std::shared_ptr<const hbone::PeerInfo>& peer, const std::string& src, int status,
              const char* flag, const char* why);
  // L4 relay to `ep`. `sniffed`: the CONNECT was answered already and these bytes were read
  // while sniffing. `cluster`: the TCP cluster it was picked from ("" for pod-addressed traffic).
  boost::asio::awaitable<void> serve_tcp(std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> peer,
                                         std::string src, ConfigSnapshotPtr cfg, Endpoint ep,
                                         std::chrono::milliseconds connect_timeout, std::optional<std::string> sniffed,
                                         std::string cluster = {});
  // The telemetry record of one L4 connection before it is relayed (protocol "tcp").
  RequestRecord tcp_record(const hbone::PeerInfo& peer, const std::string& src, const ConfigSnapshot& cfg,
                           std::string_view authority, std::string cluster);
  // Counts a connection ended by a decision before any upstream (opened and closed, `flags`).
  void tcp_ended_early(RequestRecord rec, const char* flags);

  // request_serving.cc --------------------------------------------------------------------
  // What every request on one CONNECT stream (or ingress connection) shares.
  struct Downstream {
    std::shared_ptr<const hbone::PeerInfo> peer;
    std::string src;
    std::optional<boost::asio::ip::address> src_ip;
    std::string route_name;
    std::string hostname;
    std::string connect_authority;
    // connect_authority parsed once per stream (every request of the stream reads them).
    std::optional<boost::asio::ip::address> connect_ip;
    uint16_t connect_port = 0;
    std::optional<std::string> peer_principal;  // the peer identity's URI, when it has one
    bool gateway = false;  // ingress role: no tunnel, reporter="source"
    bool tls = false;      // ingress role: the client's connection was TLS (x-forwarded-proto)
  };
  // The telemetry record of one request, before routing.
  RequestRecord begin_record(const Downstream& d, const ConfigSnapshot& cfg, const http::Request& req);
  // The protocol-neutral part of one request: the request flow (or NR when the route
  // configuration went away since the CONNECT).
  boost::asio::awaitable<FlowResult> route(const Downstream& d, const ConfigSnapshotPtr& cfg, http::Request& req);
  // Tracing hooks (waypoint/tracing/tracer.h): the span is named as Istio's route decorator
  // names it, "<service host>:<port>/*".
  tracing::ActiveSpan trace_begin(const Downstream& d, const ConfigSnapshot& cfg, http::Request& req);
  void trace_end(tracing::ActiveSpan& span, const RequestRecord& rec);
  // After the response went out (`written`) or could not (the client went away: DC).
  // `request_bytes` / `response_bytes`: body bytes that crossed the waypoint each way.
  void finish_record(RequestRecord& rec, const ConfigSnapshot& cfg, const http::Request& req, FlowResult& fr,
                     bool written, std::chrono::steady_clock::time_point start, uint64_t request_bytes,
                     uint64_t response_bytes);
  // An HTTP service port: the inner protocol is sniffed as Envoy's AUTO codec and
  // http_inspector do (HTTP/2 preface, HTTP/1.x request line). Bytes that are neither go to
  // the port's TCP chain when it has one (a port of unknown protocol), else to the HTTP/1.1
  // codec, which answers 400.
  boost::asio::awaitable<void> serve_inner(std::shared_ptr<hbone::Stream> s, std::shared_ptr<Downstream> d,
                                           const Cluster* tcp_cluster, ConfigSnapshotPtr cfg);
  boost::asio::awaitable<void> serve_http1(http::AnyStream down, http::ReadBuffer buf, std::shared_ptr<Downstream> d);
  // HTTP/2 with prior knowledge inside the tunnel or on an ingress connection: one session,
  // its streams served concurrently, each through the same request flow as HTTP/1.1.
  boost::asio::awaitable<void> serve_h2(http::AnyStream down, std::shared_ptr<Downstream> d, std::string initial);
  boost::asio::awaitable<void> serve_h2_request(std::shared_ptr<http::H2Session> sess, int32_t id, http::Request req,
                                                std::shared_ptr<Downstream> d);
  // Ingress role: one downstream TCP connection from outside the mesh, HTTP/1.1 or HTTP/2
  // (sniffed: the h2 preface, as serve_inner) through the same request flow as a tunnelled one
  // (no peer identity: principals never match).
  boost::asio::awaitable<void> serve_gateway(boost::asio::ip::tcp::socket sock, std::string route_name,
                                             std::optional<boost::asio::ip::tcp::endpoint> remote);
};

}  // namespace waypoint
