// Istio TCP telemetry for proxied connections: istio_tcp_connections_opened_total,
// _closed_total, _failed_total, istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total
// (full Istio label set, with upstream's source/destination region and zone, which are left out
// when no workload or peer identity is known), istio_tcp_sockets_open,
// istio_on_demand_dns_total, and the access-log record. Byte direction follows Istio:
// "received" = request direction (client -> server), "sent" = response direction, for both
// reporters. Missing label values are "unknown".
// Threading: families are created on the control thread at start; series lookups from
// workers are lock-free on the steady path (see common/admin/metrics.h).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/admin/access_log.h"
#include "common/admin/metrics.h"
#include "common/identity/identity.h"
#include "common/model/model.h"
#include "ztunnel/proxy/proxy_error.h"

namespace ztunnel {

// Who was on each end, as far as this ztunnel knows.
struct ConnectionParties {
  std::string reporter;  // "source" | "destination"
  const Workload* src = nullptr;
  std::optional<common::Identity> src_identity;
  const Workload* dst = nullptr;
  const Service* service = nullptr;
  std::optional<common::Identity> dst_identity;
  bool mtls = false;
};

class TrafficMetrics {
 public:
  explicit TrafficMetrics(common::metrics::Registry& registry);

  struct Series {
    common::metrics::Counter* opened;
    common::metrics::Counter* closed;
    common::metrics::Counter* sent;
    common::metrics::Counter* received;
    common::metrics::Counter* failed;
  };
  // Counts the connection as opened under `flag` (upstream opens every connection under "-").
  Series open(const ConnectionParties& p, ResponseFlag flag);
  // Closes under the series' own labels; `failed` also counts istio_tcp_connections_failed_total.
  void close(const Series& s, uint64_t received_bytes, uint64_t sent_bytes, bool failed = false);
  // Closes under the response flag that ended the connection (its own series, as upstream:
  // the flag is known only at close).
  void close(const ConnectionParties& p, ResponseFlag flag, uint64_t received_bytes, uint64_t sent_bytes,
             bool failed);
  void sockets_open(const std::string& reporter, int delta);
  // istio_on_demand_dns_total{source_*, hostname}: as upstream, one per outbound connection whose
  // destination workload is known only by hostname, counted before its on-demand lookup
  // (outbound.cc resolve_on_demand), whatever the lookup's outcome.
  void on_demand_dns(const Workload* src, const std::string& hostname);

 private:
  common::metrics::CounterFamily& opened_;
  common::metrics::CounterFamily& closed_;
  common::metrics::CounterFamily& sent_;
  common::metrics::CounterFamily& received_;
  common::metrics::CounterFamily& failed_;
  common::metrics::GaugeFamily& sockets_;
  common::metrics::CounterFamily& on_demand_dns_;
};

std::vector<std::string> istio_tcp_labels(const ConnectionParties& p, ResponseFlag flag);

// Access-log record of a finished connection. bytes_sent = towards the destination.
common::AccessRecord access_record(const ConnectionParties& p, const std::string& direction,
                                   const std::string& src_addr, const std::string& dst_addr,
                                   const std::string& hbone_addr, uint64_t to_dst, uint64_t from_dst,
                                   std::chrono::steady_clock::duration elapsed, const std::string& error);

}  // namespace ztunnel
