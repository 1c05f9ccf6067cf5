// Access log: one line per proxied connection, with upstream ztunnel's message and field names
// (facts §7.2) so existing log pipelines and dashboards keep working.
//   plain: connection complete src.addr=10.0.0.1:43210 src.workload=sleep ... duration="12ms"
//   json:  {"message":"connection complete","src.addr":"10.0.0.1:43210",...,"duration":"12ms"}
// Empty string fields are omitted (upstream omits unknown values). Written to the spdlog logger
// "access" at INFO, or ERROR when `error` is set; log_connection_failed() uses WARN.
//
// Threading: the functions are stateless apart from spdlog and may be called from any worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/admin/log.h"

namespace common {

struct AccessRecord {
  std::string message = "connection complete";
  std::string src_addr, src_workload, src_namespace, src_identity, src_cluster;
  std::string dst_addr, dst_hbone_addr, dst_service, dst_workload, dst_namespace, dst_identity, dst_cluster;
  std::string direction;  // "outbound" | "inbound"
  uint64_t bytes_sent = 0;
  uint64_t bytes_recv = 0;
  std::chrono::milliseconds duration{0};
  std::string error;  // empty = success
};

// The message part of the line, without time/level/logger. In JSON format a JSON object.
std::string format_access_record(const AccessRecord& r, log::Format format);

// Emits `r` on the "access" logger in the current log::format().
void log_access(const AccessRecord& r);
// Early deny before full context is known (upstream "connection failed", WARN).
void log_connection_failed(AccessRecord r);

}  // namespace common
