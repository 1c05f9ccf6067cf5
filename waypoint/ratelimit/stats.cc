#include "waypoint/ratelimit/stats.h"

#include <map>
#include <memory>
#include <mutex>

namespace waypoint::ratelimit {
namespace {

struct Table {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<Stats>, std::less<>> by_prefix;
};

Table& table() {
  static Table* t = new Table;  // never destroyed: workers may still count during exit
  return *t;
}

std::string escape_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

Stats* stats_for(std::string_view stat_prefix) {
  auto& t = table();
  std::lock_guard<std::mutex> l(t.mu);
  auto it = t.by_prefix.find(stat_prefix);
  if (it == t.by_prefix.end()) it = t.by_prefix.emplace(std::string(stat_prefix), std::make_unique<Stats>()).first;
  return it->second.get();
}

void render_stats(std::string& out) {
  auto& t = table();
  std::lock_guard<std::mutex> l(t.mu);
  struct Metric {
    const char* name;
    const char* help;
    std::atomic<uint64_t> Stats::*field;
  };
  static const Metric kMetrics[] = {
      {"envoy_http_local_rate_limit_enabled", "Requests the local rate limit filter was enabled for", &Stats::enabled},
      {"envoy_http_local_rate_limit_enforced", "Limited requests the local rate limit enforced", &Stats::enforced},
      {"envoy_http_local_rate_limit_ok", "Requests under the local rate limit", &Stats::ok},
      {"envoy_http_local_rate_limit_rate_limited", "Requests over the local rate limit", &Stats::rate_limited},
      {"envoy_ratelimit_ok", "Requests the rate limit service allowed", &Stats::rls_ok},
      {"envoy_ratelimit_over_limit", "Requests the rate limit service found over limit", &Stats::over_limit},
      {"envoy_ratelimit_error", "Failed calls to the rate limit service", &Stats::error},
      {"envoy_ratelimit_failure_mode_allowed", "Requests allowed although the rate limit service failed",
       &Stats::failure_mode_allowed},
  };
  if (t.by_prefix.empty()) return;
  for (const auto& m : kMetrics) {
    out += "# HELP ";
    out += m.name;
    out += ' ';
    out += m.help;
    out += "\n# TYPE ";
    out += m.name;
    out += " counter\n";
    for (const auto& [prefix, s] : t.by_prefix) {
      out += m.name;
      out += "{stat_prefix=\"" + escape_label(prefix) + "\"} ";
      out += std::to_string(((*s).*(m.field)).load(std::memory_order_relaxed));
      out += '\n';
    }
  }
}

}  // namespace waypoint::ratelimit
