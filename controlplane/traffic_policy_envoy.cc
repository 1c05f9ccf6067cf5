#include "controlplane/traffic_policy_envoy.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"

namespace controlplane {
namespace {

namespace cluster = envoy::config::cluster::v3;
namespace route = envoy::config::route::v3;
using HttpOptions = envoy::extensions::upstreams::http::v3::HttpProtocolOptions;

constexpr uint32_t kMax32 = 4294967295u;
constexpr uint64_t kDefaultConnectTimeoutMs = 10'000;  // mesh connectTimeout default
constexpr uint64_t kDefaultIdleTimeoutMs = 3'600'000;  // waypoint-facts §1.4: http idle_timeout 1h
constexpr const char* kHttpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

void set_duration(google::protobuf::Duration* d, uint64_t ms) {
  d->set_seconds(static_cast<int64_t>(ms / 1000));
  d->set_nanos(static_cast<int32_t>(ms % 1000) * 1'000'000);
}

// istiod's GetLocalityLbSetting with the mesh default {enabled: true}: the DR's setting unless
// it disables locality LB; without one, the (empty) mesh default.
std::optional<DrLocalityLb> locality_setting(const DrPolicyComponents& p) {
  if (p.load_balancer && p.load_balancer->locality) {
    if (p.load_balancer->locality->enabled == false) return std::nullopt;
    return p.load_balancer->locality;
  }
  DrLocalityLb mesh_default;
  mesh_default.enabled = true;
  return mesh_default;
}

void apply_lb(const DrPolicyComponents& p, cluster::Cluster& c) {
  const DrLoadBalancer lb = p.load_balancer.value_or(DrLoadBalancer{});
  auto slow_start = [&](cluster::Cluster::SlowStartConfig* s) {
    if (lb.warmup_ms) set_duration(s->mutable_slow_start_window(), *lb.warmup_ms);
  };
  if (lb.simple == "RANDOM") {
    c.set_lb_policy(cluster::Cluster::RANDOM);
  } else if (lb.simple == "ROUND_ROBIN") {
    c.set_lb_policy(cluster::Cluster::ROUND_ROBIN);
    if (lb.warmup_ms) slow_start(c.mutable_round_robin_lb_config()->mutable_slow_start_config());
  } else {  // LEAST_REQUEST, LEAST_CONN and unset: Istio's default
    c.set_lb_policy(cluster::Cluster::LEAST_REQUEST);
    if (lb.warmup_ms) slow_start(c.mutable_least_request_lb_config()->mutable_slow_start_config());
  }
  if (!lb.consistent_hash) return;
  const DrConsistentHash& h = *lb.consistent_hash;
  switch (h.table) {
    case DrConsistentHash::Table::Maglev:
      c.set_lb_policy(cluster::Cluster::MAGLEV);
      if (h.table_size != 0) c.mutable_maglev_lb_config()->mutable_table_size()->set_value(h.table_size);
      break;
    case DrConsistentHash::Table::RingHash:
      c.set_lb_policy(cluster::Cluster::RING_HASH);
      if (h.table_size != 0) c.mutable_ring_hash_lb_config()->mutable_minimum_ring_size()->set_value(h.table_size);
      break;
    case DrConsistentHash::Table::Default:
      c.set_lb_policy(cluster::Cluster::RING_HASH);
      c.mutable_ring_hash_lb_config()->mutable_minimum_ring_size()->set_value(
          h.minimum_ring_size != 0 ? h.minimum_ring_size : 1024);
      break;
  }
}

void apply_outlier(const DrPolicyComponents& p, cluster::Cluster& c) {
  if (!p.outlier_detection) return;
  const DrOutlierDetection& o = *p.outlier_detection;
  auto* out = c.mutable_outlier_detection();
  out->mutable_enforcing_success_rate()->set_value(0);
  if (o.consecutive_5xx_errors) {
    out->mutable_consecutive_5xx()->set_value(*o.consecutive_5xx_errors);
    out->mutable_enforcing_consecutive_5xx()->set_value(*o.consecutive_5xx_errors > 0 ? 100 : 0);
  }
  if (o.consecutive_gateway_errors) {
    out->mutable_consecutive_gateway_failure()->set_value(*o.consecutive_gateway_errors);
    out->mutable_enforcing_consecutive_gateway_failure()->set_value(*o.consecutive_gateway_errors > 0 ? 100 : 0);
  }
  if (o.interval_ms) set_duration(out->mutable_interval(), *o.interval_ms);
  if (o.base_ejection_time_ms) set_duration(out->mutable_base_ejection_time(), *o.base_ejection_time_ms);
  if (o.max_ejection_percent > 0)
    out->mutable_max_ejection_percent()->set_value(static_cast<uint32_t>(o.max_ejection_percent));
  // istiod always writes the panic threshold with outlier detection (0 = panic mode off).
  c.mutable_common_lb_config()->mutable_healthy_panic_threshold()->set_value(o.min_health_percent);
}

void apply_connection_pool(const DrPolicyComponents& p, PortHttp port, cluster::Cluster& c) {
  const DrConnectionPool cp = p.connection_pool.value_or(DrConnectionPool{});
  auto* t = c.mutable_circuit_breakers()->add_thresholds();
  t->mutable_max_connections()->set_value(cp.max_connections > 0 ? static_cast<uint32_t>(cp.max_connections) : kMax32);
  t->mutable_max_pending_requests()->set_value(
      cp.http1_max_pending_requests > 0 ? static_cast<uint32_t>(cp.http1_max_pending_requests) : kMax32);
  t->mutable_max_requests()->set_value(cp.http2_max_requests > 0 ? static_cast<uint32_t>(cp.http2_max_requests)
                                                                 : kMax32);
  t->mutable_max_retries()->set_value(cp.max_retries > 0 ? static_cast<uint32_t>(cp.max_retries) : kMax32);
  t->set_track_remaining(true);
  set_duration(c.mutable_connect_timeout(), cp.connect_timeout_ms.value_or(kDefaultConnectTimeoutMs));
  if (cp.tcp_keepalive) {
    auto* k = c.mutable_upstream_connection_options()->mutable_tcp_keepalive();
    if (cp.tcp_keepalive->probes > 0) k->mutable_keepalive_probes()->set_value(cp.tcp_keepalive->probes);
    if (cp.tcp_keepalive->time_ms)
      k->mutable_keepalive_time()->set_value(static_cast<uint32_t>(*cp.tcp_keepalive->time_ms / 1000));
    if (cp.tcp_keepalive->interval_ms)
      k->mutable_keepalive_interval()->set_value(static_cast<uint32_t>(*cp.tcp_keepalive->interval_ms / 1000));
  }

  // Upstream protocol from the port, then the pool's options, then useClientProtocol and
  // h2UpgradePolicy, in istiod's order (an upgrade writes fresh HTTP/2 options).
  HttpOptions o;
  if (port == PortHttp::Http2)
    o.mutable_explicit_http_config()->mutable_http2_protocol_options();
  else if (port == PortHttp::Http1)
    o.mutable_explicit_http_config()->mutable_http_protocol_options();
  else
    o.mutable_use_downstream_protocol_config()->mutable_http2_protocol_options();
  const std::optional<uint64_t> idle = cp.http_idle_timeout_ms ? cp.http_idle_timeout_ms : cp.tcp_idle_timeout_ms;
  set_duration(o.mutable_common_http_protocol_options()->mutable_idle_timeout(), idle.value_or(kDefaultIdleTimeoutMs));
  if (cp.max_requests_per_connection > 0)
    o.mutable_common_http_protocol_options()->mutable_max_requests_per_connection()->set_value(
        static_cast<uint32_t>(cp.max_requests_per_connection));
  if (cp.max_concurrent_streams > 0 && o.has_explicit_http_config() &&
      o.explicit_http_config().has_http2_protocol_options())
    o.mutable_explicit_http_config()->mutable_http2_protocol_options()->mutable_max_concurrent_streams()->set_value(
        static_cast<uint32_t>(cp.max_concurrent_streams));
  if (cp.use_client_protocol) {
    o.mutable_use_downstream_protocol_config()->mutable_http_protocol_options();
    o.mutable_use_downstream_protocol_config()->mutable_http2_protocol_options();
  }
  if (cp.h2_upgrade_policy == "UPGRADE") o.mutable_explicit_http_config()->mutable_http2_protocol_options();
  (*c.mutable_typed_extension_protocol_options())[kHttpOptionsKey].PackFrom(o);
}

// istiod's LocalityMatch: a rule locality "region/zone/subzone" ('*' or missing parts match all).
bool locality_match(const ztunnel::Locality& l, const std::string& rule) {
  std::string parts[3];
  size_t i = 0, start = 0;
  while (i < 3) {
    const size_t slash = rule.find('/', start);
    parts[i++] = rule.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  const bool region = parts[0] == "*" || parts[0] == l.region;
  const bool zone = parts[1] == "*" || parts[1].empty() || parts[1] == l.zone;
  const bool subzone = parts[2] == "*" || parts[2].empty() || parts[2] == l.subzone;
  return region && zone && subzone;
}

// util.LbPriority: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere.
uint32_t proximity(const ztunnel::Locality& proxy, const ztunnel::Locality& ep) {
  if (proxy.region != ep.region) return 3;
  if (proxy.zone != ep.zone) return 2;
  return proxy.subzone == ep.subzone ? 0 : 1;
}

// Priorities must run 0..N without gaps: renumber in increasing order.
void compact_priorities(std::vector<LocalityGroup>& groups) {
  std::set<uint32_t> used;
  for (const auto& g : groups) used.insert(g.priority);
  std::map<uint32_t, uint32_t> rank;
  uint32_t next = 0;
  for (uint32_t p : used) rank[p] = next++;
  for (auto& g : groups) g.priority = rank[g.priority];
}

void apply_locality_failover(const ProxyView& proxy, const std::vector<DrLocalityLb::Failover>& failover,
                             std::vector<LocalityGroup>& groups) {
  for (auto& g : groups) {
    uint32_t prio = proximity(proxy.locality, g.locality);
    if (prio == 3) {
      for (const auto& f : failover) {
        if (f.from == proxy.locality.region) {
          if (g.locality.region != f.to) prio = 4;
          break;
        }
      }
    }
    g.priority = g.priority * 5 + prio;
  }
  compact_priorities(groups);
}

// failoverPriority: within each locality, endpoints are split by how many of the listed labels
// (in order) match the proxy's; a mismatch on the j-th label gives priority N - j.
void apply_failover_priority(const ProxyView& proxy, const std::vector<std::string>& priorities,
                             std::vector<LocalityGroup>& groups) {
  std::vector<std::pair<std::string, std::optional<std::string>>> keys;
  for (const auto& s : priorities) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos)
      keys.emplace_back(s, std::nullopt);
    else
      keys.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  const uint32_t lowest = static_cast<uint32_t>(keys.size());
  std::vector<LocalityGroup> out;
  for (auto& g : groups) {
    std::map<uint32_t, LocalityGroup> by_priority;
    for (auto& e : g.endpoints) {
      uint32_t prio = 0;
      for (uint32_t j = 0; j < keys.size(); ++j) {
        std::string want;
        if (keys[j].second) {
          want = *keys[j].second;
        } else if (auto it = proxy.labels.find(keys[j].first); it != proxy.labels.end()) {
          want = it->second;
        }
        auto have = e.labels.find(keys[j].first);
        if (want != (have == e.labels.end() ? std::string() : have->second)) {
          prio = lowest - j;
          break;
        }
      }
      auto [it, inserted] = by_priority.try_emplace(prio);
      if (inserted) {
        it->second.locality = g.locality;
        it->second.weight = g.weight;
        it->second.priority = prio;
      }
      it->second.endpoints.push_back(std::move(e));
    }
    for (auto& [prio, sub] : by_priority) out.push_back(std::move(sub));
  }
  groups = std::move(out);
  compact_priorities(groups);
}

// applyLocalityWeights: the first distribute rule whose `from` matches the proxy gives each
// matching locality its share (split by endpoint count when a wildcard matches several); the
// localities it does not name get no endpoints.
void apply_distribute(const ProxyView& proxy, const std::vector<DrLocalityLb::Distribute>& rules,
                      std::vector<LocalityGroup>& groups) {
  for (const auto& rule : rules) {
    if (!locality_match(proxy.locality, rule.from)) continue;
    std::vector<bool> unmatched(groups.size(), true);
    for (const auto& [to, weight] : rule.to) {
      std::map<size_t, uint32_t> original;
      uint32_t total = 0;
      for (size_t i = 0; i < groups.size(); ++i) {
        if (!unmatched[i] || !locality_match(groups[i].locality, to)) continue;
        unmatched[i] = false;
        original[i] = groups[i].weight != 0 ? groups[i].weight : 1;
        total += original[i];
      }
      for (const auto& [i, w] : original) {
        const double share = static_cast<double>(w) * weight / total;
        if (share > 0) groups[i].weight = static_cast<uint32_t>(std::ceil(share));
      }
    }
    for (size_t i = 0; i < groups.size(); ++i) {
      if (unmatched[i]) groups[i].endpoints.clear();
    }
    return;
  }
}

}  // namespace

void apply_cluster_policy(const DrPolicyComponents& policy, PortHttp port, cluster::Cluster& c) {
  apply_connection_pool(policy, port, c);
  apply_outlier(policy, c);
  const auto locality = locality_setting(policy);
  const bool failover = policy.outlier_detection.has_value();
  if (locality && ((failover && (!locality->failover.empty() || !locality->failover_priority.empty())) ||
                   !locality->distribute.empty()))
    c.mutable_common_lb_config()->mutable_locality_weighted_lb_config();
  apply_lb(policy, c);
}

bool route_hash_policy(const DrPolicyComponents& policy, route::RouteAction_HashPolicy& out) {
  if (!policy.load_balancer || !policy.load_balancer->consistent_hash) return false;
  const DrConsistentHash& h = *policy.load_balancer->consistent_hash;
  switch (h.key) {
    case DrConsistentHash::Key::Header:
      out.mutable_header()->set_header_name(h.name);
      break;
    case DrConsistentHash::Key::Cookie:
      out.mutable_cookie()->set_name(h.name);
      out.mutable_cookie()->set_path(h.cookie_path);
      if (h.cookie_ttl_ms) set_duration(out.mutable_cookie()->mutable_ttl(), *h.cookie_ttl_ms);
      break;
    case DrConsistentHash::Key::SourceIp:
      out.mutable_connection_properties()->set_source_ip(true);
      break;
    case DrConsistentHash::Key::QueryParameter:
      out.mutable_query_parameter()->set_name(h.name);
      break;
  }
  return true;
}

bool endpoints_depend_on_proxy(const DrPolicyComponents& policy) {
  const auto locality = locality_setting(policy);
  if (!locality) return false;
  return !locality->distribute.empty() || policy.outlier_detection.has_value();
}

void apply_locality_lb(const DrPolicyComponents& policy, const ProxyView& proxy, std::vector<LocalityGroup>& groups) {
  const auto locality = locality_setting(policy);
  if (!locality) return;
  if (!locality->distribute.empty()) {
    apply_distribute(proxy, locality->distribute, groups);
    return;
  }
  // Failover needs outlier detection: without it Envoy never leaves priority 0 (istiod's rule).
  if (!policy.outlier_detection) return;
  if (!locality->failover_priority.empty()) {
    apply_failover_priority(proxy, locality->failover_priority, groups);
    if (!locality->failover.empty()) apply_locality_failover(proxy, locality->failover, groups);
  } else {
    apply_locality_failover(proxy, locality->failover, groups);
  }
}

Labels augment_labels(const Labels& labels, const ztunnel::Locality& locality, const std::string& cluster_id,
                      const std::string& node, const std::string& network) {
  Labels out = labels;
  if (!locality.region.empty()) out["topology.kubernetes.io/region"] = locality.region;
  if (!locality.zone.empty()) out["topology.kubernetes.io/zone"] = locality.zone;
  if (!locality.subzone.empty()) out["topology.istio.io/subzone"] = locality.subzone;
  if (!cluster_id.empty()) out["topology.istio.io/cluster"] = cluster_id;
  if (!node.empty()) out["kubernetes.io/hostname"] = node;
  if (!network.empty() && out["topology.istio.io/network"].empty()) out["topology.istio.io/network"] = network;
  return out;
}

}  // namespace controlplane
