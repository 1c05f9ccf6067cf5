#include "controlplane/waypoint_compiler.h"

#include "controlplane/waypoint_authn.h"
#include "controlplane/waypoint_authz.h"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "common/model/local_config.h"
#include "controlplane/ratelimit_compile.h"
#include "controlplane/tracing_envoy.h"
#include "controlplane/traffic_policy_envoy.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"

namespace controlplane {
namespace {

namespace route = envoy::config::route::v3;
namespace core = envoy::config::core::v3;
namespace cluster = envoy::config::cluster::v3;
namespace endpoint = envoy::config::endpoint::v3;
namespace listener = envoy::config::listener::v3;
namespace hcm = envoy::extensions::filters::network::http_connection_manager::v3;
namespace tls = envoy::extensions::transport_sockets::tls::v3;

const char* const kDefaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

XdsResource to_resource(const google::protobuf::Message& m, std::string_view type_url) {
  std::string value;
  {
    google::protobuf::io::StringOutputStream sos(&value);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&cos);
  }
  google::protobuf::Any any;
  any.set_type_url(std::string(type_url));
  any.set_value(value);
  XdsResource r;
  r.version = ztunnel::fnv1a_hex(value);
  r.any = any.SerializeAsString();
  return r;
}

std::string label_or_annotation(const ObjectMeta& m, std::string_view key) {
  if (auto it = m.labels.find(std::string(key)); it != m.labels.end()) return it->second;
  if (auto it = m.annotations.find(std::string(key)); it != m.annotations.end()) return it->second;
  return "";
}

bool selects(const Labels& selector, const Labels& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

// HTTP ports of a Service as Istio classifies them by name: tcp/tls/mongo/mysql/redis... are L4.
enum class PortProto { Http1, Http2, Auto, Tcp };
PortProto port_protocol(const ServicePort& p) {
  const std::string n = p.name.substr(0, p.name.find('-'));
  if (n == "http2" || n == "grpc" || n == "grpc-web") return PortProto::Http2;
  if (n == "http") return PortProto::Http1;
  if (n == "tcp" || n == "tls" || n == "https" || n == "mongo" || n == "mysql" || n == "redis" || n == "mqtt")
    return PortProto::Tcp;
  return PortProto::Auto;
}

core::HeaderValueOption* header_add(google::protobuf::RepeatedPtrField<core::HeaderValueOption>* out,
                                    const std::string& k, const std::string& v,
                                    core::HeaderValueOption::HeaderAppendAction a) {
  auto* h = out->Add();
  h->mutable_header()->set_key(k);
  std::string escaped;
  for (char c : v) {
    escaped.push_back(c);
    if (c == '%') escaped.push_back('%');  // Envoy formatter escape: a literal %
  }
  h->mutable_header()->set_value(escaped);
  h->set_append_action(a);
  return h;
}

void fractional(envoy::type::v3::FractionalPercent* f, double pct) {
  f->set_numerator(static_cast<uint32_t>(std::llround(pct * 10000)));
  f->set_denominator(envoy::type::v3::FractionalPercent::MILLION);
}

void string_matcher(envoy::type::matcher::v3::StringMatcher* m, const VsStringMatch& s) {
  switch (s.kind) {
    case VsStringMatch::Kind::Exact:
      m->set_exact(s.value);
      break;
    case VsStringMatch::Kind::Prefix:
    case VsStringMatch::Kind::SeparatedPrefix:
      m->set_prefix(s.value);
      break;
    case VsStringMatch::Kind::Regex:
      m->mutable_safe_regex()->set_regex(s.value);
      break;
  }
}

void header_matcher(route::HeaderMatcher* h, const std::string& name, const std::optional<VsStringMatch>& m) {
  h->set_name(name);
  if (m)
    string_matcher(h->mutable_string_match(), *m);
  else
    h->set_present_match(true);
}

struct ViewLess {
  bool operator()(const std::pair<ztunnel::Locality, Labels>& a, const std::pair<ztunnel::Locality, Labels>& b) const {
    return std::tie(a.first.region, a.first.zone, a.first.subzone, a.second) <
           std::tie(b.first.region, b.first.zone, b.first.subzone, b.second);
  }
};

PortHttp port_http(PortProto p) {
  if (p == PortProto::Http2) return PortHttp::Http2;
  if (p == PortProto::Http1) return PortHttp::Http1;
  return PortHttp::Auto;
}

struct Compiler {
  const ResourceSet& in;
  const CompileOptions& opt;
  Diagnostics& diags;
  const ztunnel::LocalConfig* workloads;  // compiled workloads (locality), may be null
  std::map<std::string, const ztunnel::Workload*> workload_by_uid;

  std::map<std::string, const NamespaceObject*> namespaces;
  std::map<std::string, const ServiceObject*> services_by_host;  // FQDN -> service

  std::string fqdn(const ServiceObject& s) const {
    return s.meta.name + "." + s.meta.ns + ".svc." + opt.cluster_domain;
  }

  // Istio host resolution: a name without dots is short for <name>.<ns>.svc.<domain>.
  std::string resolve(const std::string& host, const std::string& ns) const {
    if (host == "*" || host.find('.') != std::string::npos) return host;
    return host + "." + ns + ".svc." + opt.cluster_domain;
  }
  static bool host_matches(const std::string& pattern, const std::string& hostname) {
    if (pattern == "*") return true;
    if (pattern.size() > 1 && pattern[0] == '*')
      return hostname.size() >= pattern.size() - 1 &&
             hostname.compare(hostname.size() - (pattern.size() - 1), std::string::npos, pattern, 1) == 0;
    return pattern == hostname;
  }

  void diag(Severity s, const std::string& file, const std::string& object, const std::string& field, std::string msg) {
    diags.push_back({s, file, object, field, std::move(msg)});
  }

  // ---- endpoints
  uint16_t target_port(const ServicePort& sp, const PodObject& pod) const {
    if (sp.target_port != 0) return sp.target_port;
    for (const auto& cp : pod.ports) {
      if (cp.name == sp.target_port_name) return cp.port;
    }
    return 0;
  }

  // The pod's locality, node and network as the ztunnel model has them (its Node's labels).
  const ztunnel::Workload* workload_of(const PodObject& pod) const {
    auto it = workload_by_uid.find(opt.cluster_id + "//Pod/" + pod.meta.ns + "/" + pod.meta.name);
    return it == workload_by_uid.end() ? nullptr : it->second;
  }
  // The compiled workload's locality (its Node's, or its own label), else the pod's label: the
  // directory compile runs without the compiled workloads.
  ztunnel::Locality locality_of(const PodObject& pod) const {
    const ztunnel::Workload* w = workload_of(pod);
    return w && !w->locality.empty() ? w->locality : pod_locality_label(pod.meta.labels);
  }
  Labels augmented(const PodObject& pod) const {
    const ztunnel::Workload* w = workload_of(pod);
    return augment_labels(pod.meta.labels, locality_of(pod), opt.cluster_id, pod.node_name,
                          w ? w->network : opt.network);
  }

  // The selected pods of `svc` grouped by locality (sorted, so output is deterministic).
  std::vector<LocalityGroup> endpoint_groups(const ServiceObject& svc, const ServicePort& sp,
                                             const Labels& subset) const {
    std::vector<LocalityGroup> groups;
    if (!svc.selector) return groups;
    std::map<std::tuple<std::string, std::string, std::string>, size_t> index;
    for (const PodObject& pod : in.pods) {
      if (pod.meta.ns != svc.meta.ns || pod.meta.deleting || pod.ips.empty()) continue;
      if (pod.phase == "Succeeded" || pod.phase == "Failed") continue;
      if (!selects(*svc.selector, pod.meta.labels) || !selects(subset, pod.meta.labels)) continue;
      const uint16_t port = target_port(sp, pod);
      if (port == 0) continue;
      const ztunnel::Locality loc = locality_of(pod);
      auto key = std::make_tuple(loc.region, loc.zone, loc.subzone);
      auto [it, inserted] = index.try_emplace(key, groups.size());
      if (inserted) groups.push_back(LocalityGroup{loc, {}, 0, 0});
      groups[it->second].endpoints.push_back(
          LbEndpointInfo{pod.ips.front().to_string(), port, pod.ready, augmented(pod)});
    }
    std::sort(groups.begin(), groups.end(), [](const LocalityGroup& a, const LocalityGroup& b) {
      return std::tie(a.locality.region, a.locality.zone, a.locality.subzone) <
             std::tie(b.locality.region, b.locality.zone, b.locality.subzone);
    });
    return groups;
  }

  static endpoint::ClusterLoadAssignment load_assignment(const std::string& cluster_name,
                                                         const std::vector<LocalityGroup>& groups) {
    endpoint::ClusterLoadAssignment cla;
    cla.set_cluster_name(cluster_name);
    if (groups.empty()) cla.add_endpoints();  // one empty locality, as before any policy
    for (const auto& g : groups) {
      auto* l = cla.add_endpoints();
      if (!g.locality.empty()) {
        l->mutable_locality()->set_region(g.locality.region);
        l->mutable_locality()->set_zone(g.locality.zone);
        l->mutable_locality()->set_sub_zone(g.locality.subzone);
      }
      l->set_priority(g.priority);
      if (g.weight != 0) l->mutable_load_balancing_weight()->set_value(g.weight);
      for (const auto& e : g.endpoints) {
        auto* lb = l->add_lb_endpoints();
        auto* sa = lb->mutable_endpoint()->mutable_address()->mutable_socket_address();
        sa->set_address(e.address);
        sa->set_port_value(e.port);
        lb->set_health_status(e.healthy ? core::HEALTHY : core::UNHEALTHY);
      }
    }
    return cla;
  }

  cluster::Cluster make_cluster(const std::string& name, PortProto proto, const DrPolicyComponents& policy) const {
    cluster::Cluster c;
    c.set_name(name);
    c.set_type(cluster::Cluster::EDS);
    c.mutable_eds_cluster_config()->mutable_eds_config()->mutable_ads();
    c.mutable_eds_cluster_config()->mutable_eds_config()->set_resource_api_version(core::V3);
    apply_cluster_policy(policy, port_http(proto), c);
    return c;
  }

  static DrPolicyComponents policy_for(const DestinationRuleObject* dr, const std::string& subset, uint16_t port) {
    if (!dr) return {};
    std::optional<DrTrafficPolicy> sub;
    for (const auto& s : dr->subsets) {
      if (s.name == subset) sub = s.traffic_policy;
    }
    return effective_traffic_policy(dr->traffic_policy, sub, port);
  }

  // DestinationRules for `hostname` visible from the service / waypoint namespaces.
  const DestinationRuleObject* destination_rule(const std::string& hostname, const std::string& svc_ns,
                                                const std::string& wp_ns) const {
    const DestinationRuleObject* best = nullptr;
    for (const auto& dr : in.l7.destination_rules) {
      if (dr.ns != svc_ns && dr.ns != wp_ns) continue;
      if (!host_matches(resolve(dr.host, dr.ns), hostname)) continue;
      if (!best || std::tie(dr.ns, dr.name) < std::tie(best->ns, best->name)) best = &dr;
    }
    return best;
  }

  // One cluster's endpoints, kept to recompute them for each waypoint pod when the policy
  // makes them depend on the pod's locality (failover priorities, distribute weights).
  struct EndpointJob {
    std::string cluster;
    const ServiceObject* svc;
    const ServicePort* sp;
    Labels subset;
    DrPolicyComponents policy;
  };
  struct Output {
    WaypointResources res;
    std::set<std::string> wanted_outbound;  // "port|subset|host"
    std::vector<EndpointJob> jobs;
  };

  void add_endpoints(Output& out, const std::string& name, const ServiceObject& svc, const ServicePort& sp,
                     const Labels& subset, const DrPolicyComponents& policy) {
    auto groups = endpoint_groups(svc, sp, subset);
    apply_locality_lb(policy, ProxyView{}, groups);
    out.res.endpoints[name] = to_resource(load_assignment(name, groups), kClusterLoadAssignmentTypeUrl);
    out.jobs.push_back(EndpointJob{name, &svc, &sp, subset, policy});
  }

  // Locality LB settings that do nothing (istiod's rules), said once per DestinationRule.
  std::set<const DestinationRuleObject*> locality_noted;
  void note_locality(const DestinationRuleObject* dr, const DrPolicyComponents& policy) {
    if (!dr || !policy.load_balancer || !policy.load_balancer->locality || policy.outlier_detection) return;
    const auto& l = *policy.load_balancer->locality;
    if (l.failover.empty() && l.failover_priority.empty()) return;
    if (!locality_noted.insert(dr).second) return;
    diag(Severity::Warning, dr->file, dr->object, "spec.trafficPolicy.loadBalancer.localityLbSetting",
         "failover and failoverPriority take effect only with outlierDetection (as in Istio)");
  }

  // ---- one waypoint
  void add_clusters(Output& out, const ServiceObject& svc, const ServicePort& sp, const std::string& prefix,
                    const std::string& wp_ns) {
    const std::string host = fqdn(svc);
    const DestinationRuleObject* dr = destination_rule(host, svc.meta.ns, wp_ns);
    const PortProto proto = port_protocol(sp);
    auto add = [&](const std::string& name, const std::string& subset_name, const Labels& subset) {
      const DrPolicyComponents policy = policy_for(dr, subset_name, sp.port);
      note_locality(dr, policy);
      out.res.clusters[name] = to_resource(make_cluster(name, proto, policy), kClusterTypeUrl);
      add_endpoints(out, name, svc, sp, subset, policy);
    };
    const std::string p = std::to_string(sp.port);
    if (prefix == "inbound-vip") {
      add("inbound-vip|" + p + "|http|" + host, "", {});
      if (dr) {
        for (const auto& s : dr->subsets) add("inbound-vip|" + p + "|http/" + s.name + "|" + host, s.name, s.labels);
      }
    }
  }

  // A TCP port: one cluster `inbound-vip|P|tcp|H` (the waypoint relays the bytes), its network
  // RBAC added by `decorate` (WaypointAuthz::attach_tcp).
  void add_tcp_cluster(Output& out, const ServiceObject& svc, const ServicePort& sp, const std::string& wp_ns,
                       const std::function<void(cluster::Cluster&)>& decorate) {
    const std::string host = fqdn(svc);
    const DestinationRuleObject* dr = destination_rule(host, svc.meta.ns, wp_ns);
    const DrPolicyComponents policy = policy_for(dr, "", sp.port);
    note_locality(dr, policy);
    const std::string name = "inbound-vip|" + std::to_string(sp.port) + "|tcp|" + host;
    cluster::Cluster c = make_cluster(name, PortProto::Tcp, policy);
    decorate(c);
    out.res.clusters[name] = to_resource(c, kClusterTypeUrl);
    add_endpoints(out, name, svc, sp, {}, policy);
  }

  // Set while compiling an ingress gateway: destinations of Services with
  // istio.io/ingress-use-waypoint get the VIP as their one endpoint (ingress_waypoint_vip).
  bool ingress_mode = false;

  // Attachment verdicts for the status writer (gateway_attachment.h).
  GatewayAttachments att{};
  static std::string route_key(const GatewayRouteObject& rt) { return rt.kind + "/" + rt.ns + "/" + rt.name; }
  void verdict(const GatewayRouteObject& rt, size_t index, bool accepted, std::string reason, std::string message) {
    auto& parents = att.routes[route_key(rt)].parents;
    for (auto& p : parents) {
      if (p.index != index) continue;
      if (!p.accepted) p = {index, accepted, std::move(reason), std::move(message)};  // attached wins
      return;
    }
    parents.push_back({index, accepted, std::move(reason), std::move(message)});
  }
  // Whether every backendRef (and mirror) of the route names a Service that exists.
  void resolve_backends(const GatewayRouteObject& rt) {
    auto& ra = att.routes[route_key(rt)];
    for (const auto& rule : rt.rules) {
      std::vector<const VsDestination*> dests;
      for (const auto& d : rule.route) dests.push_back(&d);
      for (const auto& m : rule.mirrors) dests.push_back(&m.destination);
      for (const auto* d : dests) {
        if (!ra.backends_resolved || services_by_host.count(d->host)) continue;
        ra.backends_resolved = false;
        const auto dot = d->host.find('.');
        const auto dot2 = d->host.find('.', dot + 1);
        ra.backend_message = "Service " + d->host.substr(dot + 1, dot2 - dot - 1) + "/" + d->host.substr(0, dot) +
                             " not found (" + d->path + ")";
      }
    }
  }

  // The Service's VIP when the ingress must reach it through its waypoint: label
  // istio.io/ingress-use-waypoint "true" (Service, else its Namespace) and a use-waypoint binding.
  std::optional<std::string> ingress_waypoint_vip(const ServiceObject& svc) const {
    auto ns = namespaces.find(svc.meta.ns);
    std::string use = label_or_annotation(svc.meta, kIngressUseWaypointLabel);
    if (use.empty() && ns != namespaces.end()) use = label_or_annotation(ns->second->meta, kIngressUseWaypointLabel);
    if (use != "true" || svc.cluster_ips.empty()) return std::nullopt;
    std::string wp = label_or_annotation(svc.meta, kUseWaypointLabel);
    if (wp.empty() && ns != namespaces.end()) wp = label_or_annotation(ns->second->meta, kUseWaypointLabel);
    if (wp.empty() || wp == "none") return std::nullopt;
    return svc.cluster_ips.front().to_string();
  }

  // ---- tracing (telemetry.h, tracing_envoy.h)
  std::set<std::string> tracing_reported{};  // providers whose Service is missing, reported once

  // The Zipkin provider's collector as an outbound cluster of this proxy; "" (and an Error
  // once) when its Service or port is unknown.
  std::string tracing_cluster(Output& out, const ExtensionProvider& p, const std::string& wp_ns) {
    std::string host = p.service;
    std::string ns = kSystemNamespace;
    if (auto slash = host.find('/'); slash != std::string::npos) {
      ns = host.substr(0, slash);
      host = host.substr(slash + 1);
    }
    host = resolve(host, ns);
    auto it = services_by_host.find(host);
    const ServicePort* port = nullptr;
    if (it != services_by_host.end()) {
      for (const auto& sp : it->second->ports) {
        if (sp.port == p.port) port = &sp;
      }
    }
    if (!port) {
      if (tracing_reported.insert(p.name).second && in.mesh)
        diag(Severity::Error, in.mesh->file, in.mesh->object, "data.mesh." + p.path + ".zipkin.service",
             "collector " + host + ":" + std::to_string(p.port) +
                 " is not a known Service port; tracing through this provider not configured");
      return "";
    }
    add_outbound(out, *it->second, *port, "", wp_ns);
    return "outbound|" + std::to_string(port->port) + "||" + host;
  }

  // Telemetry tracing for a Service at its waypoint (kind "Service") or an ingress Gateway.
  void add_tracing(Output& out, route::RouteConfiguration& rc, const std::string& ns, const std::string& kind,
                   const std::string& name, const std::string& wp_ns) {
    auto t = resolve_tracing(in.telemetries, in.mesh ? &*in.mesh : nullptr, ns, kind, name);
    if (!t) return;
    std::string cluster;
    if (t->report) {
      cluster = tracing_cluster(out, *t->provider, wp_ns);
      if (cluster.empty()) return;
    }
    attach_tracing(rc, *t, cluster);
  }

  void add_outbound(Output& out, const ServiceObject& svc, const ServicePort& sp, const std::string& subset,
                    const std::string& wp_ns) {
    const std::string host = fqdn(svc);
    const std::string name = "outbound|" + std::to_string(sp.port) + "|" + subset + "|" + host;
    if (out.res.clusters.count(name)) return;
    if (ingress_mode) {
      if (auto vip = ingress_waypoint_vip(svc)) {
        // The waypoint applies the Service's own policy; the gateway only delivers to it.
        out.res.clusters[name] = to_resource(make_cluster(name, port_protocol(sp), {}), kClusterTypeUrl);
        std::vector<LocalityGroup> groups{LocalityGroup{{}, {LbEndpointInfo{*vip, sp.port, true, {}}}, 0, 0}};
        out.res.endpoints[name] = to_resource(load_assignment(name, groups), kClusterLoadAssignmentTypeUrl);
        return;
      }
    }
    const DestinationRuleObject* dr = destination_rule(host, svc.meta.ns, wp_ns);
    Labels labels;
    if (dr && !subset.empty()) {
      for (const auto& s : dr->subsets) {
        if (s.name == subset) labels = s.labels;
      }
    }
    const DrPolicyComponents policy = policy_for(dr, subset, sp.port);
    note_locality(dr, policy);
    out.res.clusters[name] = to_resource(make_cluster(name, port_protocol(sp), policy), kClusterTypeUrl);
    add_endpoints(out, name, svc, sp, labels, policy);
  }

  // The consistent hash of the DestinationRule policy for (host, subset, port), if any.
  std::optional<DrPolicyComponents> hash_source(const ServiceObject& target, uint16_t port, const std::string& subset,
                                                const std::string& wp_ns) const {
    const DestinationRuleObject* dr = destination_rule(fqdn(target), target.meta.ns, wp_ns);
    if (!dr) return std::nullopt;
    return policy_for(dr, subset, port);
  }

  // The cluster a destination names, from the point of view of `svc:port` served by this waypoint.
  // `hash` (when given) receives the route hash policy the destination's DestinationRule asks for.
  std::string destination_cluster(Output& out, const VsDestination& d, const std::string& rule_ns,
                                  const ServiceObject& svc, const ServicePort& sp, const std::string& wp_ns,
                                  const std::string& file, const std::string& object,
                                  route::RouteAction::HashPolicy* hash = nullptr, bool* hashed = nullptr) {
    const std::string host = resolve(d.host, rule_ns);
    auto it = services_by_host.find(host);
    if (it == services_by_host.end()) {
      diag(Severity::Warning, file, object, d.path + ".host",
           "unknown service '" + host + "'; requests routed there get 503 (no cluster)");
      return "outbound|" + std::to_string(d.port) + "|" + d.subset + "|" + host;
    }
    const ServiceObject& target = *it->second;
    if (!d.subset.empty()) {
      const DestinationRuleObject* dr = destination_rule(host, target.meta.ns, wp_ns);
      bool found = false;
      if (dr) {
        for (const auto& s : dr->subsets) found |= s.name == d.subset;
      }
      if (!found)
        diag(Severity::Warning, file, object, d.path + ".subset",
             "subset '" + d.subset + "' is not defined by a DestinationRule for " + host + "; requests get 503");
    }
    auto want_hash = [&](uint16_t port) {
      if (!hash || !hashed) return;
      if (auto policy = hash_source(target, port, d.subset, wp_ns)) *hashed = route_hash_policy(*policy, *hash);
    };
    if (&target == &svc && (d.port == 0 || d.port == sp.port)) {
      want_hash(sp.port);
      const std::string p = std::to_string(sp.port);
      return d.subset.empty() ? "inbound-vip|" + p + "|http|" + host
                              : "inbound-vip|" + p + "|http/" + d.subset + "|" + host;
    }
    const ServicePort* tp = nullptr;
    for (const auto& p : target.ports) {
      if (d.port == 0 ? target.ports.size() == 1 : p.port == d.port) tp = &p;
    }
    if (!tp) {
      diag(Severity::Warning, file, object, d.path + ".port",
           d.port == 0 ? "port required: " + host + " has several ports"
                       : "no port " + std::to_string(d.port) + " on " + host);
      return "outbound|" + std::to_string(d.port) + "|" + d.subset + "|" + host;
    }
    add_outbound(out, target, *tp, d.subset, wp_ns);
    want_hash(tp->port);
    return "outbound|" + std::to_string(tp->port) + "|" + d.subset + "|" + host;
  }

  // The cluster of a rate limit policy's service (ratelimit_compile.h): a Service's pods (EDS,
  // like any outbound destination) or a STATIC cluster for an IP address.
  std::string rls_cluster(Output& out, const RateLimitPolicyObject& p, const RlGlobal& g, const std::string& wp_ns) {
    if (ztunnel::parse_ip(g.service_host)) {
      const std::string name = rls_static_cluster_name(g.service_host, g.service_port);
      out.res.clusters[name] = to_resource(rls_static_cluster(name, g.service_host, g.service_port), kClusterTypeUrl);
      return name;
    }
    const std::string host = resolve(g.service_host, p.ns);
    auto it = services_by_host.find(host);
    const ServicePort* port = nullptr;
    if (it != services_by_host.end()) {
      for (const auto& sp : it->second->ports) {
        if (sp.port == g.service_port) port = &sp;
      }
    }
    if (!port) {
      diag(Severity::Error, p.file, p.object, g.service_path,
           "rate limit service " + host + ":" + std::to_string(g.service_port) +
               " is not a known Service port or IP address; global rate limit not applied");
      return "";
    }
    add_outbound(out, *it->second, *port, "", wp_ns);
    return "outbound|" + std::to_string(port->port) + "||" + host;
  }

  void fill_headers(route::Route* r, const VsHeaders& h) {
    for (const auto& [k, v] : h.request.set) {
      if (k == ":authority" || k == "host") {
        if (r->has_route()) r->mutable_route()->set_host_rewrite_literal(v);
        continue;
      }
      if (!k.empty() && k[0] == ':') continue;
      header_add(r->mutable_request_headers_to_add(), k, v, core::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
    }
    for (const auto& [k, v] : h.request.add) {
      if (k.empty() || k[0] == ':' || k == "host") continue;
      header_add(r->mutable_request_headers_to_add(), k, v, core::HeaderValueOption::APPEND_IF_EXISTS_OR_ADD);
    }
    for (const auto& k : h.request.remove) {
      if (!k.empty() && k[0] != ':' && k != "host") r->add_request_headers_to_remove(k);
    }
    for (const auto& [k, v] : h.response.set) {
      if (!k.empty() && k[0] != ':')
        header_add(r->mutable_response_headers_to_add(), k, v, core::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
    }
    for (const auto& [k, v] : h.response.add) {
      if (!k.empty() && k[0] != ':')
        header_add(r->mutable_response_headers_to_add(), k, v, core::HeaderValueOption::APPEND_IF_EXISTS_OR_ADD);
    }
    for (const auto& k : h.response.remove) {
      if (!k.empty() && k[0] != ':') r->add_response_headers_to_remove(k);
    }
  }

  // With a consistent hash (single destination) istiod leaves out previous_hosts: a retry must
  // stay on the hashed host.
  static void default_retry(route::RetryPolicy* p, bool consistent_hash = false) {
    p->set_retry_on(kDefaultRetryOn);
    p->mutable_num_retries()->set_value(2);
    if (!consistent_hash) p->add_retry_host_predicate()->set_name("envoy.retry_host_predicates.previous_hosts");
    p->set_host_selection_retry_max_attempts(5);
  }

  // VS HTTPRetry -> RetryPolicy; false = retries disabled (attempts 0).
  bool retry(route::RetryPolicy* p, const VsRetry& r, bool consistent_hash = false) {
    if (r.attempts == 0) return false;
    p->mutable_num_retries()->set_value(static_cast<uint32_t>(r.attempts));
    std::string on;
    bool codes = false;
    const std::string list = r.retry_on.empty() ? kDefaultRetryOn : r.retry_on;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(',', start);
      if (end == std::string::npos) end = list.size();
      std::string tok = list.substr(start, end - start);
      start = end + 1;
      tok.erase(0, tok.find_first_not_of(' '));
      tok.erase(tok.find_last_not_of(' ') + 1);
      if (tok.empty()) continue;
      if (std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        p->add_retriable_status_codes(static_cast<uint32_t>(std::stoul(tok.substr(0, 3))));
        codes = true;
        continue;
      }
      if (tok == "retriable-status-codes")
        codes = true;
      else
        on += (on.empty() ? "" : ",") + tok;
    }
    if (codes) on += (on.empty() ? "" : ",") + std::string("retriable-status-codes");
    p->set_retry_on(on);
    if (r.per_try_timeout_ms) {
      p->mutable_per_try_timeout()->set_seconds(static_cast<int64_t>(*r.per_try_timeout_ms / 1000));
      p->mutable_per_try_timeout()->set_nanos(static_cast<int32_t>(*r.per_try_timeout_ms % 1000) * 1'000'000);
    }
    if (!consistent_hash) p->add_retry_host_predicate()->set_name("envoy.retry_host_predicates.previous_hosts");
    p->set_host_selection_retry_max_attempts(5);
    if (r.retry_remote_localities) p->mutable_retry_priority()->set_name("envoy.retry_priorities.previous_priorities");
    if (r.backoff_ms) {
      p->mutable_retry_back_off()->mutable_base_interval()->set_seconds(static_cast<int64_t>(*r.backoff_ms / 1000));
      p->mutable_retry_back_off()->mutable_base_interval()->set_nanos(static_cast<int32_t>(*r.backoff_ms % 1000) *
                                                                      1'000'000);
    }
    return true;
  }

  static void set_duration(google::protobuf::Duration* d, uint64_t ms) {
    d->set_seconds(static_cast<int64_t>(ms / 1000));
    d->set_nanos(static_cast<int32_t>(ms % 1000) * 1'000'000);
  }

  void fill_match(route::RouteMatch* m, const VsMatch* vm) {
    if (!vm || !vm->uri) {
      m->set_prefix("/");
    } else {
      const auto& u = *vm->uri;
      switch (u.kind) {
        case VsStringMatch::Kind::Exact:
          m->set_path(u.value);
          break;
        case VsStringMatch::Kind::Prefix:
          m->set_prefix(u.value);
          break;
        case VsStringMatch::Kind::Regex:
          m->mutable_safe_regex()->set_regex(u.value);
          break;
        case VsStringMatch::Kind::SeparatedPrefix: {
          std::string v = u.value;
          while (v.size() > 1 && v.back() == '/') v.pop_back();
          if (v == "/")
            m->set_prefix("/");
          else
            m->set_path_separated_prefix(v);
          break;
        }
      }
    }
    if (!vm) return;
    if (vm->ignore_uri_case) m->mutable_case_sensitive()->set_value(false);
    auto pseudo = [&](const char* name, const std::optional<VsStringMatch>& s) {
      if (s) header_matcher(m->add_headers(), name, s);
    };
    pseudo(":method", vm->method);
    pseudo(":authority", vm->authority);
    pseudo(":scheme", vm->scheme);
    for (const auto& [k, v] : vm->headers) header_matcher(m->add_headers(), k, v);
    for (const auto& [k, v] : vm->without_headers) {
      auto* h = m->add_headers();
      header_matcher(h, k, v);
      h->set_invert_match(true);
      if (v) h->set_treat_missing_header_as_empty(true);
    }
    for (const auto& [k, v] : vm->query_params) {
      auto* q = m->add_query_parameters();
      q->set_name(k);
      if (v)
        string_matcher(q->mutable_string_match(), *v);
      else
        q->set_present_match(true);
    }
  }

  // One Envoy route for (rule, match entry).
  route::Route make_route(Output& out, const VsRule& rule, const VsMatch* vm, const std::string& rule_ns,
                          const ServiceObject& svc, const ServicePort& sp, const std::string& wp_ns,
                          const std::string& file, const std::string& object) {
    route::Route r;
    r.set_name(vm && !vm->name.empty() ? (rule.name.empty() ? vm->name : rule.name + "." + vm->name) : rule.name);
    fill_match(r.mutable_match(), vm);
    if (rule.all_backends_zero) {
      r.mutable_direct_response()->set_status(500);
    } else if (rule.redirect) {
      const auto& rd = *rule.redirect;
      auto* a = r.mutable_redirect();
      if (!rd.uri.empty()) a->set_path_redirect(rd.uri);
      if (!rd.prefix_rewrite.empty()) a->set_prefix_rewrite(rd.prefix_rewrite);
      if (!rd.authority.empty()) a->set_host_redirect(rd.authority);
      if (rd.port != 0) a->set_port_redirect(rd.port);
      if (!rd.scheme.empty()) a->set_scheme_redirect(rd.scheme);
      switch (rd.code) {
        case 302:
          a->set_response_code(route::RedirectAction::FOUND);
          break;
        case 303:
          a->set_response_code(route::RedirectAction::SEE_OTHER);
          break;
        case 307:
          a->set_response_code(route::RedirectAction::TEMPORARY_REDIRECT);
          break;
        case 308:
          a->set_response_code(route::RedirectAction::PERMANENT_REDIRECT);
          break;
        default:
          a->set_response_code(route::RedirectAction::MOVED_PERMANENTLY);
          break;
      }
    } else if (rule.direct_response) {
      r.mutable_direct_response()->set_status(rule.direct_response->first);
      if (!rule.direct_response->second.empty())
        r.mutable_direct_response()->mutable_body()->set_inline_string(rule.direct_response->second);
    } else {
      auto* a = r.mutable_route();
      std::vector<const VsDestination*> dests;
      for (const auto& d : rule.route) {
        if (rule.route.size() == 1 || !d.weight_set || d.weight > 0) dests.push_back(&d);
      }
      bool single_hash = false;
      if (dests.size() == 1) {
        route::RouteAction::HashPolicy h;
        a->set_cluster(destination_cluster(out, *dests[0], rule_ns, svc, sp, wp_ns, file, object, &h, &single_hash));
        if (single_hash) *a->add_hash_policy() = h;
      } else {
        auto* w = a->mutable_weighted_clusters();
        for (const auto* d : dests) {
          auto* cw = w->add_clusters();
          route::RouteAction::HashPolicy h;
          bool hashed = false;
          cw->set_name(destination_cluster(out, *d, rule_ns, svc, sp, wp_ns, file, object, &h, &hashed));
          if (hashed) *a->add_hash_policy() = h;
          cw->mutable_weight()->set_value(d->weight);
          route::Route tmp;
          tmp.mutable_route();
          fill_headers(&tmp, d->headers);
          *cw->mutable_request_headers_to_add() = tmp.request_headers_to_add();
          *cw->mutable_request_headers_to_remove() = tmp.request_headers_to_remove();
          *cw->mutable_response_headers_to_add() = tmp.response_headers_to_add();
          *cw->mutable_response_headers_to_remove() = tmp.response_headers_to_remove();
          if (tmp.route().host_rewrite_specifier_case() == route::RouteAction::kHostRewriteLiteral)
            cw->set_host_rewrite_literal(tmp.route().host_rewrite_literal());
        }
      }
      // Istio always writes the timeout: 0s (disabled) unless the rule sets one.
      set_duration(a->mutable_timeout(), rule.timeout_ms.value_or(0));
      set_duration(a->mutable_max_grpc_timeout(), rule.timeout_ms.value_or(0));
      if (rule.retries) {
        route::RetryPolicy p;
        if (retry(&p, *rule.retries, single_hash)) *a->mutable_retry_policy() = p;
      } else {
        default_retry(a->mutable_retry_policy(), single_hash);
      }
      if (rule.rewrite) {
        if (!rule.rewrite->uri.empty()) a->set_prefix_rewrite(rule.rewrite->uri);
        if (rule.rewrite->uri_regex) {
          a->mutable_regex_rewrite()->mutable_pattern()->set_regex(rule.rewrite->uri_regex->first);
          a->mutable_regex_rewrite()->set_substitution(rule.rewrite->uri_regex->second);
        }
        if (!rule.rewrite->authority.empty()) a->set_host_rewrite_literal(rule.rewrite->authority);
      }
      for (const auto& m : rule.mirrors) {
        if (m.percent && *m.percent == 0) continue;
        auto* mp = a->add_request_mirror_policies();
        mp->set_cluster(destination_cluster(out, m.destination, rule_ns, svc, sp, wp_ns, file, object));
        fractional(mp->mutable_runtime_fraction()->mutable_default_value(), m.percent.value_or(100));
        mp->mutable_trace_sampled()->set_value(false);
      }
      if (dests.size() == 1) fill_headers(&r, dests[0]->headers);
    }
    fill_headers(&r, rule.headers);
    if (rule.fault) {
      envoy::extensions::filters::http::fault::v3::HTTPFault f;
      if (rule.fault->delay_ms) {
        set_duration(f.mutable_delay()->mutable_fixed_delay(), *rule.fault->delay_ms);
        fractional(f.mutable_delay()->mutable_percentage(), rule.fault->delay_percent.value_or(0));
      }
      if (rule.fault->abort_http || rule.fault->abort_grpc) {
        if (rule.fault->abort_grpc)
          f.mutable_abort()->set_grpc_status(*rule.fault->abort_grpc);
        else
          f.mutable_abort()->set_http_status(*rule.fault->abort_http);
        fractional(f.mutable_abort()->mutable_percentage(), rule.fault->abort_percent.value_or(0));
      }
      (*r.mutable_typed_per_filter_config())["envoy.filters.http.fault"].PackFrom(f);
    }
    if (rule.cors) {
      envoy::extensions::filters::http::cors::v3::CorsPolicy c;
      for (const auto& o : rule.cors->allow_origins) string_matcher(c.add_allow_origin_string_match(), o);
      auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
        return s;
      };
      c.set_allow_methods(join(rule.cors->allow_methods));
      c.set_allow_headers(join(rule.cors->allow_headers));
      c.set_expose_headers(join(rule.cors->expose_headers));
      if (rule.cors->max_age_s) c.set_max_age(std::to_string(*rule.cors->max_age_s));
      if (rule.cors->allow_credentials) c.mutable_allow_credentials()->set_value(*rule.cors->allow_credentials);
      (*r.mutable_typed_per_filter_config())["envoy.filters.http.cors"].PackFrom(c);
    }
    return r;
  }

  // Istio's Gateway API precedence (waypoint-facts §1.5): Exact > Prefix > Regex, longer value,
  // has method, more headers, more query params; match-less last; stable.
  static int path_rank(const VsMatch& m) {
    if (!m.uri) return 3;
    switch (m.uri->kind) {
      case VsStringMatch::Kind::Exact:
        return 0;
      case VsStringMatch::Kind::Prefix:
      case VsStringMatch::Kind::SeparatedPrefix:
        return 1;
      default:
        return 2;
    }
  }
  static bool precedes(const VsRule& a, const VsRule& b) {
    if (a.match.empty() != b.match.empty()) return !a.match.empty();
    if (a.match.empty()) return false;
    const VsMatch& x = a.match[0];
    const VsMatch& y = b.match[0];
    if (path_rank(x) != path_rank(y)) return path_rank(x) < path_rank(y);
    const size_t lx = x.uri ? x.uri->value.size() : 0, ly = y.uri ? y.uri->value.size() : 0;
    if (lx != ly) return lx > ly;
    if (x.method.has_value() != y.method.has_value()) return x.method.has_value();
    if (x.headers.size() != y.headers.size()) return x.headers.size() > y.headers.size();
    return x.query_params.size() > y.query_params.size();
  }

  route::RouteConfiguration route_config(Output& out, const ServiceObject& svc, const ServicePort& sp,
                                         const std::string& wp_ns) {
    const std::string host = fqdn(svc);
    const std::string p = std::to_string(sp.port);
    route::RouteConfiguration rc;
    rc.set_name("inbound-vip|" + p + "|http|" + host);
    rc.mutable_validate_clusters()->set_value(false);
    auto* vh = rc.add_virtual_hosts();
    vh->set_name("inbound|http|" + p);
    vh->add_domains("*");

    // Gateway API routes attached to this Service (and port).
    struct Attached {
      const GatewayRouteObject* obj;
      const VsRule* rule;
    };
    std::vector<Attached> attached;
    for (const auto& g : in.l7.gateway_routes) {
      bool hit = false;
      for (const auto& parent : g.parents)
        hit |= parent.name == svc.meta.name && parent.ns == svc.meta.ns && (parent.port == 0 || parent.port == sp.port);
      if (!hit) continue;
      for (const auto& r : g.rules) attached.push_back({&g, &r});
    }
    std::vector<const VirtualServiceObject*> vss;
    for (const auto& vs : in.l7.virtual_services) {
      if (vs.ns != svc.meta.ns && vs.ns != wp_ns) continue;
      bool mesh = vs.gateways.empty();
      for (const auto& g : vs.gateways) mesh |= g == "mesh";
      if (!mesh) continue;
      bool hit = false;
      for (const auto& h : vs.hosts) hit |= host_matches(resolve(h, vs.ns), host);
      if (hit) vss.push_back(&vs);
    }
    std::sort(vss.begin(), vss.end(),
              [](auto* a, auto* b) { return std::tie(a->ns, a->name) < std::tie(b->ns, b->name); });

    if (!attached.empty()) {
      if (!vss.empty())
        diag(Severity::Warning, vss[0]->file, vss[0]->object, "spec.hosts",
             "ignored for " + host +
                 ": HTTPRoutes are attached to it (mixing VirtualService and Gateway API is undefined in Istio)");
      std::stable_sort(attached.begin(), attached.end(),
                       [](const Attached& a, const Attached& b) { return precedes(*a.rule, *b.rule); });
      for (const auto& a : attached) {
        *vh->add_routes() = make_route(out, *a.rule, a.rule->match.empty() ? nullptr : &a.rule->match[0], a.obj->ns,
                                       svc, sp, wp_ns, a.obj->file, a.obj->object);
      }
      return rc;
    }
    if (vss.size() > 1)
      diag(Severity::Warning, vss[1]->file, vss[1]->object, "spec.hosts",
           "several VirtualServices select " + host + "; their routes are concatenated in namespace/name order");
    bool catch_all = false;
    for (const auto* vs : vss) {
      for (const auto& rule : vs->http) {
        if (catch_all) break;
        if (rule.match.empty()) {
          *vh->add_routes() = make_route(out, rule, nullptr, vs->ns, svc, sp, wp_ns, vs->file, vs->object);
          catch_all = true;
          break;
        }
        for (size_t i = 0; i < rule.match.size(); ++i) {
          const VsMatch& m = rule.match[i];
          const std::string mp = rule.path + ".match[" + std::to_string(i) + "]";
          if (m.source_labels) {
            diag(Severity::Warning, vs->file, vs->object, mp + ".sourceLabels",
                 "sourceLabels has no effect at a waypoint; this match entry is dropped (as istiod does)");
            continue;
          }
          if (m.port != 0 && m.port != sp.port) continue;
          if (!m.source_namespace.empty() && m.source_namespace != wp_ns) continue;
          bool mesh = m.gateways.empty();
          for (const auto& g : m.gateways) mesh |= g == "mesh";
          if (!mesh) continue;
          *vh->add_routes() = make_route(out, rule, &m, vs->ns, svc, sp, wp_ns, vs->file, vs->object);
        }
      }
    }
    if (vss.empty()) {
      auto* r = vh->add_routes();
      r->set_name("default");
      r->mutable_match()->set_prefix("/");
      auto* a = r->mutable_route();
      a->set_cluster("inbound-vip|" + p + "|http|" + host);
      set_duration(a->mutable_timeout(), 0);
      set_duration(a->mutable_max_grpc_timeout(), 0);
      default_retry(a->mutable_retry_policy());
      // istiod's default route carries the service's hash too (top level / port level, #61045).
      if (auto policy = hash_source(svc, sp.port, "", wp_ns)) {
        route::RouteAction::HashPolicy h;
        if (route_hash_policy(*policy, h)) *a->add_hash_policy() = h;
      }
    }
    return rc;
  }

  // ---- ingress gateways (networking.istio.io Gateway; docs/ingress.md)
  // Is the VirtualService bound to gateway `gw` ("ns/name", or "name" in the VS namespace)?
  static bool binds(const std::vector<std::string>& gateways, const std::string& vs_ns, const IstioGatewayObject& gw) {
    for (const auto& g : gateways) {
      if (g == gw.ns + "/" + gw.name || (g == gw.name && vs_ns == gw.ns)) return true;
    }
    return false;
  }
  // A server host "[ns/]host" admits VirtualService host `h` of namespace `vs_ns`.
  static bool server_admits(const std::string& server_host, const std::string& vs_ns, const std::string& h) {
    std::string ns = "*", host = server_host;
    if (auto slash = server_host.find('/'); slash != std::string::npos) {
      ns = server_host.substr(0, slash);
      host = server_host.substr(slash + 1);
    }
    if (ns != "*" && ns != "." && ns != vs_ns) return false;
    if (host == "*" || host == h) return true;
    if (h == "*") return false;
    if (host.size() > 1 && host[0] == '*') return host_matches(host, h);
    if (h.size() > 1 && h[0] == '*') return host_matches(h, host);
    return false;
  }

  // One filter chain: the HCM naming `route_name` over RDS; for an HTTPS server, SNI = its hosts
  // (none when one is "*") and the certificate by SDS name `kubernetes://<credentialName>`.
  static void add_chain(listener::Listener& l, const std::string& route_name, const IstioGatewayServer* tls_server) {
    auto* fc = l.add_filter_chains();
    hcm::HttpConnectionManager h;
    h.set_stat_prefix(route_name);
    h.mutable_rds()->set_route_config_name(route_name);
    h.mutable_rds()->mutable_config_source()->mutable_ads();
    h.mutable_rds()->mutable_config_source()->set_resource_api_version(core::V3);
    auto* f = fc->add_filters();
    f->set_name("envoy.filters.network.http_connection_manager");
    f->mutable_typed_config()->PackFrom(h);
    if (!tls_server) return;
    bool any = false;
    for (const auto& host : tls_server->hosts) {
      const std::string h2 = host.find('/') == std::string::npos ? host : host.substr(host.find('/') + 1);
      any |= h2 == "*";
      if (h2 != "*") fc->mutable_filter_chain_match()->add_server_names(h2);
    }
    if (any) fc->mutable_filter_chain_match()->clear_server_names();
    tls::DownstreamTlsContext ctx;
    ctx.mutable_common_tls_context()->add_alpn_protocols("h2");  // istiod's gateway ALPN, h2 first
    ctx.mutable_common_tls_context()->add_alpn_protocols("http/1.1");
    auto* sds = ctx.mutable_common_tls_context()->add_tls_certificate_sds_secret_configs();
    sds->set_name("kubernetes://" + tls_server->credential_name);
    sds->mutable_sds_config()->mutable_ads();
    sds->mutable_sds_config()->set_resource_api_version(core::V3);
    if (tls_server->tls_mode == "MUTUAL" || tls_server->tls_mode == "OPTIONAL_MUTUAL") {
      // As istiod writes it: the CA by SDS (`file-root:<caCertificates>` or the Secret's
      // `-cacert` twin), the SANs as exact matchers in the default validation context.
      if (tls_server->tls_mode == "MUTUAL") ctx.mutable_require_client_certificate()->set_value(true);
      auto* cv = ctx.mutable_common_tls_context()->mutable_combined_validation_context();
      auto* ca = cv->mutable_validation_context_sds_secret_config();
      ca->set_name(tls_server->ca_certificates.empty() ? "kubernetes://" + tls_server->credential_name + "-cacert"
                                                       : "file-root:" + tls_server->ca_certificates);
      ca->mutable_sds_config()->mutable_ads();
      ca->mutable_sds_config()->set_resource_api_version(core::V3);
      auto* dv = cv->mutable_default_validation_context();
      for (const auto& san : tls_server->subject_alt_names) dv->add_match_subject_alt_names()->set_exact(san);
    }
    fc->mutable_transport_socket()->set_name("envoy.transport_sockets.tls");
    fc->mutable_transport_socket()->mutable_typed_config()->PackFrom(ctx);
  }

  // The routes of `servers` (one port): a virtual host `<host>:<port>` per VirtualService host
  // they admit, from the VirtualServices bound to the gateway, in namespace/name order.
  route::RouteConfiguration ingress_routes(Output& out, const IstioGatewayObject& gw, const std::string& name,
                                           uint16_t port, const std::vector<const IstioGatewayServer*>& servers,
                                           const std::vector<const VirtualServiceObject*>& vss,
                                           const ServiceObject& none, const ServicePort& none_port) {
    route::RouteConfiguration rc;
    rc.set_name(name);
    rc.mutable_validate_clusters()->set_value(false);
    std::map<std::string, route::VirtualHost*> vhosts;  // VS host -> its virtual host
    for (const auto* vs : vss) {
      if (!binds(vs->gateways, vs->ns, gw)) continue;
      for (const auto& h : vs->hosts) {
        bool admitted = false, redirect = false;
        for (const auto* srv : servers) {
          for (const auto& sh : srv->hosts) {
            const bool a = server_admits(sh, vs->ns, h);
            admitted |= a;
            redirect |= a && srv->https_redirect;
          }
        }
        if (!admitted) continue;
        auto& vh = vhosts[h];
        if (!vh) {
          vh = rc.add_virtual_hosts();
          vh->set_name(h + ":" + std::to_string(port));
          vh->add_domains(h);
          if (h != "*") vh->add_domains(h + ":" + std::to_string(port));
        }
        if (redirect) vh->set_require_tls(route::VirtualHost::ALL);
        bool catch_all = false;
        for (const auto& rule : vs->http) {
          if (catch_all) break;
          if (rule.match.empty()) {
            *vh->add_routes() = make_route(out, rule, nullptr, vs->ns, none, none_port, gw.ns, vs->file, vs->object);
            catch_all = true;
            break;
          }
          for (const auto& m : rule.match) {
            if (m.port != 0 && m.port != port) continue;
            if (!m.gateways.empty() && !binds(m.gateways, vs->ns, gw)) continue;
            *vh->add_routes() = make_route(out, rule, &m, vs->ns, none, none_port, gw.ns, vs->file, vs->object);
          }
        }
      }
    }
    // As istiod: an httpsRedirect server's hosts that no VirtualService serves still redirect (a
    // virtual host without routes).
    for (const auto* srv : servers) {
      if (!srv->https_redirect) continue;
      for (const auto& sh : srv->hosts) {
        const auto slash = sh.find('/');
        const std::string h = slash == std::string::npos ? sh : sh.substr(slash + 1);
        auto& vh = vhosts[h];
        if (vh) continue;
        vh = rc.add_virtual_hosts();
        vh->set_name(h + ":" + std::to_string(port));
        vh->add_domains(h);
        if (h != "*") vh->add_domains(h + ":" + std::to_string(port));
        vh->set_require_tls(route::VirtualHost::ALL);
      }
    }
    return rc;
  }

  void compile_ingress(WaypointCompileResult& result) {
    ingress_mode = true;
    std::vector<const IstioGatewayObject*> gws;
    for (const auto& g : in.l7.istio_gateways) gws.push_back(&g);
    std::sort(gws.begin(), gws.end(),
              [](auto* a, auto* b) { return std::tie(a->ns, a->name) < std::tie(b->ns, b->name); });
    std::vector<const VirtualServiceObject*> vss;
    for (const auto& vs : in.l7.virtual_services) vss.push_back(&vs);
    std::sort(vss.begin(), vss.end(),
              [](auto* a, auto* b) { return std::tie(a->ns, a->name) < std::tie(b->ns, b->name); });
    // Routes are compiled "as a destination nobody owns": every destination is outbound|...
    const ServiceObject none{};
    const ServicePort none_port{};
    // Pods served: the selector's pods in any namespace (istiod's default scope).
    std::map<std::string, const IstioGatewayObject*> pod_owner;
    for (const auto* gw : gws) {
      Output out;
      out.res.gateway = "ingress:" + gw->ns + "/" + gw->name;
      std::map<uint16_t, std::vector<const IstioGatewayServer*>> ports;
      for (const auto& srv : gw->servers) ports[srv.port].push_back(&srv);
      for (const auto& [port, servers] : ports) {
        std::vector<const IstioGatewayServer*> plain, secure;
        for (const auto* srv : servers) (srv->protocol == "HTTPS" ? secure : plain).push_back(srv);
        if (!plain.empty() && !secure.empty()) {
          for (const auto* srv : secure)
            diag(Severity::Error, gw->file, gw->object, srv->path + ".port.protocol",
                 "HTTPS and HTTP servers on one port " + std::to_string(port) + " are not supported; server ignored");
          secure.clear();
        }
        listener::Listener l;
        l.set_name("0.0.0.0_" + std::to_string(port));
        auto* sa = l.mutable_address()->mutable_socket_address();
        sa->set_address("0.0.0.0");
        sa->set_port_value(port);
        if (!plain.empty()) {
          const std::string rname = "http." + std::to_string(port);
          add_chain(l, rname, nullptr);
          auto rc = ingress_routes(out, *gw, rname, port, plain, vss, none, none_port);
          add_tracing(out, rc, gw->ns, "Gateway", gw->name, gw->ns);
          out.res.routes[rc.name()] = to_resource(rc, kRouteConfigurationTypeUrl);
        }
        for (const auto* srv : secure) {
          // istiod's name for an HTTPS server's routes.
          const std::string rname =
              "https." + std::to_string(port) + "." + srv->port_name + "." + gw->name + "." + gw->ns;
          add_chain(l, rname, srv);
          auto rc = ingress_routes(out, *gw, rname, port, {srv}, vss, none, none_port);
          add_tracing(out, rc, gw->ns, "Gateway", gw->name, gw->ns);
          out.res.routes[rc.name()] = to_resource(rc, kRouteConfigurationTypeUrl);
        }
        if (l.filter_chains_size() > 0) out.res.listeners[l.name()] = to_resource(l, kListenerTypeUrl);
      }
      auto shared = std::make_shared<const WaypointResources>(std::move(out.res));
      result.by_gateway[shared->gateway] = shared;
      for (const auto& pod : in.pods) {
        if (gw->selector.empty() || !selects(gw->selector, pod.meta.labels)) continue;
        const std::string proxy = pod.meta.name + "." + pod.meta.ns;
        if (auto [it, inserted] = pod_owner.emplace(proxy, gw); !inserted) {
          diag(Severity::Warning, gw->file, gw->object, "spec.selector",
               "pod " + proxy + " is also selected by Gateway " + it->second->ns + "/" + it->second->name +
                   "; it is served that Gateway only");
          continue;
        }
        result.by_proxy[proxy] = shared;
      }
    }
    ingress_mode = false;
  }

  // ---- ingress gateways from the Gateway API (Gateway class istio + HTTPRoute; docs/ingress.md)
  // The hostname a route host gets on a listener (Gateway API intersection: the more specific of
  // the two), or nullopt when they do not meet. "" = unset; "*" = any.
  static std::optional<std::string> intersect_hostname(const std::string& listener, const std::string& route) {
    if (listener.empty()) return route.empty() ? std::string("*") : route;
    if (route.empty() || route == listener) return listener;
    if (listener.starts_with("*.") && host_matches(listener, route) && route != listener.substr(2)) return route;
    if (route.starts_with("*.") && host_matches(route, listener) && listener != route.substr(2)) return listener;
    return std::nullopt;
  }

  // One route's attachment to one listener: the hostnames its rules are served under.
  struct Attachment {
    const GatewayRouteObject* route;
    std::vector<std::string> hosts;
  };

  // For each HTTPRoute / GRPCRoute parentRef naming a Gateway: the listeners of `gw` it attaches to; every
  // parentRef that attaches nowhere is a Warning naming it and the Gateway API reason.
  std::map<const K8sGatewayListener*, std::vector<Attachment>> attachments(const GatewayObject& gw) {
    std::map<const K8sGatewayListener*, std::vector<Attachment>> out;
    for (const auto& rt : in.l7.gateway_routes) {
      for (const auto& ref : rt.gateway_parents) {
        if (ref.name != gw.meta.name || ref.ns != gw.meta.ns) continue;
        std::string why = "NoMatchingParent: no listener named '" + ref.section_name + "'";
        if (ref.section_name.empty()) why = "NoMatchingParent: no listener on port " + std::to_string(ref.port);
        bool attached = false;
        for (const auto& l : gw.listeners) {
          if (!ref.section_name.empty() && ref.section_name != l.name) continue;
          if (ref.port != 0 && ref.port != l.port) continue;
          if (!l.route_kinds.empty() &&
              std::find(l.route_kinds.begin(), l.route_kinds.end(), rt.kind) == l.route_kinds.end()) {
            why = "NotAllowedByListeners: listener " + l.name + " does not allow kind " + rt.kind;
            continue;
          }
          if (!l.routes_from_all && rt.ns != gw.meta.ns) {
            why = "NotAllowedByListeners: listener " + l.name + " admits routes from its own namespace only";
            continue;
          }
          std::vector<std::string> hosts;
          for (const auto& h : rt.hostnames.empty() ? std::vector<std::string>{""} : rt.hostnames) {
            if (auto x = intersect_hostname(l.hostname, h)) {
              if (std::find(hosts.begin(), hosts.end(), *x) == hosts.end()) hosts.push_back(*x);
            }
          }
          if (hosts.empty()) {
            why = "NoMatchingListenerHostname: no hostname meets listener " + l.name + "'s '" + l.hostname + "'";
            continue;
          }
          auto& list = out[&l];
          bool again = false;  // two parentRefs of one route to one listener count once
          for (const auto& a : list) again |= a.route == &rt;
          if (!again) ++att.listeners[gw.meta.ns + "/" + gw.meta.name][l.name];
          list.push_back({&rt, std::move(hosts)});
          attached = true;
        }
        const auto colon = why.find(": ");
        if (attached)
          verdict(rt, ref.index, true, "Accepted", "Route was valid");
        else
          verdict(rt, ref.index, false, why.substr(0, colon), why.substr(colon + 2));
        if (!attached)
          diag(
              Severity::Warning, rt.file, rt.object, ref.path,
              "not attached to Gateway " + gw.meta.ns + "/" + gw.meta.name + " (" + why + "); route not applied there");
      }
    }
    return out;
  }

  // The RouteConfiguration `name` of the listeners of one port: a virtual host `<host>:<port>`
  // per attached hostname, holding the rules of every route attached under it in Gateway API
  // precedence (stable over routes in namespace/name order).
  route::RouteConfiguration gateway_api_routes(
      Output& out, const GatewayObject& gw, const std::string& name, uint16_t port,
      const std::vector<const K8sGatewayListener*>& listeners,
      const std::map<const K8sGatewayListener*, std::vector<Attachment>>& attached, const ServiceObject& none,
      const ServicePort& none_port) {
    route::RouteConfiguration rc;
    rc.set_name(name);
    rc.mutable_validate_clusters()->set_value(false);
    struct Rule {
      const GatewayRouteObject* route;
      const VsRule* rule;
    };
    std::map<std::string, std::vector<Rule>> by_host;
    for (const auto* l : listeners) {
      auto it = attached.find(l);
      if (it == attached.end()) continue;
      for (const auto& a : it->second) {
        for (const auto& h : a.hosts) {
          auto& rules = by_host[h];
          for (const auto& r : a.route->rules) {
            bool dup = false;  // the same route through two listeners of this port
            for (const auto& x : rules) dup |= x.rule == &r;
            if (!dup) rules.push_back({a.route, &r});
          }
        }
      }
    }
    for (auto& [host, rules] : by_host) {
      std::stable_sort(rules.begin(), rules.end(), [](const Rule& a, const Rule& b) {
        if (precedes(*a.rule, *b.rule) || precedes(*b.rule, *a.rule)) return precedes(*a.rule, *b.rule);
        return std::tie(a.route->ns, a.route->name) < std::tie(b.route->ns, b.route->name);
      });
      auto* vh = rc.add_virtual_hosts();
      vh->set_name(host + ":" + std::to_string(port));
      vh->add_domains(host);
      if (host != "*") vh->add_domains(host + ":" + std::to_string(port));
      for (const auto& r : rules) {
        *vh->add_routes() = make_route(out, *r.rule, r.rule->match.empty() ? nullptr : &r.rule->match[0], r.route->ns,
                                       none, none_port, gw.meta.ns, r.route->file, r.route->object);
      }
    }
    return rc;
  }

  // Gateways of class istio, as istiod converts them: one Istio-style server per listener
  // (gateway "<gw>-istio-autogenerated-k8s-gateway-<listener>", port name "default"), so the
  // Listener and RouteConfiguration names are those of compile_ingress. Served to the pods
  // labelled gateway.networking.k8s.io/gateway-name=<gw> in the Gateway's namespace.
  void compile_gateway_api_ingress(WaypointCompileResult& result) {
    ingress_mode = true;
    const ServiceObject none{};
    const ServicePort none_port{};
    std::vector<const GatewayObject*> gws;
    for (const auto& g : in.gateways) {
      if (g.class_name == kIngressGatewayClass) gws.push_back(&g);
    }
    std::sort(gws.begin(), gws.end(),
              [](auto* a, auto* b) { return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name); });
    // parentRefs naming a Gateway that is not an ingress gateway of ours.
    for (const auto& rt : in.l7.gateway_routes) {
      for (const auto& ref : rt.gateway_parents) {
        const GatewayObject* found = nullptr;
        for (const auto& g : in.gateways) {
          if (g.meta.name == ref.name && g.meta.ns == ref.ns) found = &g;
        }
        if (!found) {
          diag(Severity::Warning, rt.file, rt.object, ref.path,
               "Gateway " + ref.ns + "/" + ref.name + " not found; route not applied to it");
          verdict(rt, ref.index, false, "NoMatchingParent", "Gateway " + ref.ns + "/" + ref.name + " not found");
        } else if (found->class_name != kIngressGatewayClass) {
          diag(Severity::Warning, rt.file, rt.object, ref.path,
               "Gateway " + ref.ns + "/" + ref.name + " is of class " + found->class_name +
                   ", not istio; route not applied to it");
          // Another controller's Gateway gets its status from that controller, not from us.
          if (found->class_name == kWaypointGatewayClass)
            verdict(rt, ref.index, false, "NoMatchingParent",
                    "Gateway " + ref.ns + "/" + ref.name + " is of class " + found->class_name +
                        "; routes attach to a waypoint through its Services");
        }
      }
    }
    for (const auto* gw : gws) {
      const SourceRef& src = gw->src;
      Output out;
      out.res.gateway = "ingress:" + gw->meta.ns + "/" + gw->meta.name;
      if (result.by_gateway.count(out.res.gateway)) {
        diag(Severity::Error, src.file, src.object, "metadata.name",
             "an Istio Gateway " + gw->meta.ns + "/" + gw->meta.name + " has the same name; this one is ignored");
        continue;
      }
      if (gw->listeners.empty())
        diag(Severity::Warning, src.file, src.object, "spec.listeners", "no listeners: this gateway serves nothing");
      const auto attached = attachments(*gw);
      std::map<uint16_t, std::vector<const K8sGatewayListener*>> ports;
      for (const auto& l : gw->listeners) {
        ports[l.port].push_back(&l);
        att.listeners[gw->meta.ns + "/" + gw->meta.name].try_emplace(l.name, 0);
      }
      for (const auto& [port, ls] : ports) {
        std::vector<const K8sGatewayListener*> plain, secure;
        for (const auto* l : ls) (l->protocol == "HTTPS" ? secure : plain).push_back(l);
        if (!plain.empty() && !secure.empty()) {
          for (const auto* l : secure)
            diag(Severity::Error, src.file, src.object, l->path + ".protocol",
                 "HTTPS and HTTP listeners on one port " + std::to_string(port) +
                     " are not supported; listener ignored");
          secure.clear();
        }
        listener::Listener lis;
        lis.set_name("0.0.0.0_" + std::to_string(port));
        auto* sa = lis.mutable_address()->mutable_socket_address();
        sa->set_address("0.0.0.0");
        sa->set_port_value(port);
        if (!plain.empty()) {
          const std::string rname = "http." + std::to_string(port);
          add_chain(lis, rname, nullptr);
          auto rc = gateway_api_routes(out, *gw, rname, port, plain, attached, none, none_port);
          add_tracing(out, rc, gw->meta.ns, "Gateway", gw->meta.name, gw->meta.ns);
          out.res.routes[rc.name()] = to_resource(rc, kRouteConfigurationTypeUrl);
        }
        for (const auto* l : secure) {
          IstioGatewayServer srv;  // the server istiod converts this listener to
          srv.port = port;
          srv.port_name = "default";
          srv.protocol = "HTTPS";
          srv.hosts = {l->hostname.empty() ? std::string("*") : l->hostname};
          srv.tls_mode = "SIMPLE";
          srv.credential_name = l->credential_name;
          const std::string rname = "https." + std::to_string(port) + ".default." + gw->meta.name +
                                    "-istio-autogenerated-k8s-gateway-" + l->name + "." + gw->meta.ns;
          add_chain(lis, rname, &srv);
          auto rc = gateway_api_routes(out, *gw, rname, port, {l}, attached, none, none_port);
          add_tracing(out, rc, gw->meta.ns, "Gateway", gw->meta.name, gw->meta.ns);
          out.res.routes[rc.name()] = to_resource(rc, kRouteConfigurationTypeUrl);
        }
        if (lis.filter_chains_size() > 0) out.res.listeners[lis.name()] = to_resource(lis, kListenerTypeUrl);
      }
      auto shared = std::make_shared<const WaypointResources>(std::move(out.res));
      result.by_gateway[shared->gateway] = shared;
      for (const auto& pod : in.pods) {
        auto it = pod.meta.labels.find(std::string(kGatewayNameLabel));
        if (pod.meta.ns != gw->meta.ns || it == pod.meta.labels.end() || it->second != gw->meta.name) continue;
        const std::string proxy = pod.meta.name + "." + pod.meta.ns;
        if (result.by_proxy.count(proxy)) {
          diag(Severity::Warning, src.file, src.object, "metadata.name",
               "pod " + proxy + " is also selected by an Istio Gateway; it is served that Gateway only");
          continue;
        }
        result.by_proxy[proxy] = shared;
      }
    }
    ingress_mode = false;
  }

  WaypointCompileResult run() {
    WaypointCompileResult result;
    for (const auto& n : in.namespaces) namespaces[n.meta.name] = &n;
    for (const auto& s : in.services) services_by_host[fqdn(s)] = &s;
    if (workloads) {
      for (const auto& w : workloads->workloads) workload_by_uid[w.uid] = &w;
    }

    // Waypoint gateways and what they may serve.
    std::map<std::string, const GatewayObject*> gateways;
    for (const auto& g : in.gateways) {
      if (g.class_name != kWaypointGatewayClass) continue;
      gateways[g.meta.ns + "/" + g.meta.name] = &g;
      att.listeners[g.meta.ns + "/" + g.meta.name].try_emplace("*", 0);
    }
    std::map<std::string, Output> outputs;
    for (const auto& [key, g] : gateways) {
      std::string waypoint_for = "service";
      if (auto it = g->meta.labels.find(std::string(kWaypointForLabel)); it != g->meta.labels.end())
        waypoint_for = it->second;
      if (waypoint_for != "service" && waypoint_for != "all") continue;
      outputs[key].res.gateway = key;
    }
    // Service binding.
    const std::unique_ptr<WaypointVhostPolicy> authn = compile_waypoint_authn(in, opt, diags);
    const std::unique_ptr<WaypointAuthz> authz = compile_waypoint_authz(in, opt, diags);  // + attach_tcp
    const WaypointVhostPolicy* const vhost_policies[] = {authn.get(), authz.get()};
    check_telemetries(in.telemetries, in.mesh ? &*in.mesh : nullptr, diags);
    for (const auto& svc : in.services) {
      std::string name = label_or_annotation(svc.meta, kUseWaypointLabel);
      std::string wns = label_or_annotation(svc.meta, kUseWaypointNamespaceLabel);
      auto ns = namespaces.find(svc.meta.ns);
      if (name.empty() && ns != namespaces.end()) {
        name = label_or_annotation(ns->second->meta, kUseWaypointLabel);
        if (wns.empty()) wns = label_or_annotation(ns->second->meta, kUseWaypointNamespaceLabel);
      }
      if (name.empty() || name == "none") continue;
      if (wns.empty()) wns = svc.meta.ns;
      auto out = outputs.find(wns + "/" + name);
      if (out == outputs.end()) continue;  // the ztunnel compiler reports unknown waypoints
      for (const auto& sp : svc.ports) {
        if (port_protocol(sp) == PortProto::Tcp) {
          add_tcp_cluster(out->second, svc, sp, wns, [&](cluster::Cluster& c) { authz->attach_tcp(c, wns, name, svc); });
          continue;
        }
        // A port of unknown protocol gets both chains, as istiod's: bytes that are not HTTP are
        // relayed by the TCP cluster, under the same policies compiled for TCP.
        if (port_protocol(sp) == PortProto::Auto)
          add_tcp_cluster(out->second, svc, sp, wns,
                          [&](cluster::Cluster& c) { authz->attach_tcp(c, wns, name, svc); });
        add_clusters(out->second, svc, sp, "inbound-vip", wns);
        auto rc = route_config(out->second, svc, sp, wns);
        for (const auto& p : vhost_policies) p->attach(*rc.mutable_virtual_hosts(0), wns, name, svc);
        if (auto ea = authz->ext_authz_service(wns, name, svc))  // CUSTOM's provider (waypoint_authz.h)
          add_outbound(out->second, *ea->first, *ea->second, "", wns);
        attach_rate_limits(  // ratelimit_compile.h
            rc, in.rate_limits, wns, name, svc.meta.ns, svc.meta.name,
            [&](const RateLimitPolicyObject& p, const RlGlobal& g) { return rls_cluster(out->second, p, g, wns); },
            diags);
        add_tracing(out->second, rc, svc.meta.ns, "Service", svc.meta.name, wns);
        out->second.res.routes[rc.name()] = to_resource(rc, kRouteConfigurationTypeUrl);
      }
    }
    // Pod-addressed TCP (a workload bound to the waypoint, relayed without a service cluster):
    // the policies that target the waypoint itself (Gateway / GatewayClass targetRefs), compiled
    // for TCP, on a STATIC cluster without endpoints that only carries them. Not istiod's wire
    // (Envoy keeps it in the waypoint's LDS listener chain, which our waypoint does not consume).
    for (auto& [key, out] : outputs) {
      const auto slash = key.find('/');
      cluster::Cluster c;
      c.set_name(std::string(kPodTcpRbacCluster));
      c.set_type(cluster::Cluster::STATIC);
      c.mutable_load_assignment()->set_cluster_name(c.name());
      authz->attach_tcp(c, key.substr(0, slash), key.substr(slash + 1), ServiceObject{});
      if (c.metadata().typed_filter_metadata().empty()) continue;
      out.res.clusters[c.name()] = to_resource(c, kClusterTypeUrl);
    }
    // HTTPRoutes attached to a Service without a waypoint do nothing: say so.
    std::map<std::string, std::set<std::string>> waypoint_routes;  // waypoint -> routes counted
    for (const auto& g : in.l7.gateway_routes) {
      resolve_backends(g);
      for (size_t i = 0; i < g.parents.size(); ++i) {
        const auto& parent = g.parents[i];
        const ServiceObject* svc = nullptr;
        for (const auto& s : in.services) {
          if (s.meta.name == parent.name && s.meta.ns == parent.ns) svc = &s;
        }
        std::string bound = svc ? label_or_annotation(svc->meta, kUseWaypointLabel) : "";
        if (svc && bound.empty()) {
          if (auto ns = namespaces.find(svc->meta.ns); ns != namespaces.end())
            bound = label_or_annotation(ns->second->meta, kUseWaypointLabel);
        }
        const std::string where = "spec.parentRefs[" + std::to_string(parent.index) + "]";
        if (!svc) {
          diag(Severity::Warning, g.file, g.object, where, "Service " + parent.ns + "/" + parent.name + " not found");
          verdict(g, parent.index, false, "NoMatchingParent",
                  "Service " + parent.ns + "/" + parent.name + " not found");
        } else if (bound.empty() || bound == "none") {
          diag(Severity::Warning, g.file, g.object, where,
               "Service " + parent.ns + "/" + parent.name +
                   " has no istio.io/use-waypoint (MissingUseWaypointLabel); route not applied");
          verdict(g, parent.index, false, "NoMatchingParent",
                  "Service " + parent.ns + "/" + parent.name + " has no waypoint (istio.io/use-waypoint)");
        } else {
          verdict(g, parent.index, true, "Accepted", "Route was valid, bound to waypoint");
          std::string wns = label_or_annotation(svc->meta, kUseWaypointNamespaceLabel);
          if (wns.empty()) wns = svc->meta.ns;
          if (gateways.count(wns + "/" + bound)) {
            auto& seen = waypoint_routes[wns + "/" + bound];
            if (seen.insert(route_key(g)).second) ++att.listeners[wns + "/" + bound]["*"];
          }
        }
      }
    }
    compile_ingress(result);
    compile_gateway_api_ingress(result);
    result.attachments = std::move(att);
    for (auto& [key, out] : outputs) {
      std::vector<const EndpointJob*> local_jobs;  // clusters whose endpoints depend on the pod
      bool by_labels = false;                      // failoverPriority compares the pod's labels
      for (const auto& job : out.jobs) {
        if (!endpoints_depend_on_proxy(job.policy)) continue;
        local_jobs.push_back(&job);
        const auto& lb = job.policy.load_balancer;
        by_labels |= lb && lb->locality && !lb->locality->failover_priority.empty();
      }
      auto shared = std::make_shared<const WaypointResources>(std::move(out.res));
      result.by_gateway[key] = shared;
      const GatewayObject* g = gateways[key];
      // Pods seeing the mesh from the same place share one copy of the resources.
      std::map<std::pair<ztunnel::Locality, Labels>, std::shared_ptr<const WaypointResources>, ViewLess> views;
      for (const auto& pod : in.pods) {
        auto it = pod.meta.labels.find(std::string(kGatewayNameLabel));
        if (pod.meta.ns != g->meta.ns || it == pod.meta.labels.end() || it->second != g->meta.name) continue;
        const std::string proxy = pod.meta.name + "." + pod.meta.ns;
        if (local_jobs.empty()) {
          result.by_proxy[proxy] = shared;
          continue;
        }
        ProxyView view{locality_of(pod), augmented(pod)};
        auto key_view = std::make_pair(view.locality, by_labels ? view.labels : Labels{});
        auto found = views.find(key_view);
        if (found == views.end()) {
          auto copy = std::make_shared<WaypointResources>(*shared);
          for (const EndpointJob* job : local_jobs) {
            auto groups = endpoint_groups(*job->svc, *job->sp, job->subset);
            apply_locality_lb(job->policy, view, groups);
            copy->endpoints[job->cluster] =
                to_resource(load_assignment(job->cluster, groups), kClusterLoadAssignmentTypeUrl);
          }
          found = views.emplace(key_view, std::move(copy)).first;
        }
        result.by_proxy[proxy] = found->second;
      }
    }
    return result;
  }
};

}  // namespace

WaypointCompileResult compile_waypoints(const ResourceSet& resources, const CompileOptions& options,
                                        const ztunnel::LocalConfig* workloads) {
  Diagnostics diags;
  Compiler c{resources, options, diags, workloads, {}, {}, {}, {}};
  WaypointCompileResult r = c.run();
  r.diagnostics = std::move(diags);
  return r;
}

std::string proxy_key_of_node(std::string_view id) {
  if (id.substr(0, 9) == "waypoint~") {
    id.remove_prefix(9);
  } else if (id.substr(0, 7) == "router~") {  // an ingress gateway pod (docs/ingress.md)
    id.remove_prefix(7);
  } else {
    return "";
  }
  auto a = id.find('~');
  if (a == std::string_view::npos) return "";
  id.remove_prefix(a + 1);
  auto b = id.find('~');
  return std::string(b == std::string_view::npos ? id : id.substr(0, b));
}

}  // namespace controlplane
