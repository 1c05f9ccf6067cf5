// ConnectionResult: the telemetry of one proxied connection once its parties are known (the
// outbound route or the inbound context was built): `istio_tcp_*` metrics and the one
// `connection complete` access-log line, written by record() exactly once.
//
//   result.established();               // the relay starts: opened{-}, sockets_open +1
//   result.record(error, to_dst, from_dst);
//
// A failure before established() counts opened and closed with the error's response flag; after
// it, closes the "-" series with the relayed bytes. Connections refused before they have
// parties are not ConnectionResults: log_early_deny() writes upstream's `connection failed`.
//
// Invariants: record() writes once; later calls are ignored (and return false), so a path that
// reaches two exits cannot count a connection twice. Nothing is written from the destructor:
// coroutine frames can be destroyed at shutdown after the metrics registry is gone.
// Byte directions follow the access log: to_dst = client -> server (the metric's "received").
// Threading: owned by the coroutine serving the connection, on one worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "ztunnel/proxy/proxy_error.h"
#include "ztunnel/proxy/traffic_metrics.h"

namespace ztunnel {

class ConnectionResult {
 public:
  ConnectionResult(TrafficMetrics& metrics, ConnectionParties parties, std::string direction, std::string src_addr,
                   std::string dst_addr, std::string hbone_addr, std::chrono::steady_clock::time_point started);
  ConnectionResult(const ConnectionResult&) = delete;
  ConnectionResult& operator=(const ConnectionResult&) = delete;

  // The relay starts (called at most once, before record()).
  void established();
  // Writes the outcome; false (and nothing written) if it was already recorded.
  bool record(const std::optional<ProxyError>& error, uint64_t to_dst = 0, uint64_t from_dst = 0);

  bool recorded() const { return recorded_; }
  const ConnectionParties& parties() const { return parties_; }

 private:
  TrafficMetrics& metrics_;
  ConnectionParties parties_;
  std::string direction_, src_addr_, dst_addr_, hbone_addr_;
  std::chrono::steady_clock::time_point started_;
  std::optional<TrafficMetrics::Series> series_;  // set by established()
  bool recorded_ = false;
};

// Upstream's early deny: one `connection failed` WARN access line, no metrics.
void log_early_deny(const std::string& direction, const std::string& src_addr, const std::string& dst_addr,
                    const ProxyError& error);

}  // namespace ztunnel
