#include "common/admin/env_settings.h"

#include <string_view>
#include <utility>

#include "common/admin/http_admin.h"

namespace common {

Result<LogSettings> log_settings_from_env(const env::EnvLookup& e) {
  LogSettings s;
  const std::string f = env::get_string(e, "LOG_FORMAT", "plain");
  auto fr = log::parse_format(f);
  if (!fr) return make_error(env::invalid_var("LOG_FORMAT", f, "expected plain or json"));
  s.format = *fr;
  s.level = env::get_string(e, "RUST_LOG", "info");
  if (s.level.empty()) s.level = "info";
  if (auto st = log::validate_filter(s.level); !st) {
    return make_error(env::invalid_var("RUST_LOG", s.level, st.error()));
  }
  return s;
}

Status admin_addresses_from_env(const env::EnvLookup& e, std::string& admin, std::string& stats,
                                std::string& readiness) {
  admin = env::get_string(e, "ADMIN_ADDR", admin);
  stats = env::get_string(e, "STATS_ADDR", stats);
  readiness = env::get_string(e, "READINESS_ADDR", readiness);
  for (auto [var, val] : {std::pair<std::string_view, const std::string*>{"ADMIN_ADDR", &admin},
                          {"STATS_ADDR", &stats},
                          {"READINESS_ADDR", &readiness}}) {
    auto hp = http::split_host_port(*val);
    if (!hp) return make_error(env::invalid_var(var, *val, hp.error()));
    // Any host is fine for stats and readiness; only the syntax is checked.
    if (var == "ADMIN_ADDR" && !http::is_loopback_host(hp->first)) {
      return make_error(env::invalid_var(var, *val, "the admin API must listen on a loopback address"));
    }
  }
  return ok_status();
}

}  // namespace common
