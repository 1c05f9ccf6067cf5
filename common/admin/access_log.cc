#include "common/admin/access_log.h"

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

namespace common {
namespace {

// Plain values are quoted only when needed to keep "k=v k=v" splittable, except for the
// fields upstream always quotes (identities, duration, error).
bool needs_quotes(std::string_view v) {
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

void append_quoted(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  out += '"';
}

// Visits the fields in upstream's order. `quote` marks the always-quoted ones.
template <typename F>
void for_each_field(const AccessRecord& r, F&& f) {
  f("src.addr", r.src_addr, false);
  f("src.workload", r.src_workload, false);
  f("src.namespace", r.src_namespace, false);
  f("src.identity", r.src_identity, true);
  f("src.cluster", r.src_cluster, false);
  f("dst.addr", r.dst_addr, false);
  f("dst.hbone_addr", r.dst_hbone_addr, false);
  f("dst.service", r.dst_service, false);
  f("dst.workload", r.dst_workload, false);
  f("dst.namespace", r.dst_namespace, false);
  f("dst.identity", r.dst_identity, true);
  f("dst.cluster", r.dst_cluster, false);
  f("direction", r.direction, false);
}

// log::logger() takes a mutex; the access logger is never replaced, so fetch it once per
// process and keep worker threads lock-free here.
spdlog::logger& access_logger() {
  static const std::shared_ptr<spdlog::logger> lg = log::logger("access");
  return *lg;
}

}  // namespace

std::string format_access_record(const AccessRecord& r, log::Format format) {
  std::string duration = std::to_string(r.duration.count()) + "ms";
  if (format == log::Format::Json) {
    nlohmann::ordered_json j;
    j["message"] = r.message;
    for_each_field(r, [&](const char* k, const std::string& v, bool) {
      if (!v.empty()) j[k] = v;
    });
    j["bytes_sent"] = r.bytes_sent;
    j["bytes_recv"] = r.bytes_recv;
    j["duration"] = duration;
    if (!r.error.empty()) j["error"] = r.error;
    // Peer-controlled strings may be invalid UTF-8: replace rather than throw.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string out = r.message;
  for_each_field(r, [&](const char* k, const std::string& v, bool quote) {
    if (v.empty()) return;
    out.append(" ").append(k).append("=");
    if (quote || needs_quotes(v)) {
      append_quoted(out, v);
    } else {
      out.append(v);
    }
  });
  out.append(" bytes_sent=").append(std::to_string(r.bytes_sent));
  out.append(" bytes_recv=").append(std::to_string(r.bytes_recv));
  out.append(" duration=");
  append_quoted(out, duration);
  if (!r.error.empty()) {
    out.append(" error=");
    append_quoted(out, r.error);
  }
  return out;
}

void log_access(const AccessRecord& r) {
  auto& lg = access_logger();
  auto level = r.error.empty() ? spdlog::level::info : spdlog::level::err;
  if (!lg.should_log(level)) return;  // skip formatting when filtered out
  lg.log(level, "{}", format_access_record(r, log::format()));
}

void log_connection_failed(AccessRecord r) {
  auto& lg = access_logger();
  if (!lg.should_log(spdlog::level::warn)) return;
  r.message = "connection failed";
  lg.log(spdlog::level::warn, "{}", format_access_record(r, log::format()));
}

}  // namespace common
