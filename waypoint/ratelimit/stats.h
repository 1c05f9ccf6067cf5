// Rate limit counters of the waypoint process, as Envoy keeps them per filter stat_prefix:
//   local:  <prefix>.http_local_rate_limit.{enabled,enforced,ok,rate_limited}
//   global: <prefix>.ratelimit.{ok,over_limit,error,failure_mode_allowed}
// rendered on /metrics (stats port) as Prometheus counters
//   envoy_http_local_rate_limit_<name>{stat_prefix="<prefix>"} and
//   envoy_ratelimit_<name>{stat_prefix="<prefix>"}.
//
// Threading: stats_for() takes a mutex and is called by the config converter (control thread);
// the returned pointer is stable for the process's life, and the data path only does relaxed
// atomic increments on it (no lock per request). render() may run on any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace waypoint::ratelimit {

struct Stats {
  // local
  std::atomic<uint64_t> enabled{0}, enforced{0}, ok{0}, rate_limited{0};
  // global
  std::atomic<uint64_t> rls_ok{0}, over_limit{0}, error{0}, failure_mode_allowed{0};
};

inline void bump(std::atomic<uint64_t>& c) {
  c.fetch_add(1, std::memory_order_relaxed);
}

// The counters of one stat_prefix ("" is a valid prefix).
Stats* stats_for(std::string_view stat_prefix);

// Prometheus text for every prefix seen so far (a metrics::Registry collector).
void render_stats(std::string& out);

}  // namespace waypoint::ratelimit
