#include "common/admin/admin_servers.h"

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "common/admin/log.h"

namespace common {

using http::Request;
using http::Response;

Response logging_handler(const Request& req) {
  auto level = req.query_param("level");
  bool reset = req.query_param("reset").has_value();
  if (!level && !reset) {
    return Response::text(200, "current log level is " + log::current_filter() + "\n");
  }
  if (req.method != "POST") {
    return Response::text(405, "changing the log level requires POST\n");
  }
  if (reset) {
    log::reset();
  } else {
    auto st = log::set_filter(*level);
    if (!st) return Response::text(400, st.error() + "\n");
  }
  spdlog::info("log level set to {}", log::current_filter());
  return Response::text(200, "current log level is " + log::current_filter() + "\n");
}

Response metrics_handler(const metrics::Registry& registry, const Request&) {
  Response r;
  r.content_type = std::string(metrics::kTextContentType);
  r.body = registry.render();
  return r;
}

Response readiness_handler(const Readiness& readiness, const Request&) {
  if (readiness.ready()) return Response::text(200, "ready\n");
  return Response::text(500, readiness.status_text() + "\n");
}

Result<std::unique_ptr<AdminServers>> AdminServers::start(boost::asio::io_context& control,
                                                          boost::asio::io_context& readiness_io,
                                                          const AdminAddresses& addrs, AdminHooks hooks) {
  if (hooks.registry == nullptr || hooks.readiness == nullptr) {
    return make_error("AdminServers::start needs a metrics registry and a readiness tracker");
  }
  auto hp = http::split_host_port(addrs.admin);
  if (!hp) return make_error("admin address: " + hp.error());
  if (!http::is_loopback_host(hp->first)) {
    // The admin API can stop the process and dump config: never expose it off-host.
    return make_error("admin address " + addrs.admin + " must be a loopback address");
  }

  std::unique_ptr<AdminServers> s(new AdminServers());
  s->admin_ = std::make_unique<http::HttpServer>(control, "admin");
  s->stats_ = std::make_unique<http::HttpServer>(control, "stats");
  s->readiness_ = std::make_unique<http::HttpServer>(readiness_io, "readiness");

  // -- admin
  http::HttpServer* admin = s->admin_.get();
  auto dump = hooks.config_dump;
  admin->route("/config_dump", [dump](const Request&) { return Response::json(dump ? dump() : std::string("{}")); });
  admin->route("/logging", logging_handler);
  auto shutdown = hooks.shutdown;
  boost::asio::io_context* ctl = &control;
  admin->route("/quitquitquit", [shutdown, ctl](const Request& req) {
    if (req.method != "POST") return Response::text(405, "use POST\n");
    spdlog::info("shutdown requested via /quitquitquit");
    // Posted so the 200 goes out before draining starts closing listeners.
    if (shutdown) boost::asio::post(*ctl, shutdown);
    return Response::text(200, "shutdown now\n");
  });
  admin->route("/", [admin](const Request&) {
    std::string body = "admin commands:\n";
    for (const auto& p : admin->paths()) body += "  " + p + "\n";
    return Response::text(200, body);
  });

  // -- stats
  const metrics::Registry* reg = hooks.registry;
  auto metrics = [reg](const Request& req) { return metrics_handler(*reg, req); };
  s->stats_->route("/metrics", metrics);
  s->stats_->route("/stats/prometheus", metrics);

  // -- readiness
  const Readiness* rd = hooks.readiness;
  s->readiness_->route("/healthz/ready", [rd](const Request& req) { return readiness_handler(*rd, req); });

  if (auto st = s->admin_->listen(addrs.admin); !st) return make_error(st.error());
  if (auto st = s->stats_->listen(addrs.stats); !st) return make_error(st.error());
  if (auto st = s->readiness_->listen(addrs.readiness); !st) return make_error(st.error());
  return s;
}

AdminServers::~AdminServers() {
  stop();
}

void AdminServers::stop() {
  if (admin_) admin_->stop();
  if (stats_) stats_->stop();
  if (readiness_) readiness_->stop();
}

}  // namespace common
