// Connector: the upstream connections of one worker. An endpoint in the mesh (its pod is an
// HBONE workload in the workload model) is reached over HBONE: a CONNECT stream to
// podIP:15008 with `:authority podIP:targetPort` and the waypoint's own certificate, through
// this worker's hbone::Pool (many streams per TLS connection). Any other endpoint gets plain TCP.
// Each upstream HTTP/1.1 connection (a tunnel stream or a socket) is kept alive after a
// complete exchange and reused for the next request to the same endpoint. HTTP/2 clusters
// (http2/grpc ports) share one multiplexed h2c connection per endpoint instead (acquire_h2):
// a new one replaces it only when it is full, got GOAWAY or died; the old one is retired
// (GOAWAY, closes after its streams).
// Threading: one Connector per worker, used only on that worker's executor; no locks.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/identity/identity.h"
#include "common/result.h"
#include "hbone/pool.h"
#include "waypoint/http/any_stream.h"
#include "waypoint/http/http1.h"

namespace waypoint::http {
class H2Session;
}

namespace waypoint::upstream {

struct Target {
  boost::asio::ip::tcp::endpoint address;  // podIP:targetPort
  std::string key;                         // "ip:port"
  bool hbone = false;
  std::optional<common::Identity> identity;  // HBONE: the identity the pod's ztunnel presents
};

// One upstream HTTP/1.1 connection and its read buffer.
struct Conn {
  Conn(http::AnyStream s, std::string k) : stream(std::move(s)), key(std::move(k)) {}
  http::AnyStream stream;
  http::ReadBuffer buf;
  std::string head_buffer;  // write_request_stream's, reused request after request
  std::string key;
  bool reused = false;
  // Traffic policy (cluster_state.h): the circuit-breaker connection count this connection
  // holds (released when it closes), how many requests it served and may serve (0 = no
  // limit), and how long it may sit idle in the keep-alive pool.
  std::shared_ptr<void> cx_hold;
  uint32_t uses = 0;
  uint32_t max_uses = 0;
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::steady_clock::time_point idle_since{};
};

enum class ConnectError : uint8_t { None, Failed, NoCredentials };

class Connector {
 public:
  struct Options {
    uint16_t hbone_port = 15008;  // the destination ztunnel's port (tests: a loopback port)
    uint32_t mark = 0;
    size_t max_idle_per_endpoint = 32;
    uint32_t pool_max_streams = 100;
    std::chrono::milliseconds pool_idle{std::chrono::minutes(5)};
    uint32_t max_body = 1u << 20;  // HTTP/2 upstream responses
  };
  Connector(boost::asio::any_io_executor exec, Options opts);

  // `tls`: the waypoint's current client context (rotated certificates arrive as new ones);
  // `self`: the waypoint's identity (pool key).
  boost::asio::awaitable<common::Result<std::unique_ptr<Conn>>> acquire(const Target& target, hbone::TlsContext tls,
                                                                        const std::string& self,
                                                                        std::chrono::milliseconds connect_timeout);
  // The endpoint's multiplexed HTTP/2 connection (opened when there is none usable). One
  // without streams for `idle_timeout` (the cluster's idle_timeout, Envoy's default 1 h) is
  // retired (GOAWAY, closed) and forgotten.
  boost::asio::awaitable<common::Result<std::shared_ptr<http::H2Session>>> acquire_h2(
      const Target& target, hbone::TlsContext tls, const std::string& self, std::chrono::milliseconds connect_timeout,
      std::chrono::milliseconds idle_timeout = std::chrono::hours(1));
  // After a complete exchange on a keep-alive connection. A connection that served
  // max_uses requests is closed instead; a pending request waiting here is woken.
  void release(std::unique_ptr<Conn> conn);
  // The pieces of acquire() for the circuit-breaker gate (pool_gate.h): a kept-alive
  // connection to the endpoint that is still usable and idle for less than its idle_timeout
  // (nullptr if none), and a new connection.
  std::unique_ptr<Conn> take_idle(const std::string& key);
  boost::asio::awaitable<common::Result<std::unique_ptr<Conn>>> connect(const Target& target, hbone::TlsContext tls,
                                                                        const std::string& self,
                                                                        std::chrono::milliseconds connect_timeout);
  // Waits until a connection is released on this worker, or `at_most` passes (capacity
  // freed on another worker is only seen by polling).
  boost::asio::awaitable<void> wait_release(std::chrono::milliseconds at_most);
  // Closes one idle connection to an endpoint other than `key` (frees its connection count,
  // so a pool with no connection is not starved by idle ones elsewhere). false if none.
  bool close_idle_except(const std::string& key);
  // Drain: GOAWAY pooled HBONE connections, drop idle keep-alives.
  void drain();
  // Shutdown (drain complete or termination deadline): end every upstream connection now,
  // including the pooled HBONE connections drain() only sent GOAWAY on. They must be closed
  // before the worker stops: an HBONE connection and its open streams hold each other.
  void force_close();
  size_t idle() const;
  size_t h2_connections() const;

 private:
  boost::asio::awaitable<common::Result<http::AnyStream>> open(const Target& target, hbone::TlsContext tls,
                                                               const std::string& self,
                                                               std::chrono::milliseconds connect_timeout);
  boost::asio::awaitable<void> watch_idle(std::weak_ptr<http::H2Session> session, std::string key,
                                          std::chrono::milliseconds idle_timeout,
                                          std::shared_ptr<boost::asio::steady_timer> timer);
  boost::asio::any_io_executor exec_;
  Options opts_;
  std::vector<std::weak_ptr<boost::asio::steady_timer>> idle_watchers_;
  std::shared_ptr<hbone::Pool> pool_;
  std::map<std::string, std::vector<std::unique_ptr<Conn>>> idle_;
  std::map<std::string, std::shared_ptr<http::H2Session>> h2_;
  std::vector<std::weak_ptr<boost::asio::steady_timer>> waiters_;
  bool draining_ = false;
};

}  // namespace waypoint::upstream
