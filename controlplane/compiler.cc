#include "controlplane/compiler.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "controlplane/authz_policy.h"
#include "controlplane/k8s_loader.h"

namespace controlplane {
namespace {

using ztunnel::GatewayAddress;
using ztunnel::NetworkAddress;
using ztunnel::PortMap;
using ztunnel::Workload;

const std::string* find_label(const Labels& labels, std::string_view key) {
  auto it = labels.find(std::string(key));
  return it == labels.end() ? nullptr : &it->second;
}

// Istio reads istio.io/use-waypoint from labels and, for older manifests, annotations; the
// label wins.
const std::string* find_label_or_annotation(const ObjectMeta& m, std::string_view key) {
  if (const auto* v = find_label(m.labels, key)) return v;
  return find_label(m.annotations, key);
}

bool selects(const Labels& selector, const Labels& labels) {
  return std::all_of(selector.begin(), selector.end(), [&](const auto& kv) {
    const auto* v = find_label(labels, kv.first);
    return v && *v == kv.second;
  });
}

// What istiod reports as the workload behind a pod: the Deployment behind a ReplicaSet
// (recognised by the pod-template-hash suffix), a Job, or the controller / the pod itself.
std::pair<std::string, std::string> workload_name_and_type(const ObjectMeta& m) {
  for (const OwnerReference& o : m.owners) {
    if (!o.controller || o.name.empty()) continue;
    if (o.kind == "ReplicaSet") {
      const std::string* hash = find_label(m.labels, "pod-template-hash");
      if (hash && !hash->empty() && o.name.size() > hash->size() + 1 &&
          o.name.compare(o.name.size() - hash->size() - 1, std::string::npos, "-" + *hash) == 0) {
        return {o.name.substr(0, o.name.size() - hash->size() - 1), "deployment"};
      }
      return {o.name, "deployment"};
    }
    if (o.kind == "Job") return {o.name, "job"};
    if (o.kind == "CronJob") return {o.name, "cronjob"};
    return {o.name, "pod"};
  }
  return {m.name, "pod"};
}

}  // namespace

ztunnel::Locality pod_locality_label(const Labels& labels) {
  const std::string* v = find_label(labels, "topology.istio.io/locality");
  if (!v || v->empty()) v = find_label(labels, "istio-locality");
  ztunnel::Locality loc;
  if (!v || v->empty()) return loc;
  std::string* parts[] = {&loc.region, &loc.zone, &loc.subzone};
  size_t i = 0;
  for (char c : *v) {
    if (c == '.' || c == '/') {
      if (++i == 3) break;  // anything past the subzone is ignored
    } else {
      *parts[i] += c;
    }
  }
  return loc;
}

namespace {

std::pair<std::string, std::string> canonical_name_and_revision(const Labels& labels,
                                                                const std::string& workload_name) {
  std::string name = workload_name, revision = "latest";
  for (std::string_view key : {"app", "app.kubernetes.io/name", "service.istio.io/canonical-name"}) {
    if (const auto* v = find_label(labels, key); v && !v->empty()) name = *v;  // later keys win
  }
  for (std::string_view key : {"version", "app.kubernetes.io/version", "service.istio.io/canonical-revision"}) {
    if (const auto* v = find_label(labels, key); v && !v->empty()) revision = *v;
  }
  return {name, revision};
}

struct WaypointInfo {
  const GatewayObject* gateway = nullptr;
  std::optional<GatewayAddress> address;
  std::string waypoint_for = "service";  // service | workload | all | none
};

// A workload under construction plus what selection needs to know about its source.
struct Candidate {
  Workload w;
  const Labels* labels = nullptr;
  const SourceRef* src = nullptr;
  const std::vector<ContainerPort>* container_ports = nullptr;   // pods
  const std::map<std::string, uint16_t>* named_ports = nullptr;  // WorkloadEntries
  bool is_waypoint = false;

  std::optional<uint16_t> named_port(const std::string& name) const {
    if (container_ports) {
      for (const auto& p : *container_ports) {
        if (p.name == name) return p.port;
      }
    }
    if (named_ports) {
      auto it = named_ports->find(name);
      if (it != named_ports->end()) return it->second;
    }
    return std::nullopt;
  }
};

// Stable sort by key() with the first of equal keys kept; keys computed once, not per compare.
template <typename T>
void sort_unique_by_key(std::vector<T>& items) {
  std::vector<std::pair<std::string, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(items[i].key(), i);
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<T> out;
  out.reserve(items.size());
  for (size_t i = 0; i < keyed.size(); ++i) {
    if (i > 0 && keyed[i].first == keyed[i - 1].first) continue;
    out.push_back(std::move(items[keyed[i].second]));
  }
  items = std::move(out);
}

class Compiler {
 public:
  Compiler(const ResourceSet& r, const CompileOptions& o, Diagnostics& d) : res_(r), opt_(o), diags_(d) {}

  ztunnel::LocalConfig run() {
    index_namespaces();
    index_waypoints();
    build_pod_workloads();
    build_workload_entries();
    index_candidates();
    ztunnel::LocalConfig out;
    build_services(out);
    build_policies(out);
    check_addresses(out);

    // Sorted by uid through an index: a Candidate holds a whole Workload, and moving 50k of
    // them around in a sort cost more than the rest of the compile.
    std::vector<size_t> order(candidates_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return candidates_[a].w.uid < candidates_[b].w.uid; });
    out.workloads.reserve(order.size());
    const std::string* prev_uid = nullptr;
    for (size_t i : order) {
      auto& c = candidates_[i];
      if (prev_uid != nullptr && *prev_uid == c.w.uid) continue;  // unreachable after dedupe; never emit twice
      auto& pols = c.w.authorization_policies;
      std::sort(pols.begin(), pols.end());
      pols.erase(std::unique(pols.begin(), pols.end()), pols.end());
      out.workloads.push_back(std::move(c.w));
      prev_uid = &out.workloads.back().uid;
    }
    // Keys are unique after the loader's duplicate removal; a caller that skipped it must still
    // get a file ztunnel accepts, so the first of equal keys wins here too.
    sort_unique_by_key(out.services);
    sort_unique_by_key(out.policies);
    return out;
  }

 private:
  void note(Severity s, const SourceRef& src, std::string field, std::string message) {
    diags_.push_back({s, src.file, src.object, std::move(field), std::move(message)});
  }

  // ---- namespaces and enrolment ----

  void index_namespaces() {
    for (const auto& ns : res_.namespaces) namespaces_[ns.meta.name] = &ns;
  }

  const ObjectMeta* namespace_meta(const std::string& ns) const {
    auto it = namespaces_.find(ns);
    return it == namespaces_.end() ? nullptr : &it->second->meta;
  }

  // Pod (or WorkloadEntry) label first: "none" opts out, "ambient" opts in; else the namespace.
  bool enrolled(const Labels& labels, const std::string& ns) const {
    if (const auto* v = find_label(labels, kDataplaneModeLabel)) {
      if (*v == kDataplaneModeNone) return false;
      if (*v == kDataplaneModeAmbient) return true;
    }
    const ObjectMeta* nsm = namespace_meta(ns);
    if (!nsm) return false;
    const auto* v = find_label(nsm->labels, kDataplaneModeLabel);
    return v && *v == kDataplaneModeAmbient;
  }

  // ---- waypoints ----

  void index_waypoints() {
    for (const auto& g : res_.gateways) {
      if (g.class_name == kIngressGatewayClass) {  // compiled by waypoint_compiler.h
        note(Severity::Info, g.src, "spec.gatewayClassName",
             "class istio: an ingress gateway (docs/ingress.md), not a waypoint");
        continue;
      }
      if (g.class_name != kWaypointGatewayClass) {
        note(Severity::Info, g.src, "spec.gatewayClassName",
             "class " + g.class_name + " is not " + std::string(kWaypointGatewayClass) + "; ignored");
        continue;
      }
      WaypointInfo info;
      info.gateway = &g;
      if (const auto* f = find_label(g.meta.labels, kWaypointForLabel)) {
        if (*f == "service" || *f == "workload" || *f == "all" || *f == "none") {
          info.waypoint_for = *f;
        } else {
          note(Severity::Warning, g.src, "metadata.labels[" + std::string(kWaypointForLabel) + "]",
               "unknown value '" + *f + "' (service, workload, all, none); using service");
        }
      }
      // The waypoint's own pods: first by name, for a stable choice.
      const PodObject* chosen = nullptr;
      for (const auto& p : res_.pods) {
        if (p.meta.ns != g.meta.ns || p.ips.empty() || p.meta.deleting) continue;
        const auto* name = find_label(p.meta.labels, kGatewayNameLabel);
        if (!name || *name != g.meta.name) continue;
        if (!chosen || p.meta.name < chosen->meta.name) chosen = &p;
      }
      std::optional<ztunnel::IpAddr> ip;
      if (chosen) {
        ip = chosen->ips.front();
      } else if (!g.addresses.empty()) {
        ip = g.addresses.front();
      }
      if (ip) {
        info.address = GatewayAddress{NetworkAddress{opt_.network, *ip}, g.hbone_port};
      } else {
        note(Severity::Warning, g.src, "",
             "waypoint has no address: no pod labelled " + std::string(kGatewayNameLabel) + "=" + g.meta.name +
                 " with an IP and no status.addresses; nothing will use it");
      }
      waypoints_[{g.meta.ns, g.meta.name}] = std::move(info);
    }
  }

  bool is_waypoint_pod(const PodObject& p) const {
    const auto* name = find_label(p.meta.labels, kGatewayNameLabel);
    return name && waypoints_.count({p.meta.ns, *name});
  }

  // istio.io/use-waypoint on the object, else on its namespace. `for_workload` selects which
  // waypoint-for values may serve it.
  std::optional<GatewayAddress> resolve_waypoint(const ObjectMeta& obj, const SourceRef& src, bool for_workload) {
    const ObjectMeta* holder = nullptr;
    const std::string* name = find_label_or_annotation(obj, kUseWaypointLabel);
    if (name) {
      holder = &obj;
    } else if (const ObjectMeta* nsm = namespace_meta(obj.ns)) {
      name = find_label_or_annotation(*nsm, kUseWaypointLabel);
      holder = nsm;
    }
    if (!name || name->empty() || *name == kDataplaneModeNone) return std::nullopt;
    std::string wns = obj.ns;
    if (const auto* n = find_label_or_annotation(*holder, kUseWaypointNamespaceLabel); n && !n->empty()) {
      wns = *n;
    }
    const bool own = holder == &obj;
    const std::string field = own ? "metadata.labels[" + std::string(kUseWaypointLabel) + "]" : "";
    const std::string via = own ? "" : " (from namespace " + obj.ns + ")";
    auto it = waypoints_.find({wns, *name});
    if (it == waypoints_.end()) {
      note(Severity::Warning, src, field,
           "waypoint " + wns + "/" + *name + via + " not found (no Gateway of class " +
               std::string(kWaypointGatewayClass) + "); traffic bypasses it");
      return std::nullopt;
    }
    const std::string& f = it->second.waypoint_for;
    const bool serves = f == "all" || f == (for_workload ? "workload" : "service");
    if (!serves) {
      // Only worth saying when the object asked for it itself: a namespace label reaches every
      // workload and service, and a service waypoint ignoring workloads is the normal case.
      if (own) {
        note(Severity::Info, src, field,
             "waypoint " + wns + "/" + *name + " is for " + f + "; not used for this " +
                 (for_workload ? "workload" : "service"));
      }
      return std::nullopt;
    }
    return it->second.address;
  }

  // ---- workloads ----

  void build_pod_workloads() {
    for (const auto& p : res_.pods) {
      if (p.ips.empty()) {
        note(Severity::Info, p.src, "status.podIP", "pod has no IP yet; not a workload");
        continue;
      }
      if (p.phase == "Succeeded" || p.phase == "Failed") {
        note(Severity::Info, p.src, "status.phase", "pod has terminated; not a workload");
        continue;
      }
      Candidate c;
      c.labels = &p.meta.labels;
      c.src = &p.src;
      c.container_ports = &p.ports;
      c.is_waypoint = is_waypoint_pod(p);
      Workload& w = c.w;
      w.uid = opt_.cluster_id + "//Pod/" + p.meta.ns + "/" + p.meta.name;
      w.name = p.meta.name;
      w.ns = p.meta.ns;
      w.service_account = p.service_account;
      w.trust_domain = opt_.trust_domain;
      w.addresses = p.ips;
      w.network = opt_.network;
      w.node = p.node_name;
      w.locality = pod_locality_label(p.meta.labels);  // else its Node's (KubeSource::annotate)
      w.cluster_id = opt_.cluster_id;
      w.network_mode = p.host_network ? ztunnel::NetworkMode::HostNetwork : ztunnel::NetworkMode::Standard;
      // Host-network pods share the node's stack: nothing to redirect, never captured.
      const bool captured = !p.host_network && enrolled(p.meta.labels, p.meta.ns);
      w.tunnel_protocol = captured ? ztunnel::TunnelProtocol::Hbone : ztunnel::TunnelProtocol::None;
      std::tie(w.workload_name, w.workload_type) = workload_name_and_type(p.meta);
      std::tie(w.canonical_name, w.canonical_revision) = canonical_name_and_revision(p.meta.labels, w.workload_name);
      w.status = (p.ready && !p.meta.deleting) ? ztunnel::HealthStatus::Healthy : ztunnel::HealthStatus::Unhealthy;
      // Waypoints do not get waypoints; un-captured pods are not reached through ztunnel.
      if (captured && !c.is_waypoint) w.waypoint = resolve_waypoint(p.meta, p.src, true);
      candidates_.push_back(std::move(c));
    }
  }

  void build_workload_entries() {
    for (const auto& e : res_.workload_entries) {
      if (!e.address && e.hostname.empty()) {
        note(Severity::Info, e.src, "spec.address", "no address; not a workload");
        continue;
      }
      Candidate c;
      c.labels = &e.labels;
      c.src = &e.src;
      c.named_ports = &e.ports;
      Workload& w = c.w;
      w.uid = opt_.cluster_id + "/networking.istio.io/WorkloadEntry/" + e.meta.ns + "/" + e.meta.name;
      w.name = e.meta.name;
      w.ns = e.meta.ns;
      w.service_account = e.service_account;
      w.trust_domain = opt_.trust_domain;
      if (e.address) w.addresses.push_back(*e.address);
      w.hostname = e.hostname;
      w.network = e.network.empty() ? opt_.network : e.network;
      w.cluster_id = opt_.cluster_id;
      w.locality = e.locality;
      if (e.weight > 0) w.capacity = e.weight;
      const bool captured = enrolled(e.labels, e.meta.ns);
      w.tunnel_protocol = captured ? ztunnel::TunnelProtocol::Hbone : ztunnel::TunnelProtocol::None;
      w.workload_name = e.meta.name;
      w.workload_type = "pod";
      std::tie(w.canonical_name, w.canonical_revision) = canonical_name_and_revision(e.labels, w.workload_name);
      w.status = e.meta.deleting ? ztunnel::HealthStatus::Unhealthy : ztunnel::HealthStatus::Healthy;
      if (captured) {
        // use-waypoint may sit in spec.labels as well as metadata.labels.
        ObjectMeta m = e.meta;
        m.labels = e.labels;
        w.waypoint = resolve_waypoint(m, e.src, true);
      }
      candidates_.push_back(std::move(c));
    }
  }

  // ---- selection ----

  // Label index over the candidates, so selecting is proportional to the workloads a selector
  // can match rather than services x workloads (10k services over 50k workloads at scale).
  void index_candidates() {
    for (size_t i = 0; i < candidates_.size(); ++i) {
      const Candidate& c = candidates_[i];
      by_ns_[c.w.ns].push_back(i);
      for (const auto& [k, v] : *c.labels) {
        by_label_[{c.w.ns, k, v}].push_back(i);
        by_label_any_ns_[{k, v}].push_back(i);
      }
    }
  }

  // Indices (ascending) of the candidates whose labels include `selector`, in namespace `*ns`
  // or in every namespace when `ns` is null. An empty selector selects all of them.
  std::vector<size_t> select(const Labels& selector, const std::string* ns) const {
    static const std::vector<size_t> kNone;
    const std::vector<size_t>* bucket = nullptr;
    if (selector.empty()) {
      if (!ns) {
        std::vector<size_t> all(candidates_.size());
        for (size_t i = 0; i < all.size(); ++i) all[i] = i;
        return all;
      }
      auto it = by_ns_.find(*ns);
      return it == by_ns_.end() ? kNone : it->second;
    }
    // Start from the rarest selector label; the rest is checked per candidate.
    for (const auto& [k, v] : selector) {
      const std::vector<size_t>* b = &kNone;
      if (ns) {
        auto it = by_label_.find({*ns, k, v});
        if (it != by_label_.end()) b = &it->second;
      } else {
        auto it = by_label_any_ns_.find({k, v});
        if (it != by_label_any_ns_.end()) b = &it->second;
      }
      if (!bucket || b->size() < bucket->size()) bucket = b;
    }
    std::vector<size_t> out;
    for (size_t i : *bucket) {
      if (selects(selector, *candidates_[i].labels)) out.push_back(i);
    }
    return out;
  }

  // ---- services ----

  void build_services(ztunnel::LocalConfig& out) {
    for (const auto& svc : res_.services) {
      if (svc.external_name) {
        note(Severity::Info, svc.src, "spec.type", "ExternalName services have no endpoints; ignored");
        continue;
      }
      ztunnel::Service s;
      s.name = svc.meta.name;
      s.ns = svc.meta.ns;
      s.hostname = svc.meta.name + "." + svc.meta.ns + ".svc." + opt_.cluster_domain;
      for (const auto& ip : svc.cluster_ips) s.vips.push_back(NetworkAddress{opt_.network, ip});
      for (const auto& p : svc.ports) s.ports.set(p.port, p.target_port);
      // The waypoint's own Service (named like its Gateway) is never sent through a waypoint.
      const bool own_waypoint_service = waypoints_.count({svc.meta.ns, svc.meta.name}) > 0;
      if (!own_waypoint_service) s.waypoint = resolve_waypoint(svc.meta, svc.src, false);

      if (svc.selector && !svc.selector->empty()) {
        const std::string key = s.key();
        for (size_t i : select(*svc.selector, &svc.meta.ns)) {
          Candidate& c = candidates_[i];
          PortMap ports;
          for (const auto& p : svc.ports) {
            if (p.target_port != 0) {
              ports.set(p.port, p.target_port);
            } else if (auto np = c.named_port(p.target_port_name)) {
              ports.set(p.port, *np);
            } else {
              // As Kubernetes: an endpoint without the named port does not serve that port.
              note(Severity::Info, svc.src, "spec.ports",
                   "workload " + c.w.ns + "/" + c.w.name + " has no port named '" + p.target_port_name +
                       "'; it does not serve port " + std::to_string(p.port));
            }
          }
          c.w.services[key] = std::move(ports);
        }
      }
      add_slice_endpoints(svc, s.key(), !svc.selector || svc.selector->empty());
      out.services.push_back(std::move(s));
    }
    for (auto& c : slice_workloads_) candidates_.push_back(std::move(c));
    slice_workloads_.clear();
  }

  // EndpointSlices (label kubernetes.io/service-name) of `svc`, as istiod's ambient index reads
  // them: an endpoint whose targetRef is a Pod is that pod (joined to the Service here only
  // when the Service has no selector; with one, the selector already did it); any other
  // address is a workload of its own, uid "<cluster>/discovery.k8s.io/EndpointSlice/<ns>/
  // <slice>/<first address>", host-network mode (the address may be shared), no identity
  // known, so never HBONE. Slice ports map to the Service port of the same name.
  void add_slice_endpoints(const ServiceObject& svc, const std::string& key, bool selectorless) {
    if (slices_by_service_.empty() && !res_.endpoint_slices.empty()) {
      for (const auto& es : res_.endpoint_slices) {
        if (es.service_name.empty()) continue;  // not a Service's: an arbitrary bag of IPs
        slices_by_service_[{es.meta.ns, es.service_name}].push_back(&es);
      }
      for (size_t i = 0; i < candidates_.size(); ++i) {
        if (candidates_[i].container_ports) pod_candidates_[{candidates_[i].w.ns, candidates_[i].w.name}] = i;
      }
    }
    auto it = slices_by_service_.find({svc.meta.ns, svc.meta.name});
    if (it == slices_by_service_.end()) return;
    for (const EndpointSliceObject* es : it->second) {
      if (es->address_type == "FQDN") {
        note(Severity::Info, es->src, "addressType", "FQDN EndpointSlices are not supported (as istiod); ignored");
        continue;
      }
      PortMap ports;
      for (const auto& sp : es->ports) {
        auto svc_port =
            std::find_if(svc.ports.begin(), svc.ports.end(), [&](const auto& p) { return p.name == sp.name; });
        if (svc_port != svc.ports.end()) ports.set(svc_port->port, sp.port);
      }
      std::set<ztunnel::IpAddr> seen;
      for (const auto& ep : es->endpoints) {
        if (!ep.pod_name.empty()) {
          if (!selectorless) continue;
          auto pc = pod_candidates_.find({ep.pod_ns, ep.pod_name});
          if (pc == pod_candidates_.end()) {
            note(Severity::Info, es->src, ep.path + ".targetRef",
                 "pod " + ep.pod_ns + "/" + ep.pod_name + " is not a workload; endpoint skipped");
            continue;
          }
          auto& svc_ports = candidates_[pc->second].w.services[key];
          for (const auto& [sport, tport] : ports) svc_ports.set(sport, tport);
          continue;
        }
        if (ep.addresses.empty()) continue;
        if (!seen.insert(ep.addresses.front()).second) {
          note(Severity::Warning, es->src, ep.path + ".addresses",
               "address " + ep.addresses.front().to_string() + " listed twice; the first one counts");
          continue;
        }
        Candidate c;
        c.labels = &kNoLabels;
        c.src = &es->src;
        Workload& w = c.w;
        w.uid = opt_.cluster_id + "/discovery.k8s.io/EndpointSlice/" + es->meta.ns + "/" + es->meta.name + "/" +
                ep.addresses.front().to_string();
        w.name = es->meta.name;
        w.ns = es->meta.ns;
        w.trust_domain = opt_.trust_domain;
        w.addresses = ep.addresses;
        w.network = opt_.network;
        w.cluster_id = opt_.cluster_id;
        w.network_mode = ztunnel::NetworkMode::HostNetwork;
        w.tunnel_protocol = ztunnel::TunnelProtocol::None;
        w.workload_name = es->meta.name;
        w.status = ep.ready ? ztunnel::HealthStatus::Healthy : ztunnel::HealthStatus::Unhealthy;
        w.services[key] = ports;
        slice_workloads_.push_back(std::move(c));
      }
    }
  }

  // ---- policies ----

  void build_policies(ztunnel::LocalConfig& out) {
    for (const auto& pol : res_.policies) {
      auto a = translate_policy(pol, opt_.root_namespace, diags_);
      if (!a) continue;
      if (a->scope == ztunnel::AuthzScope::WorkloadSelector) {
        const bool mesh_wide = pol.meta.ns == opt_.root_namespace;
        for (size_t i : select(*pol.selector, mesh_wide ? nullptr : &pol.meta.ns)) {
          candidates_[i].w.authorization_policies.push_back(a->key());
        }
      }
      out.policies.push_back(std::move(*a));
    }
  }

  // Two workloads (or two services) on one address make routing ambiguous: ztunnel keeps one.
  void check_addresses(const ztunnel::LocalConfig& out) {
    std::map<std::pair<std::string, ztunnel::IpAddr>, const Candidate*> seen;
    for (const auto& c : candidates_) {
      if (c.w.network_mode == ztunnel::NetworkMode::HostNetwork) continue;  // shares the node IP
      for (const auto& ip : c.w.addresses) {
        auto [it, inserted] = seen.emplace(std::make_pair(c.w.network, ip), &c);
        if (!inserted) {
          note(Severity::Warning, *c.src, "",
               "address " + ip.to_string() + " is also used by " + it->second->src->object);
        }
      }
    }
    std::map<std::pair<std::string, ztunnel::IpAddr>, const ztunnel::Service*> vips;
    for (const auto& s : out.services) {
      for (const auto& v : s.vips) {
        auto [it, inserted] = vips.emplace(std::make_pair(v.network, v.ip), &s);
        if (!inserted) {
          diags_.push_back(
              {Severity::Warning, "", "Service " + s.ns + "/" + s.name, "spec.clusterIP",
               "VIP " + v.ip.to_string() + " is also used by Service " + it->second->ns + "/" + it->second->name});
        }
      }
    }
  }

  const ResourceSet& res_;
  const CompileOptions& opt_;
  Diagnostics& diags_;
  std::map<std::string, const NamespaceObject*> namespaces_;
  std::map<std::pair<std::string, std::string>, WaypointInfo> waypoints_;
  std::vector<Candidate> candidates_;
  // EndpointSlices by (namespace, service name) and pods by (namespace, name); built on first use.
  std::map<std::pair<std::string, std::string>, std::vector<const EndpointSliceObject*>> slices_by_service_;
  std::map<std::pair<std::string, std::string>, size_t> pod_candidates_;
  std::vector<Candidate> slice_workloads_;  // joined to candidates_ once every Service is built
  static inline const Labels kNoLabels;     // slice workloads have none: no selector picks them
  std::map<std::string, std::vector<size_t>> by_ns_;
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<size_t>> by_label_;
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> by_label_any_ns_;
};

}  // namespace

CompiledState compile(const ResourceSet& resources, const CompileOptions& options) {
  CompiledState state;
  Compiler c(resources, options, state.diagnostics);
  state.config = c.run();
  return state;
}

common::Result<CompiledState> compile_directory(const std::string& dir, const CompileOptions& options,
                                                const std::vector<std::string>& exclude) {
  Diagnostics diags;
  auto resources = load_directory(dir, diags, exclude);
  if (!resources) return common::make_error(resources.error());
  CompiledState state = compile(*resources, options);
  diags.insert(diags.end(), std::make_move_iterator(state.diagnostics.begin()),
               std::make_move_iterator(state.diagnostics.end()));
  state.diagnostics = std::move(diags);
  return state;
}

}  // namespace controlplane
