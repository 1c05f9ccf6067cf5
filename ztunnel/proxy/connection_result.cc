#include "ztunnel/proxy/connection_result.h"

#include "common/admin/access_log.h"

namespace ztunnel {

ConnectionResult::ConnectionResult(TrafficMetrics& metrics, ConnectionParties parties, std::string direction,
                                   std::string src_addr, std::string dst_addr, std::string hbone_addr,
                                   std::chrono::steady_clock::time_point started)
    : metrics_(metrics),
      parties_(std::move(parties)),
      direction_(std::move(direction)),
      src_addr_(std::move(src_addr)),
      dst_addr_(std::move(dst_addr)),
      hbone_addr_(std::move(hbone_addr)),
      started_(started) {}

void ConnectionResult::established() {
  if (series_ || recorded_) return;
  series_ = metrics_.open(parties_, ResponseFlag::None);
  metrics_.sockets_open(parties_.reporter, 1);
}

bool ConnectionResult::record(const std::optional<ProxyError>& error, uint64_t to_dst, uint64_t from_dst) {
  if (recorded_) return false;
  recorded_ = true;
  if (series_) {
    metrics_.sockets_open(parties_.reporter, -1);
    metrics_.close(*series_, to_dst, from_dst);
  } else {
    // Never relayed: the connection is opened and closed under the flag that ended it.
    auto series = metrics_.open(parties_, error ? error->flag() : ResponseFlag::None);
    metrics_.close(series, to_dst, from_dst);
  }
  common::log_access(access_record(parties_, direction_, src_addr_, dst_addr_, hbone_addr_, to_dst, from_dst,
                                   std::chrono::steady_clock::now() - started_, error ? error->message() : ""));
  return true;
}

void log_early_deny(const std::string& direction, const std::string& src_addr, const std::string& dst_addr,
                    const ProxyError& error) {
  common::AccessRecord r;
  r.src_addr = src_addr;
  r.dst_addr = dst_addr;
  r.direction = direction;
  r.error = error.message();
  common::log_connection_failed(std::move(r));
}

}  // namespace ztunnel
