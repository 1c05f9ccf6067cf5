// ztunnel entry point: configuration comes from the environment (upstream's variable names).
// Command line as upstream's: `ztunnel [proxy [ztunnel]]` runs the proxy, `ztunnel version`
// prints the build info line, `ztunnel help` the usage; `--version` is kept for image checks.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/admin/build_info.h"
#include "common/admin/log.h"
#include "ztunnel/app.h"
#include "ztunnel/config.h"

namespace {

constexpr const char* kUsage =
    "ztunnel: the Istio ambient node proxy (configured from the environment, see README.md)\n"
    "\n"
    "usage: ztunnel [command]\n"
    "\n"
    "commands:\n"
    "  proxy [ztunnel]   run the proxy (the default)\n"
    "  version           print the build info (also --version)\n"
    "  help              print this help (also --help, -h)\n";

const char* istio_version() {
  const char* v = std::getenv("ISTIO_META_ISTIO_VERSION");
  return v != nullptr ? v : "";
}

// Upstream raises the open-files soft limit to the hard limit at start: a node proxy holds
// two sockets per relayed connection, and the default soft limit (1024) is far too low.
// Returns a note for the log, written once logging is set up.
std::string raise_nofile_limit() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return "getrlimit(RLIMIT_NOFILE) failed";
  if (rl.rlim_cur >= rl.rlim_max) return "";
  const auto before = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return "could not raise the open-files limit";
  return "raised the open-files soft limit from " + std::to_string(before) + " to " + std::to_string(rl.rlim_max);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2) {
    const std::string_view cmd = argv[1];
    if (cmd == "version" || cmd == "--version" || cmd == "-V") {
      std::printf("%s\n", common::build_info_line(istio_version()).c_str());
      return 0;
    }
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    // `proxy ztunnel` is how upstream's image starts it; a third word is not ours to accept.
    const bool proxy = cmd == "proxy" && (argc == 2 || (argc == 3 && std::string_view(argv[2]) == "ztunnel"));
    if (!proxy) {
      std::fprintf(stderr, "ztunnel: unknown command '%s'\n\n%s", argv[1], kUsage);
      return 2;
    }
  }
  // A peer that vanishes must cost one connection, never the process.
  std::signal(SIGPIPE, SIG_IGN);
  const std::string nofile = raise_nofile_limit();
  auto cfg = ztunnel::load_config_from_process();
  if (!cfg) {
    std::fprintf(stderr, "ztunnel: invalid configuration: %s\n", cfg.error().c_str());
    return 2;
  }
  if (auto st = common::log::init(cfg->log_level, cfg->log_format); !st) {
    std::fprintf(stderr, "ztunnel: RUST_LOG/LOG_FORMAT: %s\n", st.error().c_str());
    return 2;
  }
  if (!nofile.empty()) spdlog::info("{}", nofile);
  return ztunnel::run_app(cfg.value());
}
