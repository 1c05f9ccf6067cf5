#include <map>
#include <memory>
#include <mutex>

#include "waypoint/authz/ext_authz.h"

namespace waypoint::authz {
namespace {

struct Table {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<ExtAuthzStats>, std::less<>> by_prefix;
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

ExtAuthzStats* ext_authz_stats_for(std::string_view stat_prefix) {
  auto& t = table();
  std::lock_guard<std::mutex> l(t.mu);
  auto it = t.by_prefix.find(stat_prefix);
  if (it == t.by_prefix.end())
    it = t.by_prefix.emplace(std::string(stat_prefix), std::make_unique<ExtAuthzStats>()).first;
  return it->second.get();
}

void render_ext_authz_stats(std::string& out) {
  auto& t = table();
  std::lock_guard<std::mutex> l(t.mu);
  struct Metric {
    const char* name;
    const char* help;
    std::atomic<uint64_t> ExtAuthzStats::*field;
  };
  static const Metric kMetrics[] = {
      {"envoy_ext_authz_ok", "Requests the authorization service allowed", &ExtAuthzStats::ok},
      {"envoy_ext_authz_denied", "Requests the authorization service denied", &ExtAuthzStats::denied},
      {"envoy_ext_authz_error", "Failed calls to the authorization service", &ExtAuthzStats::error},
      {"envoy_ext_authz_failure_mode_allowed", "Requests allowed although the authorization service failed",
       &ExtAuthzStats::failure_mode_allowed},
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

}  // namespace waypoint::authz
