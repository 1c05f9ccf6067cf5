// AdminServers: the three operational listeners wired to their routes.
//   admin     (127.0.0.1:15000, control loop): /, /config_dump, /logging, /quitquitquit
//   stats     ([::]:15020, control loop):      /metrics, /stats/prometheus
//   readiness ([::]:15021, a worker loop):     /healthz/ready
// Readiness is served from a data-plane worker on purpose (as upstream): if workers are stuck,
// the probe fails, whereas the control loop could still look healthy.
//
// Threading: start() on the thread owning `control` (or before it runs). Hooks run on the
// loop serving the request: config_dump and shutdown on control; readiness is read through the
// thread-safe Readiness. stop() from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/admin/http_admin.h"
#include "common/admin/metrics.h"
#include "common/admin/readiness.h"
#include "common/result.h"

namespace common {

struct AdminAddresses {
  std::string admin = "127.0.0.1:15000";
  std::string stats = "[::]:15020";
  std::string readiness = "[::]:15021";
};

struct AdminHooks {
  // Body of GET /config_dump (JSON). Unset -> "{}".
  std::function<std::string()> config_dump;
  // Called (posted to control) after POST /quitquitquit has been answered.
  std::function<void()> shutdown;
  const metrics::Registry* registry = nullptr;  // required for the stats listener
  const Readiness* readiness = nullptr;         // required for the readiness listener
};

class AdminServers {
 public:
  static Result<std::unique_ptr<AdminServers>> start(boost::asio::io_context& control,
                                                     boost::asio::io_context& readiness_io, const AdminAddresses& addrs,
                                                     AdminHooks hooks);
  ~AdminServers();

  http::HttpServer& admin() { return *admin_; }
  http::HttpServer& stats() { return *stats_; }
  http::HttpServer& readiness() { return *readiness_; }
  void stop();

 private:
  AdminServers() = default;
  std::unique_ptr<http::HttpServer> admin_, stats_, readiness_;
};

// Route handlers, exposed so they can be mounted elsewhere and tested without sockets.
http::Response logging_handler(const http::Request& req);
http::Response metrics_handler(const metrics::Registry& registry, const http::Request& req);
http::Response readiness_handler(const Readiness& readiness, const http::Request& req);

}  // namespace common
