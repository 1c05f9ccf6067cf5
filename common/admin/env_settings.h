// Settings both proxies read from the environment in the same way, so ztunnel and the waypoint
// accept the same values and reject bad ones with the same message: the log format and filter
// (LOG_FORMAT, RUST_LOG) and the operational listeners (ADMIN_ADDR, STATS_ADDR, READINESS_ADDR;
// the admin API only on a loopback address, since it can shut the proxy down).
// Threading: pure functions of the lookup; call while loading config.
#pragma once

#include <string>

#include "common/admin/log.h"
#include "common/env.h"
#include "common/result.h"

namespace common {

struct LogSettings {
  log::Format format = log::Format::Plain;
  std::string level = "info";  // RUST_LOG filter; unset or empty = "info"
};
Result<LogSettings> log_settings_from_env(const env::EnvLookup& e);

// Replaces the proxy's defaults in `admin`, `stats` and `readiness` with ADMIN_ADDR, STATS_ADDR
// and READINESS_ADDR when set, then checks all three ("host:port"; admin on loopback).
Status admin_addresses_from_env(const env::EnvLookup& e, std::string& admin, std::string& stats,
                                std::string& readiness);

}  // namespace common
