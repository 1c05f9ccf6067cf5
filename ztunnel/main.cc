// ztunnel entry point: configuration comes from the environment (upstream's variable names).
#include <csignal>
#include <cstdio>

#include "common/admin/log.h"
#include "ztunnel/app.h"
#include "ztunnel/config.h"

int main() {
  // A peer that vanishes must cost one connection, never the process.
  std::signal(SIGPIPE, SIG_IGN);
  auto cfg = ztunnel::load_config_from_process();
  if (!cfg) {
    std::fprintf(stderr, "ztunnel: invalid configuration: %s\n", cfg.error().c_str());
    return 2;
  }
  if (auto st = common::log::init(cfg->log_level, cfg->log_format); !st) {
    std::fprintf(stderr, "ztunnel: RUST_LOG/LOG_FORMAT: %s\n", st.error().c_str());
    return 2;
  }
  return ztunnel::run_app(cfg.value());
}
