#include "hbone/connection_stats.h"

#include <string>

#include "common/admin/metrics.h"
#include "hbone/overload.h"

namespace hbone {

ConnectionStats& connection_stats() {
  static ConnectionStats s;
  return s;
}

namespace {
void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, const std::string& labels, uint64_t v) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

uint64_t load(const std::atomic<uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}
}  // namespace

void register_connection_stats(common::metrics::Registry& r) {
  r.add_collector([](std::string& out) {
    auto& s = connection_stats();
    static const char* roles[] = {"server", "client"};
    static const char* reasons[] = {"tls", "timeout", "alpn"};
    header(out, "istio_hbone_handshake_failures_total", "counter",
           "HBONE TLS handshakes that failed, by role (server = inbound) and reason");
    for (int role = 0; role < 2; ++role) {
      for (int i = 0; i < ConnectionStats::kHandshakeReasons; ++i) {
        sample(out, "istio_hbone_handshake_failures_total",
               std::string("role=\"") + roles[role] + "\",reason=\"" + reasons[i] + "\"",
               load(s.handshake_failures[role][i]));
      }
    }
    static const char* phases[] = {"handshake", "preface", "connect_headers", "ping"};
    header(out, "istio_hbone_timeouts_total", "counter",
           "HBONE connections closed because a deadline passed, by phase");
    for (int i = 0; i < ConnectionStats::kPhases; ++i) {
      sample(out, "istio_hbone_timeouts_total", std::string("phase=\"") + phases[i] + "\"", load(s.timeouts[i]));
    }
    static const char* abuse[] = {"protocol_error", "flood", "too_many_glitches", "slow_preface", "slow_headers"};
    header(out, "istio_hbone_abuse_closes_total", "counter",
           "HBONE connections closed for peer misbehaviour, by reason");
    for (int i = 0; i < ConnectionStats::kAbuseReasons; ++i) {
      sample(out, "istio_hbone_abuse_closes_total", std::string("reason=\"") + abuse[i] + "\"",
             load(s.abuse_closes[i]));
    }
    static const char* actions[] = {"stop_reading", "resume_reading", "reset_stream", "close_connection"};
    header(out, "istio_hbone_overload_actions_total", "counter",
           "Overload manager actions on HBONE connections and streams holding the most buffered bytes");
    for (int i = 0; i < ConnectionStats::kActions; ++i) {
      sample(out, "istio_hbone_overload_actions_total", std::string("action=\"") + actions[i] + "\"",
             load(s.overload_actions[i]));
    }
    header(out, "istio_hbone_buffered_bytes", "gauge",
           "Bytes queued in HBONE streams (receive and send queues) across the process");
    sample(out, "istio_hbone_buffered_bytes", "", static_cast<uint64_t>(std::max<int64_t>(0, overload().buffered())));
    header(out, "istio_hbone_buffered_bytes_limit", "gauge", "The overload manager's budget (0 = unlimited)");
    sample(out, "istio_hbone_buffered_bytes_limit", "", overload().budget());
  });
}

}  // namespace hbone
