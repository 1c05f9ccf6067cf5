#include "ztunnel/state/route.h"

namespace ztunnel {

std::string_view to_string(RouteKind k) {
  switch (k) {
    case RouteKind::Hbone:
      return "hbone";
    case RouteKind::Waypoint:
      return "waypoint";
    case RouteKind::Tcp:
      return "tcp";
    case RouteKind::Passthrough:
      return "passthrough";
    case RouteKind::NoHealthyUpstream:
      return "no_healthy_upstream";
    case RouteKind::Unroutable:
      return "unroutable";
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
std::optional<IpAddr> pick_workload_ip(const Workload& w, const IpAddr& original, const Service* s) {
  if (w.has_address(original)) return original;
  auto allowed = [&](const IpAddr& ip) {
    if (s == nullptr || !s->ip_families) return true;
    switch (*s->ip_families) {
      case IpFamily::Dual:
        return true;
      case IpFamily::IPv4:
        return ip.is_v4();
      case IpFamily::IPv6:
        return ip.is_v6();
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
std::optional<ResolvedWaypoint> resolve_waypoint(const Snapshot& snap, const GatewayAddress& gw, const Workload& source,
                                                 const IpAddr& original, uint64_t random) {
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
  auto choice = snap.choose_endpoint(*svc, gw.hbone_mtls_port, &source, random, ResolutionMode::Waypoint);
  if (!choice) return std::nullopt;
  auto ip = pick_workload_ip(*choice->workload, hint, svc);
  if (!ip) return std::nullopt;
  return ResolvedWaypoint{choice->workload, svc, *ip, choice->target_port};
}

// True when `source` is one of the instances behind `gw` (a waypoint calling onwards must not
// be sent back to itself).
bool is_waypoint_instance(const Snapshot& snap, const GatewayAddress& gw, const Workload& source) {
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

OutboundRoute waypoint_route(const ResolvedWaypoint& wp, const Workload& source, const IpAddr& dst_ip,
                             uint16_t dst_port, const Service* intended) {
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

OutboundRoute route_outbound(const Snapshot& snap, const Workload& source, const IpAddr& dst_ip_in, uint16_t dst_port,
                             uint64_t random) {
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
      r.error = "waypoint " + service->waypoint->to_string() + " of service " + service->key() + " not found";
      return r;
    }
    return waypoint_route(*wp, source, dst_ip, dst_port, service);
  }

  // Rule 2: pick the backend.
  const Workload* backend = nullptr;
  uint16_t backend_port = dst_port;
  if (service != nullptr) {
    const bool passthrough = service->load_balancer && service->load_balancer->mode == LoadBalancerMode::Passthrough;
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
        r.error = "no healthy upstream for service " + service->key() + " port " + std::to_string(dst_port);
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
  if (service == nullptr && backend->waypoint && !is_waypoint_instance(snap, *backend->waypoint, source)) {
    auto wp = resolve_waypoint(snap, *backend->waypoint, source, dst_ip, random);
    if (!wp) {
      OutboundRoute r;
      r.kind = RouteKind::Unroutable;
      r.destination_workload = backend;
      r.error = "waypoint " + backend->waypoint->to_string() + " of workload " + backend->uid + " not found";
      return r;
    }
    return waypoint_route(*wp, source, dst_ip, dst_port, nullptr);
  }

  // Rule 3: direct to the backend.
  OutboundRoute r;
  r.destination_workload = backend;
  r.destination_service = service;
  auto ip = pick_workload_ip(*backend, dst_ip, service);
  if (!ip && backend->addresses.empty() && !backend->hostname.empty()) {
    // Upstream pick_workload_destination_or_resolve: no address but a hostname -> on-demand DNS.
    r.resolve_hostname = backend->hostname;
    r.resolved_port = backend_port;
    if (backend->tunnel_protocol == TunnelProtocol::Hbone) {
      r.kind = RouteKind::Hbone;
      r.target.port = kDefaultHboneMtlsPort;
      r.expected_identities = expected_sans(*backend, service);
    } else {
      r.kind = RouteKind::Tcp;
      r.target.port = backend_port;
    }
    return r;
  }
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

void apply_resolved(OutboundRoute& route, const IpAddr& ip_in) {
  const IpAddr ip = canonical_ip(ip_in);
  route.target.ip = ip;
  if (route.kind == RouteKind::Hbone) route.authority = format_socket_addr(ip, route.resolved_port);
}

}  // namespace ztunnel
