#include "ztunnel/state.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <random>

#include "ztunnel/local_config.h"
#include "ztunnel/workload_index.h"

namespace ztunnel {

// ---------------------------------------------------------------------------------------------
// Build

namespace {

// Later duplicates replace earlier ones, keeping first-seen order for stable dumps.
template <typename Ptr, typename KeyOf>
void dedup(std::vector<Ptr>& items, KeyOf key_of) {
  std::unordered_map<std::string, size_t> pos;
  pos.reserve(items.size());
  std::vector<Ptr> out;
  out.reserve(items.size());
  for (auto& item : items) {
    auto [it, inserted] = pos.emplace(key_of(*item), out.size());
    if (inserted) {
      out.push_back(std::move(item));
    } else {
      out[it->second] = std::move(item);
    }
  }
  items = std::move(out);
}

bool all_canonical(const std::vector<IpAddr>& ips) {
  return std::all_of(ips.begin(), ips.end(), [](const IpAddr& ip) { return canonical_ip(ip) == ip; });
}

}  // namespace

SnapshotConstSharedPtr Snapshot::build(std::vector<Workload> workloads,
                                       std::vector<Service> services,
                                       std::vector<Authorization> policies, uint64_t version) {
  std::vector<WorkloadPtr> ws;
  ws.reserve(workloads.size());
  for (auto& w : workloads) ws.push_back(std::make_shared<const Workload>(std::move(w)));
  std::vector<ServicePtr> ss;
  ss.reserve(services.size());
  for (auto& s : services) ss.push_back(std::make_shared<const Service>(std::move(s)));
  std::vector<AuthorizationPtr> ps;
  ps.reserve(policies.size());
  for (auto& p : policies) ps.push_back(std::make_shared<const Authorization>(std::move(p)));
  return build_shared(std::move(ws), std::move(ss), std::move(ps), version);
}

SnapshotConstSharedPtr Snapshot::build_shared(std::vector<WorkloadPtr> workloads,
                                              std::vector<ServicePtr> services,
                                              std::vector<AuthorizationPtr> policies,
                                              uint64_t version, bool prepared) {
  auto snap = std::make_shared<Snapshot>(Tag{});
  snap->version_ = version;
  if (prepared) {
    snap->workloads_ = std::move(workloads);
    snap->services_ = std::move(services);
    snap->policies_ = std::move(policies);
    snap->index();
    return snap;
  }

  dedup(workloads, [](const Workload& w) { return w.uid; });
  dedup(services, [](const Service& s) { return s.key(); });
  dedup(policies, [](const Authorization& a) { return a.key(); });

  // Canonical IPs make the address indexes exact-match. Objects are shared, so a fix is made
  // on a copy (xDS input is normalised at conversion and never takes this path).
  for (auto& w : workloads) {
    if (all_canonical(w->addresses)) continue;
    auto copy = std::make_shared<Workload>(*w);
    for (auto& ip : copy->addresses) ip = canonical_ip(ip);
    w = std::move(copy);
  }
  for (auto& s : services) {
    if (std::all_of(s->vips.begin(), s->vips.end(),
                    [](const NetworkAddress& v) { return canonical_ip(v.ip) == v.ip; })) {
      continue;
    }
    auto copy = std::make_shared<Service>(*s);
    for (auto& v : copy->vips) v.ip = canonical_ip(v.ip);
    s = std::move(copy);
  }

  snap->workloads_ = std::move(workloads);
  snap->services_ = std::move(services);
  snap->policies_ = std::move(policies);
  snap->index();
  return snap;
}

SnapshotConstSharedPtr Snapshot::update(const Snapshot& prev, std::vector<WorkloadPtr> workloads,
                                        std::vector<ServicePtr> services, std::vector<AuthorizationPtr> policies,
                                        std::span<const std::pair<WorkloadPtr, WorkloadPtr>> workload_changes,
                                        uint64_t version) {
  if (!prev.workload_index_) {
    return build_shared(std::move(workloads), std::move(services), std::move(policies), version, true);
  }
  auto snap = std::make_shared<Snapshot>(Tag{});
  snap->version_ = version;
  snap->workloads_ = std::move(workloads);
  snap->services_ = std::move(services);
  snap->policies_ = std::move(policies);
  snap->workload_index_ = prev.workload_index_->with(workload_changes);
  snap->index();
  return snap;
}

SnapshotConstSharedPtr Snapshot::from_local_config(LocalConfig config, uint64_t version) {
  return build(std::move(config.workloads), std::move(config.services),
               std::move(config.policies), version);
}

SnapshotConstSharedPtr Snapshot::empty() {
  static const SnapshotConstSharedPtr kEmpty = build({}, {}, {}, 0);
  return kEmpty;
}

namespace {

// Upstream's tie-break when several workloads claim one address: Pods first (not spoofable via
// WorkloadEntry), then HBONE-enabled ones.
int address_claim_rank(const Workload& w) {
  const bool is_pod = w.uid.find("//Pod/") != std::string::npos;
  const bool is_hbone = w.tunnel_protocol == TunnelProtocol::Hbone;
  return (is_pod ? 2 : 0) + (is_hbone ? 1 : 0);
}

const std::pair<std::string, size_t>* find_in(
    const std::unordered_map<IpAddr, std::vector<std::pair<std::string, size_t>>>& idx,
    std::string_view network, const IpAddr& ip) {
  auto it = idx.find(canonical_ip(ip));
  if (it == idx.end()) return nullptr;
  for (const auto& entry : it->second) {
    if (entry.first == network) return &entry;
  }
  return nullptr;
}

}  // namespace

void Snapshot::index() {
  if (!workload_index_) workload_index_ = WorkloadIndex::build(workloads_);

  endpoints_.resize(services_.size());
  service_index_.reserve(services_.size());
  service_by_key_.reserve(services_.size());
  for (size_t i = 0; i < services_.size(); ++i) {
    const Service& s = *services_[i];
    service_index_.emplace(&s, i);
    service_by_key_.emplace(s.key(), i);
    for (const auto& vip : s.vips) {
      auto& slot = service_by_vip_[vip.ip];
      auto it = std::find_if(slot.begin(), slot.end(),
                             [&](const auto& e) { return e.first == vip.network; });
      if (it == slot.end()) {
        slot.emplace_back(vip.network, i);
      } else {
        it->second = i;
      }
    }
  }

  // Endpoints: from each workload's services map, then explicit ones from the service (the
  // explicit entry wins for the same workload). Health filtering happens here, as upstream
  // does at ingest.
  auto include = [](const Service& s, HealthStatus status) {
    return status == HealthStatus::Healthy ||
           (s.load_balancer && s.load_balancer->health_policy == LoadBalancerHealthPolicy::AllowAll);
  };
  std::string key;
  for (size_t i = 0; i < services_.size(); ++i) {
    const Service& s = *services_[i];
    key.assign(s.ns).append("/").append(s.hostname);
    for (const Workload* w : workload_index_->members(key)) {
      if (!include(s, w->status)) continue;
      endpoints_[i].push_back(ServiceEndpoint{w, &w->services.find(key)->second, w->status});
    }
  }
  for (size_t i = 0; i < services_.size(); ++i) {
    const Service& s = *services_[i];
    for (const Endpoint& ep : s.endpoints) {
      const Workload* w = find_workload_by_uid(ep.workload_uid);
      if (w == nullptr) continue;
      auto& eps = endpoints_[i];
      eps.erase(std::remove_if(eps.begin(), eps.end(),
                               [&](const ServiceEndpoint& e) { return e.workload == w; }),
                eps.end());
      if (!include(s, ep.status)) continue;
      eps.push_back(ServiceEndpoint{w, &ep.port, ep.status});
    }
  }

  for (size_t i = 0; i < policies_.size(); ++i) {
    const Authorization& p = *policies_[i];
    policy_by_key_.emplace(p.key(), i);
    switch (p.scope) {
      case AuthzScope::Global:
        policies_by_ns_[""].push_back(&p);
        break;
      case AuthzScope::Namespace:
        policies_by_ns_[p.ns].push_back(&p);
        break;
      case AuthzScope::WorkloadSelector:
        break;  // reachable only through Workload::authorization_policies
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Lookups

const Workload* Snapshot::find_workload_by_uid(std::string_view uid) const {
  return workload_index_->by_uid(uid);
}

const Workload* Snapshot::find_workload(std::string_view network, const IpAddr& ip) const {
  // Among the claimants on that network, upstream's preference; equal rank -> the larger uid
  // (deterministic whatever order the workloads arrived in).
  const Workload* best = nullptr;
  for (const Workload* w : workload_index_->claimants(canonical_ip(ip))) {
    if (w->network != network) continue;
    if (best == nullptr) {
      best = w;
      continue;
    }
    const int rw = address_claim_rank(*w), rb = address_claim_rank(*best);
    if (rw > rb || (rw == rb && w->uid > best->uid)) best = w;
  }
  return best;
}

const Workload* Snapshot::find_workload_by_info(std::string_view ns, std::string_view name,
                                                std::string_view service_account) const {
  for (const auto& w : workloads_) {
    if (w->ns == ns && w->name == name && w->service_account == service_account) return w.get();
  }
  return nullptr;
}

const Service* Snapshot::find_service(std::string_view network, const IpAddr& vip) const {
  const auto* e = find_in(service_by_vip_, network, vip);
  return e ? services_[e->second].get() : nullptr;
}

const Service* Snapshot::find_service_by_key(std::string_view key) const {
  auto it = service_by_key_.find(key);
  return it == service_by_key_.end() ? nullptr : services_[it->second].get();
}

const Service* Snapshot::find_service_by_host(std::string_view ns,
                                              std::string_view hostname) const {
  // Small stack buffer would be premature: this is not on the per-connection path.
  std::string key;
  key.reserve(ns.size() + hostname.size() + 1);
  key.append(ns).append("/").append(hostname);
  return find_service_by_key(key);
}

const Authorization* Snapshot::find_policy(std::string_view key) const {
  auto it = policy_by_key_.find(key);
  return it == policy_by_key_.end() ? nullptr : policies_[it->second].get();
}

std::span<const Authorization* const> Snapshot::namespace_policies(std::string_view ns) const {
  auto it = policies_by_ns_.find(ns);
  if (it == policies_by_ns_.end()) return {};
  return it->second;
}

std::span<const ServiceEndpoint> Snapshot::endpoints(const Service& service) const {
  // `service` must come from this snapshot (an object of another generation may be shared with
  // this one, and then its endpoints here are this snapshot's).
  auto it = service_index_.find(&service);
  if (it == service_index_.end()) return {};  // not one of ours
  return endpoints_[it->second];
}

std::vector<const Service*> Snapshot::services_of(const Workload& workload) const {
  std::vector<const Service*> out;
  out.reserve(workload.services.size());
  for (const auto& [key, ports] : workload.services) {
    if (const Service* s = find_service_by_key(key)) out.push_back(s);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Load balancing

namespace {

const ServiceEndpoint* find_endpoint(std::span<const ServiceEndpoint> eps, const Workload& w) {
  for (const auto& e : eps) {
    if (e.workload == &w) return &e;
  }
  return nullptr;
}

std::optional<uint16_t> resolve_target_port(const Service& service, uint16_t service_port,
                                            const Workload& w, const PortMap* ep_ports) {
  if (ep_ports) {
    if (auto p = ep_ports->find(service_port)) return *p;
  }
  const uint16_t svc_target = service.ports.find(service_port).value_or(0);
  if (svc_target > 0) return svc_target;
  if (w.application_tunnel && w.application_tunnel->port != 0) return service_port;
  return std::nullopt;
}

// Number of leading routing preferences on which `src` and `dst` agree.
size_t rank_of(const LoadBalancer& lb, const Workload* src, const Workload& dst) {
  if (src == nullptr) return 0;
  size_t rank = 0;
  for (LoadBalancerScope scope : lb.routing_preferences) {
    bool same = false;
    switch (scope) {
      case LoadBalancerScope::Region: same = src->locality.region == dst.locality.region; break;
      case LoadBalancerScope::Zone: same = src->locality.zone == dst.locality.zone; break;
      case LoadBalancerScope::Subzone: same = src->locality.subzone == dst.locality.subzone; break;
      case LoadBalancerScope::Node: same = src->node == dst.node; break;
      case LoadBalancerScope::Cluster: same = src->cluster_id == dst.cluster_id; break;
      case LoadBalancerScope::Network: same = src->network == dst.network; break;
    }
    if (!same) break;
    ++rank;
  }
  return rank;
}

}  // namespace

std::optional<uint16_t> Snapshot::target_port(const Service& service, uint16_t service_port,
                                              const Workload& workload) const {
  const ServiceEndpoint* ep = find_endpoint(endpoints(service), workload);
  return resolve_target_port(service, service_port, workload, ep ? ep->port : nullptr);
}

std::optional<EndpointChoice> Snapshot::choose_endpoint(const Service& service,
                                                        uint16_t service_port,
                                                        const Workload* source, uint64_t random,
                                                        ResolutionMode mode) const {
  const auto svc_target = service.ports.find(service_port);
  if (mode == ResolutionMode::Standard && !svc_target) return std::nullopt;
  const std::span<const ServiceEndpoint> eps = endpoints(service);

  // Port filter (upstream): a named (0) target port needs a per-endpoint override; in waypoint
  // mode an undefined port is fine only for application-tunnel waypoints.
  auto eligible = [&](const ServiceEndpoint& e) {
    if (mode == ResolutionMode::Standard) {
      return svc_target.value_or(0) != 0 || e.port->find(service_port).has_value();
    }
    return svc_target.has_value() || e.workload->application_tunnel.has_value();
  };

  const LoadBalancer* lb =
      service.load_balancer && service.load_balancer->mode != LoadBalancerMode::Standard
          ? &*service.load_balancer
          : nullptr;
  constexpr size_t kDropped = static_cast<size_t>(-1);
  auto rank = [&](const ServiceEndpoint& e) -> size_t {
    if (lb == nullptr) return 0;
    const size_t r = rank_of(*lb, source, *e.workload);
    if (lb->mode == LoadBalancerMode::Strict && r != lb->routing_preferences.size()) return kDropped;
    return r;
  };

  // Three passes over a handful of endpoints instead of a temporary vector: best rank, total
  // weight at that rank, then the weighted pick.
  size_t best = kDropped;
  for (const auto& e : eps) {
    if (!eligible(e)) continue;
    const size_t r = rank(e);
    if (r == kDropped) continue;
    if (best == kDropped || r > best) best = r;
  }
  if (best == kDropped) return std::nullopt;

  uint64_t total_weight = 0;
  uint64_t count = 0;
  for (const auto& e : eps) {
    if (!eligible(e) || rank(e) != best) continue;
    total_weight += e.workload->capacity;
    ++count;
  }
  // Upstream's weighted choice fails when every weight is 0: no upstream.
  if (total_weight == 0 || count == 0) return std::nullopt;
  uint64_t pick = random % total_weight;

  for (const auto& e : eps) {
    if (!eligible(e) || rank(e) != best) continue;
    const uint64_t w = e.workload->capacity;
    if (pick >= w) {
      pick -= w;
      continue;
    }
    auto port = resolve_target_port(service, service_port, *e.workload, e.port);
    if (!port) return std::nullopt;  // upstream: chosen endpoint without a usable port
    return EndpointChoice{e.workload, *port};
  }
  return std::nullopt;  // unreachable: pick < total
}

uint64_t lb_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

// ---------------------------------------------------------------------------------------------
// Outbound routing

std::string_view to_string(RouteKind k) {
  switch (k) {
    case RouteKind::Hbone: return "hbone";
    case RouteKind::Waypoint: return "waypoint";
    case RouteKind::Tcp: return "tcp";
    case RouteKind::Passthrough: return "passthrough";
    case RouteKind::NoHealthyUpstream: return "no_healthy_upstream";
    case RouteKind::Unroutable: return "unroutable";
  }
  return "unknown";
}

namespace {

// Workload identity + the service's subject alt names (upstream workload_and_services_san).
std::vector<common::Identity> expected_sans(const Workload& w, const Service* s) {
  std::vector<common::Identity> out;
  out.push_back(w.identity());
  if (s != nullptr) {
    for (const auto& san : s->subject_alt_names) {
      auto id = common::Identity::parse(san);
      if (id && std::find(out.begin(), out.end(), *id) == out.end()) out.push_back(*id);
    }
  }
  return out;
}

// Picks which of the workload's IPs to dial: the one the client used if it belongs to the
// workload, else one allowed by the service's IP family restriction, preferring the family of
// the original destination.
std::optional<IpAddr> pick_workload_ip(const Workload& w, const IpAddr& original,
                                       const Service* s) {
  if (w.has_address(original)) return original;
  auto allowed = [&](const IpAddr& ip) {
    if (s == nullptr || !s->ip_families) return true;
    switch (*s->ip_families) {
      case IpFamily::Dual: return true;
      case IpFamily::IPv4: return ip.is_v4();
      case IpFamily::IPv6: return ip.is_v6();
    }
    return true;
  };
  const IpAddr* first = nullptr;
  for (const auto& ip : w.addresses) {
    if (!allowed(ip)) continue;
    if (ip.is_v6() == original.is_v6()) return ip;
    if (first == nullptr) first = &ip;
  }
  if (first) return *first;
  return std::nullopt;
}

struct ResolvedWaypoint {
  const Workload* workload = nullptr;
  const Service* service = nullptr;  // the waypoint's service, when resolved through one
  IpAddr ip;
  uint16_t port = 0;
};

// Resolves a GatewayAddress to one concrete waypoint instance.
std::optional<ResolvedWaypoint> resolve_waypoint(const Snapshot& snap, const GatewayAddress& gw,
                                                 const Workload& source, const IpAddr& original,
                                                 uint64_t random) {
  // As upstream fetch_waypoint: by address, a service VIP wins over a workload IP and the
  // address itself is the family hint; by hostname, the client's original destination is.
  const Service* svc = nullptr;
  IpAddr hint = original;
  if (const auto* addr = gw.address()) {
    hint = canonical_ip(addr->ip);
    svc = snap.find_service(addr->network, addr->ip);
    if (svc == nullptr) {
      const Workload* w = snap.find_workload(addr->network, addr->ip);
      if (w == nullptr) return std::nullopt;
      return ResolvedWaypoint{w, nullptr, hint, gw.hbone_mtls_port};
    }
  } else {
    svc = snap.find_service_by_host(gw.hostname()->ns, gw.hostname()->hostname);
  }
  if (svc == nullptr) return std::nullopt;
  auto choice = snap.choose_endpoint(*svc, gw.hbone_mtls_port, &source, random,
                                     ResolutionMode::Waypoint);
  if (!choice) return std::nullopt;
  auto ip = pick_workload_ip(*choice->workload, hint, svc);
  if (!ip) return std::nullopt;
  return ResolvedWaypoint{choice->workload, svc, *ip, choice->target_port};
}

// True when `source` is one of the instances behind `gw` (a waypoint calling onwards must not
// be sent back to itself).
bool is_waypoint_instance(const Snapshot& snap, const GatewayAddress& gw,
                          const Workload& source) {
  if (const auto* addr = gw.address()) {
    if (addr->network == source.network && source.has_address(canonical_ip(addr->ip))) return true;
    if (const Service* s = snap.find_service(addr->network, addr->ip)) {
      for (const auto& e : snap.endpoints(*s)) {
        if (e.workload == &source || e.workload->uid == source.uid) return true;
      }
    }
    return false;
  }
  if (const Service* s = snap.find_service_by_host(gw.hostname()->ns, gw.hostname()->hostname)) {
    for (const auto& e : snap.endpoints(*s)) {
      if (e.workload == &source || e.workload->uid == source.uid) return true;
    }
  }
  return false;
}

OutboundRoute waypoint_route(const ResolvedWaypoint& wp, const Workload& source,
                             const IpAddr& dst_ip, uint16_t dst_port, const Service* intended) {
  OutboundRoute r;
  if (wp.workload->network != source.network) {
    r.kind = RouteKind::Unroutable;
    r.error = "waypoint on another network (double HBONE) is not supported";
    return r;
  }
  r.kind = RouteKind::Waypoint;
  r.target = SocketAddr{wp.ip, wp.port};
  r.authority = format_socket_addr(dst_ip, dst_port);  // the original destination
  r.expected_identities = expected_sans(*wp.workload, wp.service);
  r.destination_workload = wp.workload;
  r.destination_service = intended;
  return r;
}

}  // namespace

OutboundRoute route_outbound(const Snapshot& snap, const Workload& source, const IpAddr& dst_ip_in,
                             uint16_t dst_port, uint64_t random) {
  const IpAddr dst_ip = canonical_ip(dst_ip_in);
  const std::string& network = source.network;

  // Rule 1: service-addressed traffic with a service waypoint. Workload addresses win over
  // VIPs (upstream find_address checks workloads first).
  const Service* service = nullptr;
  if (snap.find_workload(network, dst_ip) == nullptr) service = snap.find_service(network, dst_ip);
  if (service != nullptr && service->waypoint && !is_waypoint_instance(snap, *service->waypoint, source)) {
    auto wp = resolve_waypoint(snap, *service->waypoint, source, dst_ip, random);
    if (!wp) {
      OutboundRoute r;
      r.kind = RouteKind::Unroutable;
      r.destination_service = service;
      r.error = "waypoint " + service->waypoint->to_string() + " of service " + service->key() +
                " not found";
      return r;
    }
    return waypoint_route(*wp, source, dst_ip, dst_port, service);
  }

  // Rule 2: pick the backend.
  const Workload* backend = nullptr;
  uint16_t backend_port = dst_port;
  if (service != nullptr) {
    const bool passthrough =
        service->load_balancer && service->load_balancer->mode == LoadBalancerMode::Passthrough;
    std::optional<EndpointChoice> choice;
    if (!passthrough) choice = snap.choose_endpoint(*service, dst_port, &source, random);
    if (!choice) {
      OutboundRoute r;
      r.destination_service = service;
      if (passthrough) {
        r.kind = RouteKind::Passthrough;
        r.target = SocketAddr{dst_ip, dst_port};
      } else {
        r.kind = RouteKind::NoHealthyUpstream;
        r.error = "no healthy upstream for service " + service->key() + " port " +
                  std::to_string(dst_port);
      }
      return r;
    }
    backend = choice->workload;
    backend_port = choice->target_port;
  } else {
    backend = snap.find_workload(network, dst_ip);
  }

  if (backend == nullptr) {
    OutboundRoute r;
    r.kind = RouteKind::Passthrough;
    r.target = SocketAddr{dst_ip, dst_port};
    return r;
  }
  if (backend->network != network) {
    OutboundRoute r;
    r.kind = RouteKind::Unroutable;
    r.destination_workload = backend;
    r.destination_service = service;
    r.error = "destination on another network (double HBONE) is not supported";
    return r;
  }

  // Workload-addressed traffic to a workload with a waypoint.
  if (service == nullptr && backend->waypoint &&
      !is_waypoint_instance(snap, *backend->waypoint, source)) {
    auto wp = resolve_waypoint(snap, *backend->waypoint, source, dst_ip, random);
    if (!wp) {
      OutboundRoute r;
      r.kind = RouteKind::Unroutable;
      r.destination_workload = backend;
      r.error = "waypoint " + backend->waypoint->to_string() + " of workload " + backend->uid +
                " not found";
      return r;
    }
    return waypoint_route(*wp, source, dst_ip, dst_port, nullptr);
  }

  // Rule 3: direct to the backend.
  OutboundRoute r;
  r.destination_workload = backend;
  r.destination_service = service;
  auto ip = pick_workload_ip(*backend, dst_ip, service);
  if (!ip) {
    r.kind = RouteKind::Unroutable;
    r.error = "workload " + backend->uid + " has no usable IP address";
    return r;
  }
  if (backend->tunnel_protocol == TunnelProtocol::Hbone) {
    r.kind = RouteKind::Hbone;
    r.target = SocketAddr{*ip, kDefaultHboneMtlsPort};
    r.authority = format_socket_addr(*ip, backend_port);
    r.expected_identities = expected_sans(*backend, service);
  } else {
    r.kind = RouteKind::Tcp;
    r.target = SocketAddr{*ip, backend_port};
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// /config_dump

namespace {

using nlohmann::json;

json port_map_json(const PortMap& m) {
  json o = json::object();
  for (const auto& [from, to] : m) o[std::to_string(from)] = to;
  return o;
}

json gateway_json(const GatewayAddress& g) {
  return json{{"destination", g.to_string()}, {"hboneMtlsPort", g.hbone_mtls_port}};
}

json workload_json(const Workload& w) {
  json j;
  json ips = json::array();
  for (const auto& ip : w.addresses) ips.push_back(ip.to_string());
  j["workloadIps"] = std::move(ips);
  if (w.waypoint) j["waypoint"] = gateway_json(*w.waypoint);
  if (w.network_gateway) j["networkGateway"] = gateway_json(*w.network_gateway);
  j["protocol"] = to_string(w.tunnel_protocol);
  j["networkMode"] = to_string(w.network_mode);
  j["uid"] = w.uid;
  j["name"] = w.name;
  j["namespace"] = w.ns;
  j["trustDomain"] = w.trust_domain;
  j["serviceAccount"] = w.service_account;
  auto opt = [&](const char* key, const std::string& v) {
    if (!v.empty()) j[key] = v;
  };
  opt("network", w.network);
  opt("workloadName", w.workload_name);
  opt("workloadType", w.workload_type);
  opt("canonicalName", w.canonical_name);
  opt("canonicalRevision", w.canonical_revision);
  opt("hostname", w.hostname);
  opt("node", w.node);
  if (w.native_tunnel) j["nativeTunnel"] = true;
  if (w.application_tunnel) {
    json at{{"protocol", to_string(w.application_tunnel->protocol)}};
    if (w.application_tunnel->port) at["port"] = w.application_tunnel->port;
    j["applicationTunnel"] = std::move(at);
  }
  if (!w.authorization_policies.empty()) j["authorizationPolicies"] = w.authorization_policies;
  j["status"] = to_string(w.status);
  j["clusterId"] = w.cluster_id;
  if (!w.locality.empty()) {
    j["locality"] = json{{"region", w.locality.region},
                         {"zone", w.locality.zone},
                         {"subzone", w.locality.subzone}};
  }
  if (!w.services.empty()) {
    json svcs = json::array();
    for (const auto& [key, ports] : w.services) svcs.push_back(key);
    j["services"] = std::move(svcs);
  }
  j["capacity"] = w.capacity;
  return j;
}

json string_match_json(const StringMatch& m) {
  switch (m.kind) {
    case StringMatch::Kind::Exact: return json{{"Exact", m.value}};
    case StringMatch::Kind::Prefix: return json{{"Prefix", m.value}};
    case StringMatch::Kind::Suffix: return json{{"Suffix", m.value}};
    case StringMatch::Kind::Presence: return json{{"Presence", json::array()}};
  }
  return json::object();
}

json match_json(const AuthzMatch& m) {
  json j = json::object();
  auto strings = [&](const char* key, const std::vector<StringMatch>& v) {
    if (v.empty()) return;
    json a = json::array();
    for (const auto& s : v) a.push_back(string_match_json(s));
    j[key] = std::move(a);
  };
  auto cidrs = [&](const char* key, const std::vector<Cidr>& v) {
    if (v.empty()) return;
    json a = json::array();
    for (const auto& c : v) a.push_back(c.to_string());
    j[key] = std::move(a);
  };
  auto ports = [&](const char* key, const std::vector<uint16_t>& v) {
    if (!v.empty()) j[key] = v;
  };
  auto sas = [&](const char* key, const std::vector<ServiceAccountMatch>& v) {
    if (v.empty()) return;
    json a = json::array();
    for (const auto& s : v) a.push_back(json{{"namespace", s.ns}, {"serviceAccount", s.service_account}});
    j[key] = std::move(a);
  };
  strings("namespaces", m.namespaces);
  strings("notNamespaces", m.not_namespaces);
  sas("serviceAccounts", m.service_accounts);
  sas("notServiceAccounts", m.not_service_accounts);
  strings("principals", m.principals);
  strings("notPrincipals", m.not_principals);
  cidrs("sourceIps", m.source_ips);
  cidrs("notSourceIps", m.not_source_ips);
  cidrs("destinationIps", m.destination_ips);
  cidrs("notDestinationIps", m.not_destination_ips);
  ports("destinationPorts", m.destination_ports);
  ports("notDestinationPorts", m.not_destination_ports);
  return j;
}

json policy_json(const Authorization& p) {
  json rules = json::array();
  for (const auto& rule : p.rules) {
    json clauses = json::array();
    for (const auto& clause : rule) {
      json matches = json::array();
      for (const auto& m : clause) matches.push_back(match_json(m));
      clauses.push_back(std::move(matches));
    }
    rules.push_back(std::move(clauses));
  }
  return json{{"name", p.name},          {"namespace", p.ns},
              {"scope", to_string(p.scope)}, {"action", to_string(p.action)},
              {"rules", std::move(rules)}, {"dryRun", p.dry_run}};
}

}  // namespace

nlohmann::json Snapshot::to_json() const {
  json ws = json::array();
  for (const auto& w : workloads_) ws.push_back(workload_json(*w));

  json ss = json::array();
  for (size_t i = 0; i < services_.size(); ++i) {
    const Service& s = *services_[i];
    json j;
    j["name"] = s.name;
    j["namespace"] = s.ns;
    j["hostname"] = s.hostname;
    json vips = json::array();
    for (const auto& v : s.vips) vips.push_back(v.to_string());
    j["vips"] = std::move(vips);
    j["ports"] = port_map_json(s.ports);
    json eps = json::object();
    for (const auto& e : endpoints_[i]) {
      eps[e.workload->uid] = json{{"workloadUid", e.workload->uid},
                                  {"port", port_map_json(*e.port)},
                                  {"status", to_string(e.status)}};
    }
    j["endpoints"] = std::move(eps);
    j["subjectAltNames"] = s.subject_alt_names;
    if (s.waypoint) j["waypoint"] = gateway_json(*s.waypoint);
    if (s.load_balancer) {
      json prefs = json::array();
      for (auto p : s.load_balancer->routing_preferences) prefs.push_back(to_string(p));
      j["loadBalancer"] = json{{"routingPreferences", std::move(prefs)},
                               {"mode", to_string(s.load_balancer->mode)},
                               {"healthPolicy", to_string(s.load_balancer->health_policy)}};
    }
    if (s.ip_families) j["ipFamilies"] = to_string(*s.ip_families);
    j["canonical"] = s.canonical;
    ss.push_back(std::move(j));
  }

  json ps = json::array();
  for (const auto& p : policies_) ps.push_back(policy_json(*p));

  return json{{"workloads", std::move(ws)}, {"services", std::move(ss)}, {"policies", std::move(ps)}};
}

}  // namespace ztunnel
