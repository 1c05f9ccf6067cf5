// Envoy-style filter counters keyed by `stat_prefix` (the rate limit filters', ext_authz's),
// rendered on the stats page as `<name>{stat_prefix="..."} <value>`: one table type for every
// filter that counts per prefix, so each filter only declares its counters.
//
// Threading: for_prefix() and render() lock the table (a prefix is looked up once per filter
// config, not per request); the counters themselves are atomics the workers bump lock-free.
// Invariants: a counter block, once made, lives as long as the process (workers may still count
// during exit), so the pointers for_prefix() returns never dangle.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "common/admin/metrics.h"

namespace waypoint {

template <typename S>
class PrefixStats {
 public:
  struct Metric {
    const char* name;
    const char* help;
    std::atomic<uint64_t> S::*field;
  };

  S* for_prefix(std::string_view prefix) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = by_prefix_.find(prefix);
    if (it == by_prefix_.end()) it = by_prefix_.emplace(std::string(prefix), std::make_unique<S>()).first;
    return it->second.get();
  }

  // Prometheus text: HELP/TYPE then one sample per prefix, for each metric; nothing before the
  // first prefix exists.
  void render(std::string& out, std::span<const Metric> metrics) {
    std::lock_guard<std::mutex> l(mu_);
    if (by_prefix_.empty()) return;
    for (const auto& m : metrics) {
      out += "# HELP ";
      out += m.name;
      out += ' ';
      out += m.help;
      out += "\n# TYPE ";
      out += m.name;
      out += " counter\n";
      for (const auto& [prefix, s] : by_prefix_) {
        out += m.name;
        out += "{stat_prefix=\"" + common::metrics::escape_label_value(prefix) + "\"} ";
        out += std::to_string(((*s).*(m.field)).load(std::memory_order_relaxed));
        out += '\n';
      }
    }
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<S>, std::less<>> by_prefix_;
};

}  // namespace waypoint
