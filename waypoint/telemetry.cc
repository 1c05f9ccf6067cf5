#include "waypoint/telemetry.h"

#include <spdlog/spdlog.h>
#include <array>
#include <atomic>
#include <nlohmann/json.hpp>

#include "common/admin/log.h"

namespace waypoint {

namespace {

const std::vector<std::string>& label_names() {
  static const std::vector<std::string> names = {"reporter",
                                                 "source_workload",
                                                 "source_canonical_service",
                                                 "source_canonical_revision",
                                                 "source_workload_namespace",
                                                 "source_principal",
                                                 "source_app",
                                                 "source_version",
                                                 "source_cluster",
                                                 "destination_service",
                                                 "destination_service_namespace",
                                                 "destination_service_name",
                                                 "destination_workload",
                                                 "destination_canonical_service",
                                                 "destination_canonical_revision",
                                                 "destination_workload_namespace",
                                                 "destination_principal",
                                                 "destination_app",
                                                 "destination_version",
                                                 "destination_cluster",
                                                 "request_protocol",
                                                 "response_code",
                                                 "grpc_response_status",
                                                 "response_flags",
                                                 "connection_security_policy"};
  return names;
}

// Istio's TCP label set (ztunnel-facts: the same as the HTTP one, minus the response code and
// the gRPC status).
const std::vector<std::string>& tcp_label_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& n : label_names())
      if (n != "response_code" && n != "grpc_response_status") v.push_back(n);
    return v;
  }();
  return names;
}

std::string or_unknown(const std::string& s) {
  return s.empty() ? "unknown" : s;
}

// workload, canonical service, canonical revision, namespace, principal, app, version, cluster.
void workload_labels(std::vector<std::string>& v, const ztunnel::Workload* w,
                     const std::optional<common::Identity>& id) {
  if (w != nullptr) {
    v.push_back(or_unknown(w->workload_name.empty() ? w->name : w->workload_name));
    v.push_back(or_unknown(w->canonical_name));
    v.push_back(or_unknown(w->canonical_revision));
    v.push_back(or_unknown(w->ns));
  } else {
    v.insert(v.end(), {"unknown", "unknown", "unknown", id ? id->ns() : std::string("unknown")});
  }
  v.push_back(id ? id->uri() : std::string("unknown"));
  v.push_back(w != nullptr ? or_unknown(w->canonical_name) : "unknown");
  v.push_back(w != nullptr ? or_unknown(w->canonical_revision) : "unknown");
  v.push_back(w != nullptr ? or_unknown(w->cluster_id) : "unknown");
}

uint64_t next_telemetry_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

// The series of one label set, found once per thread and snapshot. The key holds what
// istio_http_labels() reads from a record; pointers are compared, never followed.
struct SeriesEntry {
  const char* reporter = nullptr;
  const ztunnel::Workload* src = nullptr;
  const ztunnel::Workload* dst = nullptr;
  const ztunnel::Service* service = nullptr;
  std::optional<common::Identity> src_identity, dst_identity;
  std::string service_host, grpc_status, response_flags;
  uint16_t response_code = 0;
  common::metrics::Counter* requests = nullptr;
  common::metrics::Histogram* duration = nullptr;
  common::metrics::Histogram* request_bytes = nullptr;
  common::metrics::Histogram* response_bytes = nullptr;

  bool matches(const RequestRecord& r) const {
    return requests != nullptr && src == r.src && dst == r.dst && service == r.service &&
           response_code == r.response_code && reporter == r.reporter && response_flags == r.response_flags &&
           grpc_status == r.grpc_status && service_host == r.service_host && src_identity == r.src_identity &&
           dst_identity == r.dst_identity;
  }
};

// A handful of label sets covers a waypoint's steady traffic per worker (a few routes, status
// codes and peers); a miss costs what every request cost before, plus a copy of the key.
struct SeriesCache {
  static constexpr size_t kEntries = 16;
  uint64_t telemetry_id = 0;
  std::weak_ptr<const void> scope;
  std::array<SeriesEntry, kEntries> entries;
  size_t next = 0;
};

bool same_owner(const std::weak_ptr<const void>& a, const std::shared_ptr<const void>& b) {
  return !a.owner_before(b) && !b.owner_before(a);
}

const std::vector<double>& duration_buckets() {
  static const std::vector<double> b = {0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
                                        2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
  return b;
}
const std::vector<double>& size_buckets() {
  static const std::vector<double> b = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
  return b;
}

}  // namespace

std::vector<std::string> istio_http_labels(const RequestRecord& r) {
  std::vector<std::string> v;
  v.reserve(label_names().size());
  v.push_back(r.reporter);
  workload_labels(v, r.src, r.src_identity);
  if (r.service != nullptr) {
    v.push_back(or_unknown(r.service->hostname));
    v.push_back(or_unknown(r.service->ns));
    v.push_back(or_unknown(r.service->name));
  } else {
    v.insert(v.end(), {or_unknown(r.service_host), "unknown", "unknown"});
  }
  workload_labels(v, r.dst, r.dst_identity);
  v.push_back(r.grpc_status.empty() ? "http" : "grpc");
  v.push_back(std::to_string(r.response_code));
  v.push_back(r.grpc_status.empty() ? "" : r.grpc_status);
  v.push_back(r.response_flags);
  v.push_back(r.src_identity ? "mutual_tls" : "unknown");
  return v;
}

std::vector<std::string> istio_tcp_labels(const RequestRecord& r) {
  // The HTTP labels with request_protocol "tcp" and the two HTTP-only values dropped.
  auto http = istio_http_labels(r);
  std::vector<std::string> v;
  v.reserve(tcp_label_names().size());
  const auto& names = label_names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "response_code" || names[i] == "grpc_response_status") continue;
    v.push_back(names[i] == "request_protocol" ? std::string("tcp") : std::move(http[i]));
  }
  return v;
}

Telemetry::Telemetry(common::metrics::Registry& reg)
    : requests_(reg.counter("istio_requests_total", "Total requests handled by an Istio proxy", label_names())),
      duration_(reg.histogram("istio_request_duration_milliseconds", "Request duration in milliseconds", label_names(),
                              duration_buckets())),
      request_bytes_(reg.histogram("istio_request_bytes", "Request body size in bytes", label_names(), size_buckets())),
      response_bytes_(
          reg.histogram("istio_response_bytes", "Response body size in bytes", label_names(), size_buckets())),
      tcp_opened_(reg.counter("istio_tcp_connections_opened_total", "The total number of TCP connections opened",
                              tcp_label_names())),
      tcp_closed_(reg.counter("istio_tcp_connections_closed_total", "The total number of TCP connections closed",
                              tcp_label_names())),
      tcp_received_(reg.counter("istio_tcp_received_bytes_total",
                                "The size of total bytes received during request in case of a TCP connection",
                                tcp_label_names())),
      tcp_sent_(reg.counter("istio_tcp_sent_bytes_total",
                            "The size of total bytes sent during response in case of a TCP connection",
                            tcp_label_names())),
      shadow_allowed_(reg.counter("envoy_http_rbac_shadow_allowed",
                                  "Requests the shadow (dry-run) RBAC rules would allow", {"shadow_rules_stat_prefix"})),
      shadow_denied_(reg.counter("envoy_http_rbac_shadow_denied", "Requests the shadow (dry-run) RBAC rules would deny",
                                 {"shadow_rules_stat_prefix"})),
      tcp_shadow_allowed_(reg.counter("envoy_rbac_shadow_allowed",
                                      "TCP connections the shadow (dry-run) network RBAC rules would allow",
                                      {"shadow_rules_stat_prefix"})),
      tcp_shadow_denied_(reg.counter("envoy_rbac_shadow_denied",
                                     "TCP connections the shadow (dry-run) network RBAC rules would deny",
                                     {"shadow_rules_stat_prefix"})),
      clusters_(reg),
      id_(next_telemetry_id()) {}

void Telemetry::count_shadow(const std::vector<authz::ShadowResult>& shadow, bool tcp) {
  for (const auto& s : shadow) {
    auto& family = s.allowed ? (tcp ? tcp_shadow_allowed_ : shadow_allowed_) : (tcp ? tcp_shadow_denied_ : shadow_denied_);
    family.get({s.stat_prefix})->inc();
  }
}

void Telemetry::tcp_opened(const RequestRecord& r) {
  tcp_opened_.get(istio_tcp_labels(r))->inc();
}

void Telemetry::tcp_closed(const RequestRecord& r) {
  auto labels = istio_tcp_labels(r);
  tcp_closed_.get(labels)->inc();
  if (r.request_bytes) tcp_received_.get(labels)->inc(r.request_bytes);
  if (r.response_bytes) tcp_sent_.get(labels)->inc(r.response_bytes);
  static auto access = common::log::logger("access");
  if (access->should_log(spdlog::level::info)) {
    access->info("{}",
                 format_access_line(r, common::log::format() == common::log::Format::Json, "connection complete"));
  }
}

void Telemetry::record(const RequestRecord& r) {
  thread_local SeriesCache cache;
  const SeriesEntry* hit = nullptr;
  if (r.scope) {
    // A new snapshot (or another Telemetry) may reuse the addresses the keys hold: start over.
    // The weak reference keeps the old owner's control block, so an equal owner is the same one.
    if (cache.telemetry_id != id_ || !same_owner(cache.scope, r.scope)) {
      cache.telemetry_id = id_;
      cache.scope = r.scope;
      for (auto& e : cache.entries) e = SeriesEntry{};
    }
    for (const auto& e : cache.entries) {
      if (e.matches(r)) {
        hit = &e;
        break;
      }
    }
  }
  SeriesEntry found;
  if (hit == nullptr) {
    auto labels = istio_http_labels(r);
    // One view of the values for the four families (get(vector<string>) builds one per call).
    const std::vector<std::string_view> views(labels.begin(), labels.end());
    const std::span<const std::string_view> v(views);
    found.requests = requests_.get(v);
    found.duration = duration_.get(v);
    found.request_bytes = request_bytes_.get(v);
    found.response_bytes = response_bytes_.get(v);
    hit = &found;
    if (r.scope) {
      found.reporter = r.reporter;
      found.src = r.src;
      found.dst = r.dst;
      found.service = r.service;
      found.src_identity = r.src_identity;
      found.dst_identity = r.dst_identity;
      found.service_host = r.service_host;
      found.grpc_status = r.grpc_status;
      found.response_flags = r.response_flags;
      found.response_code = r.response_code;
      cache.entries[cache.next] = std::move(found);
      hit = &cache.entries[cache.next];
      cache.next = (cache.next + 1) % SeriesCache::kEntries;
    }
  }
  hit->requests->inc();
  hit->duration->observe(std::chrono::duration<double, std::milli>(r.duration).count());
  hit->request_bytes->observe(static_cast<double>(r.request_bytes));
  hit->response_bytes->observe(static_cast<double>(r.response_bytes));
  count_shadow(r.rbac_shadow, false);
  static auto access = common::log::logger("access");
  if (access->should_log(spdlog::level::info)) {
    access->info("{}", format_access_line(r, common::log::format() == common::log::Format::Json));
  }
}

std::string format_access_line(const RequestRecord& r, bool json, std::string_view message) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.duration).count();
  std::vector<std::pair<std::string, std::string>> f = {
      {"src.addr", r.src_addr},
      {"src.identity", r.src_identity ? r.src_identity->uri() : ""},
      {"dst.identity", r.dst_identity ? r.dst_identity->uri() : ""},
      {"authority", r.authority},
      {"method", r.method},
      {"path", r.path},
      {"protocol", r.protocol},
      {"response_code", std::to_string(r.response_code)},
      {"response_flags", r.response_flags},
      {"bytes_received", std::to_string(r.request_bytes)},
      {"bytes_sent", std::to_string(r.response_bytes)},
      {"duration", std::to_string(ms) + "ms"},
      {"route_name", r.route_name},
      {"upstream_cluster", r.upstream_cluster},
      {"upstream_host", r.upstream_host},
      {"x_request_id", r.request_id},
      {"user_agent", r.user_agent},
      {"attempts", std::to_string(r.attempts)},
  };
  for (const auto& sh : r.rbac_shadow) {
    f.emplace_back(sh.stat_prefix + "shadow_engine_result", sh.allowed ? "allowed" : "denied");
    f.emplace_back(sh.stat_prefix + "shadow_effective_policy_id", sh.policy);
  }
  if (json) {
    nlohmann::json j = nlohmann::json::object();
    j["message"] = message;
    for (auto& [k, v] : f) {
      if (!v.empty()) j[k] = v;
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string out(message);
  for (auto& [k, v] : f) {
    if (v.empty()) continue;
    out += ' ';
    out += k;
    out += '=';
    bool quote = v.find_first_of(" \"=") != std::string::npos;
    if (quote) {
      out += '"';
      for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
    } else {
      out += v;
    }
  }
  return out;
}

}  // namespace waypoint
