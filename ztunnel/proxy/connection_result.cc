#include "ztunnel/proxy/connection_result.h"

#include <algorithm>

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

void ConnectionResult::progress(uint64_t to_dst, uint64_t from_dst) {
  if (!series_ || recorded_) return;
  if (to_dst > reported_to_dst_) {
    series_->received->inc(to_dst - reported_to_dst_);
    reported_to_dst_ = to_dst;
  }
  if (from_dst > reported_from_dst_) {
    series_->sent->inc(from_dst - reported_from_dst_);
    reported_from_dst_ = from_dst;
  }
}

bool ConnectionResult::record(const std::optional<ProxyError>& error, uint64_t to_dst, uint64_t from_dst) {
  if (recorded_) return false;
  recorded_ = true;
  // The access log shows the totals; the counters get what progress() has not added yet.
  const uint64_t log_to_dst = to_dst, log_from_dst = from_dst;
  to_dst -= std::min(to_dst, reported_to_dst_);
  from_dst -= std::min(from_dst, reported_from_dst_);
  // Upstream: opened always under "-"; the flag that ended the connection labels its close
  // (and bytes), and an error also counts istio_tcp_connections_failed_total.
  const ResponseFlag flag = error ? error->flag() : ResponseFlag::None;
  if (series_) {
    metrics_.sockets_open(parties_.reporter, -1);
  } else {
    series_ = metrics_.open(parties_, ResponseFlag::None);
  }
  if (flag == ResponseFlag::None) {
    metrics_.close(*series_, to_dst, from_dst, error.has_value());
  } else {
    metrics_.close(parties_, flag, to_dst, from_dst, true);
  }
  common::log_access(access_record(parties_, direction_, src_addr_, dst_addr_, hbone_addr_, log_to_dst, log_from_dst,
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
