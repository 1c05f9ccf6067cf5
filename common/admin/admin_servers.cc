#include "common/admin/admin_servers.h"

#include "common/admin/pprof.h"

#include <zlib.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <vector>

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

// OpenMetrics from Prometheus text 0.0.4: a counter family is named without its _total suffix
// in # HELP / # TYPE (its samples keep it), and the exposition ends with # EOF.
std::string to_openmetrics(const std::string& text) {
  auto lines_of = [&](auto&& fn) {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      fn(std::string_view(text).substr(pos, end - pos));
      pos = end + 1;
    }
  };
  // Pass 1: the counter families whose name carries _total.
  std::vector<std::string> counters;
  lines_of([&](std::string_view l) {
    constexpr std::string_view kType = "# TYPE ";
    if (!l.starts_with(kType) || !l.ends_with(" counter")) return;
    std::string_view name = l.substr(kType.size(), l.size() - kType.size() - 8);
    if (name.ends_with("_total")) counters.emplace_back(name);
  });
  auto is_counter = [&](std::string_view n) { return std::find(counters.begin(), counters.end(), n) != counters.end(); };
  std::string out;
  out.reserve(text.size() + 16);
  lines_of([&](std::string_view l) {
    for (std::string_view prefix : {std::string_view("# TYPE "), std::string_view("# HELP ")}) {
      if (!l.starts_with(prefix)) continue;
      std::string_view rest = l.substr(prefix.size());
      std::string_view name = rest.substr(0, rest.find(' '));
      if (is_counter(name)) {
        out.append(prefix).append(name.substr(0, name.size() - 6)).append(rest.substr(name.size())).append("\n");
        return;
      }
    }
    out.append(l).append("\n");
  });
  out += "# EOF\n";
  return out;
}

// gzip of `in` (zlib, gzip wrapper); nullopt if zlib fails (the caller sends it uncompressed).
std::optional<std::string> gzip(const std::string& in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

// Upstream's stats server negotiates by Accept: OpenMetrics when the scraper asks for it (as
// Prometheus does), else the Prometheus text format; gzip when Accept-Encoding allows it.
Response metrics_handler(const metrics::Registry& registry, const Request& req) {
  Response r;
  auto accept = req.header("accept");
  if (accept && accept->find("application/openmetrics-text") != std::string_view::npos) {
    r.content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    r.body = to_openmetrics(registry.render());
  } else {
    r.content_type = std::string(metrics::kTextContentType);
    r.body = registry.render();
  }
  auto enc = req.header("accept-encoding");
  if (enc && enc->find("gzip") != std::string_view::npos) {
    if (auto z = gzip(r.body)) {
      r.body = std::move(*z);
      r.content_encoding = "gzip";
    }
  }
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
  pprof::mount(*admin, control);
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
