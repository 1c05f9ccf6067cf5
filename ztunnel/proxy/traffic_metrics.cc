#include "ztunnel/proxy/traffic_metrics.h"

namespace ztunnel {
namespace {

const std::vector<std::string>& label_names() {
  static const std::vector<std::string> names = {
      "reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
      "source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
      "destination_service", "destination_service_namespace", "destination_service_name",
      "destination_workload", "destination_canonical_service", "destination_canonical_revision",
      "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
      "destination_cluster", "request_protocol", "response_flags", "connection_security_policy",
      // Upstream's LocalityLabels, flattened after the common set (from the workloads' locality).
      "source_region", "source_zone", "destination_region", "destination_zone"};
  return names;
}

// istio_on_demand_dns_total: the source block of the TCP labels plus the resolved hostname.
const std::vector<std::string>& on_demand_dns_label_names() {
  static const std::vector<std::string> names = {
      "source_workload", "source_canonical_service", "source_canonical_revision", "source_workload_namespace",
      "source_principal", "source_app", "source_version", "source_cluster", "hostname"};
  return names;
}

std::string or_unknown(const std::string& s) { return s.empty() ? "unknown" : s; }

void workload_labels(std::vector<std::string>& out, const Workload* w, const std::optional<common::Identity>& id) {
  if (w == nullptr) {
    out.insert(out.end(), {"unknown", "unknown", "unknown", id ? id->ns() : "unknown",
                           id ? id->uri() : "unknown", "unknown", "unknown", "unknown"});
    return;
  }
  out.push_back(or_unknown(w->workload_name.empty() ? w->name : w->workload_name));
  out.push_back(or_unknown(w->canonical_name));
  out.push_back(or_unknown(w->canonical_revision));
  out.push_back(or_unknown(w->ns));
  out.push_back(id ? id->uri() : w->identity().uri());
  out.push_back(or_unknown(w->canonical_name));
  out.push_back(or_unknown(w->canonical_revision));
  out.push_back(or_unknown(w->cluster_id));
}

}  // namespace

std::vector<std::string> istio_tcp_labels(const ConnectionParties& p, ResponseFlag flag) {
  std::vector<std::string> v;
  v.reserve(label_names().size());
  v.push_back(p.reporter);
  workload_labels(v, p.src, p.src_identity);
  if (p.service != nullptr) {
    v.push_back(or_unknown(p.service->hostname));
    v.push_back(or_unknown(p.service->ns));
    v.push_back(or_unknown(p.service->name));
  } else {
    v.insert(v.end(), {"unknown", "unknown", "unknown"});
  }
  // destination_workload .. destination_cluster, same order as the source block minus nothing.
  std::vector<std::string> d;
  workload_labels(d, p.dst, p.dst_identity);
  v.insert(v.end(), d.begin(), d.end());
  v.push_back("tcp");
  v.emplace_back(to_string(flag));
  v.push_back(p.mtls ? "mutual_tls" : "unknown");
  // Upstream's optional LocalityLabels: present ("unknown" for a missing side or value) once a
  // source workload, the peer's identity (its derived source) or a destination workload is
  // known; left out entirely otherwise. "" is the omitted variant: these families render no
  // empty label (omit_empty_labels), so the choice is made here, once per connection.
  const bool any_known = p.src != nullptr || p.dst != nullptr || p.src_identity.has_value();
  auto locality = [&v, any_known](const Workload* w) {
    if (!any_known) {
      v.insert(v.end(), {"", ""});
      return;
    }
    v.push_back(w != nullptr ? or_unknown(w->locality.region) : "unknown");
    v.push_back(w != nullptr ? or_unknown(w->locality.zone) : "unknown");
  };
  locality(p.src);
  locality(p.dst);
  return v;
}

TrafficMetrics::TrafficMetrics(common::metrics::Registry& r)
    : opened_(r.counter("istio_tcp_connections_opened_total", "The total number of TCP connections opened",
                        label_names())),
      closed_(r.counter("istio_tcp_connections_closed_total", "The total number of TCP connections closed",
                        label_names())),
      sent_(r.counter("istio_tcp_sent_bytes_total", "The size of total bytes sent in response to TCP connections",
                      label_names())),
      received_(r.counter("istio_tcp_received_bytes_total",
                          "The size of total bytes received during request in case of a TCP connection",
                          label_names())),
      failed_(r.counter("istio_tcp_connections_failed_total", "The total number of TCP connections that failed",
                        label_names())),
      sockets_(r.gauge("istio_tcp_sockets_open", "The number of TCP sockets open", {"reporter"})),
      on_demand_dns_(r.counter("istio_on_demand_dns_total",
                               "The total number of requests that used on-demand DNS (unstable)",
                               on_demand_dns_label_names())) {
  for (auto* f : {&opened_, &closed_, &sent_, &received_, &failed_}) f->omit_empty_labels();
}

void TrafficMetrics::on_demand_dns(const Workload* src, const std::string& hostname) {
  std::vector<std::string> labels;
  labels.reserve(on_demand_dns_label_names().size());
  workload_labels(labels, src, std::nullopt);
  labels.push_back(or_unknown(hostname));
  on_demand_dns_.get(labels)->inc();
}

TrafficMetrics::Series TrafficMetrics::open(const ConnectionParties& p, ResponseFlag flag) {
  auto labels = istio_tcp_labels(p, flag);
  Series s{opened_.get(labels), closed_.get(labels), sent_.get(labels), received_.get(labels), failed_.get(labels)};
  s.opened->inc();
  return s;
}

void TrafficMetrics::close(const Series& s, uint64_t received_bytes, uint64_t sent_bytes, bool failed) {
  s.closed->inc();
  if (received_bytes) s.received->inc(received_bytes);
  if (sent_bytes) s.sent->inc(sent_bytes);
  if (failed) s.failed->inc();
}

void TrafficMetrics::close(const ConnectionParties& p, ResponseFlag flag, uint64_t received_bytes,
                           uint64_t sent_bytes, bool failed) {
  auto labels = istio_tcp_labels(p, flag);
  closed_.get(labels)->inc();
  if (received_bytes) received_.get(labels)->inc(received_bytes);
  if (sent_bytes) sent_.get(labels)->inc(sent_bytes);
  if (failed) failed_.get(labels)->inc();
}

void TrafficMetrics::sockets_open(const std::string& reporter, int delta) {
  std::vector<std::string> l{reporter};
  sockets_.get(l)->add(delta);
}

common::AccessRecord access_record(const ConnectionParties& p, const std::string& direction,
                                   const std::string& src_addr, const std::string& dst_addr,
                                   const std::string& hbone_addr, uint64_t to_dst, uint64_t from_dst,
                                   std::chrono::steady_clock::duration elapsed, const std::string& error) {
  common::AccessRecord r;
  r.src_addr = src_addr;
  if (p.src) {
    r.src_workload = p.src->name;
    r.src_namespace = p.src->ns;
    r.src_cluster = p.src->cluster_id;
  }
  if (p.src_identity && p.mtls) r.src_identity = p.src_identity->uri();
  else if (p.src_identity && p.reporter == "source") r.src_identity = p.src_identity->uri();
  r.dst_addr = dst_addr;
  r.dst_hbone_addr = hbone_addr;
  if (p.service) r.dst_service = p.service->hostname;
  if (p.dst) {
    r.dst_workload = p.dst->name;
    r.dst_namespace = p.dst->ns;
    r.dst_cluster = p.dst->cluster_id;
  }
  if (p.dst_identity) r.dst_identity = p.dst_identity->uri();
  r.direction = direction;
  r.bytes_sent = to_dst;
  r.bytes_recv = from_dst;
  r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed);
  r.error = error;
  return r;
}

}  // namespace ztunnel
