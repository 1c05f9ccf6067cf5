// waypoint entry point: configuration comes from the environment (an Istio waypoint pod's
// variables plus ztunnel's names for the control plane).
#include <csignal>
#include <cstdio>

#include "common/admin/log.h"
#include "common/runtime.h"
#include "waypoint/app.h"
#include "waypoint/config.h"

int main() {
  // A peer that vanishes must cost one connection, never the process.
  std::signal(SIGPIPE, SIG_IGN);
  auto cfg = waypoint::load_config(common::env::process_env(), common::available_cores());
  if (!cfg) {
    std::fprintf(stderr, "waypoint: invalid configuration: %s\n", cfg.error().c_str());
    return 2;
  }
  if (auto st = common::log::init(cfg->log_level, cfg->log_format, "waypoint"); !st) {
    std::fprintf(stderr, "waypoint: RUST_LOG/LOG_FORMAT: %s\n", st.error().c_str());
    return 2;
  }
  return waypoint::run_app(cfg.value());
}
