// Process-wide HBONE hardening counters: handshake failures, deadline expiries, connections
// closed for abuse, and the overload manager's actions. Every HBONE connection in the process
// (all workers, all per-pod proxies) adds to the same counters, like Envoy's overload stats.
//
// Exposed by register_connection_stats() as (Istio-style names; counters end in _total):
//   istio_hbone_handshake_failures_total{role, reason}  reason: tls | timeout | alpn
//   istio_hbone_timeouts_total{phase}        phase: handshake | preface | connect_headers | ping
//   istio_hbone_abuse_closes_total{reason}   reason: protocol_error | flood | too_many_glitches
//                                                    | slow_preface | slow_headers
//   istio_hbone_overload_actions_total{action}  action: stop_reading | resume_reading | reset_stream
//                                                       | close_connection
//   istio_hbone_buffered_bytes               gauge: bytes queued in HBONE streams (receive + send)
//   istio_hbone_buffered_bytes_limit         gauge: the overload budget (0 = unlimited)
//
// Threading: plain relaxed atomics, bumped from any worker without locks; rendered on the
// stats thread. Values are monotonic for the life of the process (tests compare deltas).
#pragma once

#include <atomic>
#include <cstdint>

namespace common::metrics {
class Registry;
}

namespace hbone {

struct ConnectionStats {
  enum HandshakeReason { kTls, kTimeout, kAlpn, kHandshakeReasons };
  enum Phase { kHandshake, kPreface, kConnectHeaders, kPing, kPhases };
  enum AbuseReason { kProtocolError, kFlood, kTooManyGlitches, kSlowPreface, kSlowHeaders, kAbuseReasons };
  enum Action { kStopReading, kResumeReading, kResetStream, kCloseConnection, kActions };

  // [0] = server role (inbound), [1] = client role (outbound).
  std::atomic<uint64_t> handshake_failures[2][kHandshakeReasons] = {};
  std::atomic<uint64_t> timeouts[kPhases] = {};
  std::atomic<uint64_t> abuse_closes[kAbuseReasons] = {};
  std::atomic<uint64_t> overload_actions[kActions] = {};

  static void bump(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }
};

// The process' counters.
ConnectionStats& connection_stats();

// Adds the families above to `r` (a collector: values are read at render time).
void register_connection_stats(common::metrics::Registry& r);

}  // namespace hbone
