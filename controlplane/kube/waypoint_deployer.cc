#include "controlplane/kube/waypoint_deployer.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/admin/log.h"
#include "controlplane/kube/gateway_objects.h"
#include "controlplane/kube/json_fields.h"
#include "controlplane/kube/route_status.h"

namespace controlplane::kube {
namespace {

using nlohmann::json;

constexpr int kLeaseSeconds = 15;

std::shared_ptr<spdlog::logger> dep_log() {
  static const std::shared_ptr<spdlog::logger> lg = common::log::logger("waypoints");
  return lg;
}

// RFC 3339 with microseconds (metav1.MicroTime); seconds only for metav1.Time.
std::string now_rfc3339(bool micro) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string s = buf;
  if (micro) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(us));
    s += frac;
  }
  return s + "Z";
}

// Parses "2026-12-07T03:45:00[.ffffff]Z" to system time; nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_time(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string str(const json& j, const char* key) {
  return json_str(j, key);
}

std::string message_of(const common::Result<KubeResponse>& r) {
  if (!r) return r.error();
  json st = json::parse(r->body, nullptr, false);
  return "HTTP " + std::to_string(r->status) + (st.is_object() ? ": " + str(st, "message") : "");
}

}  // namespace

struct WaypointDeployer::Impl {
  std::shared_ptr<KubeSource> source;
  WaypointDeployerOptions opt;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool dirty = true;
  std::shared_ptr<const GatewayAttachments> attachments;  // under mu; null until the first compile
  std::thread thread;
  bool leader = false;
  std::chrono::steady_clock::time_point last_renew{};
  std::chrono::steady_clock::time_point last_full{};
  std::map<std::string, std::string> applied;  // object path -> body last applied (skip repeats)
  std::map<std::string, json> last_result;     // object path -> the server's answer to it
  std::map<std::string, std::string> logged;   // object path -> body last logged (never cleared)

  Cancel cancel;  // stop() cuts a call in flight
  common::Result<KubeResponse> call(std::string_view method, const std::string& target, const std::string& body = {},
                                    std::string_view content_type = "application/json") {
    return source->client().request(method, target, body, content_type, std::chrono::seconds(30), &cancel);
  }
  void loop();
  bool renew_lease();
  void reconcile();
  // Certificate Secrets ("ns/name") the class istio Gateways name that do not exist.
  std::set<std::string> missing_secrets(const std::vector<json>& gateways);
  void write_route_status(const GatewayAttachments& att);
  // PATCH (merge) `collection/name` with `body`, or POST it to `collection` when absent. The
  // object after the write, or null on failure (logged).
  json apply(const std::string& collection, const std::string& name, const json& body, bool force);
};

bool WaypointDeployer::Impl::renew_lease() {
  const std::string coll = "/apis/coordination.k8s.io/v1/namespaces/" + opt.lease_namespace + "/leases";
  const std::string path = coll + "/" + opt.lease_name;
  auto r = call("GET", path);
  const std::string now = now_rfc3339(true);
  if (r && r->status == 404) {
    json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", opt.lease_name}, {"namespace", opt.lease_namespace}}},
                  {"spec",
                   {{"holderIdentity", opt.identity},
                    {"leaseDurationSeconds", kLeaseSeconds},
                    {"acquireTime", now},
                    {"renewTime", now},
                    {"leaseTransitions", 0}}}};
    auto c = call("POST", coll, lease.dump());
    return c && c->status == 201;
  }
  if (!r || r->status != 200) {
    dep_log()->warn("lease {}/{}: {}", opt.lease_namespace, opt.lease_name, message_of(r));
    return false;
  }
  json lease = json::parse(r->body, nullptr, false);
  if (!lease.is_object()) return false;
  json& spec = lease["spec"];
  if (!spec.is_object()) spec = json::object();
  const std::string holder = str(spec, "holderIdentity");
  const int duration = spec.value("leaseDurationSeconds", kLeaseSeconds);
  const auto renewed = parse_time(str(spec, "renewTime"));
  const bool expired = !renewed || *renewed + std::chrono::seconds(duration) < std::chrono::system_clock::now();
  if (holder != opt.identity && !holder.empty() && !expired) return false;
  if (holder != opt.identity) {
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = spec.value("leaseTransitions", 0) + 1;
    spec["holderIdentity"] = opt.identity;
  }
  spec["renewTime"] = now;
  spec["leaseDurationSeconds"] = kLeaseSeconds;
  // The body keeps metadata.resourceVersion: a concurrent writer makes this a 409.
  auto u = call("PUT", path, lease.dump());
  return u && u->status == 200;
}

json WaypointDeployer::Impl::apply(const std::string& collection, const std::string& name, const json& body,
                                   bool force) {
  const std::string path = collection + "/" + name;
  const std::string text = body.dump();
  if (!force) {
    // Unchanged since the last successful write (the 30 s resync clears this): skip the call.
    if (auto it = applied.find(path); it != applied.end() && it->second == text && !it->second.empty()) {
      auto cached = last_result.find(path);
      if (cached != last_result.end()) return cached->second;
    }
  }
  auto r = call("PATCH", path, text, "application/merge-patch+json");
  if (r && r->status == 404) r = call("POST", collection, text);
  if (!r || (r->status != 200 && r->status != 201)) {
    dep_log()->warn("apply {}: {}", path, message_of(r));
    applied.erase(path);
    return nullptr;
  }
  if (force || logged[path] != text) dep_log()->info("applied {}", path);
  logged[path] = text;
  applied[path] = text;
  json out = json::parse(r->body, nullptr, false);
  if (out.is_discarded()) out = nullptr;
  last_result[path] = out;
  return out;
}

void WaypointDeployer::Impl::reconcile() {
  if (!opt.root_cert_file.empty()) {
    std::ifstream in(opt.root_cert_file, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string pem = ss.str();
    if (pem.empty()) {
      dep_log()->warn("istio-ca-root-cert: cannot read {}", opt.root_cert_file);
    } else {
      for (const auto& [name, obj] : source->objects_of("namespaces")) {
        json cm = {{"apiVersion", "v1"},
                   {"kind", "ConfigMap"},
                   {"metadata",
                    {{"name", "istio-ca-root-cert"}, {"namespace", name}, {"labels", {{"istio.io/config", "true"}}}}},
                   {"data", {{"root-cert.pem", pem}}}};
        const std::string path = "/api/v1/namespaces/" + name + "/configmaps";
        apply(path, "istio-ca-root-cert", cm, false);
      }
    }
  }
  std::shared_ptr<const GatewayAttachments> att;
  {
    std::lock_guard<std::mutex> g(mu);
    att = attachments;
  }
  std::vector<ManagedGateway> gws;
  std::vector<json> raw;  // the Gateway of gws[i] as watched
  for (const auto& [key, obj] : source->objects_of("gateways", "gateway.networking.k8s.io")) {
    json j = json::parse(obj.json, nullptr, false);
    if (auto gw = read_managed_gateway(j)) {
      gws.push_back(std::move(*gw));
      raw.push_back(std::move(j));
    }
  }
  const std::set<std::string> missing = att ? missing_secrets(raw) : std::set<std::string>{};

  std::map<std::string, StoredObject> services;  // "ns/name" -> watched Service (ingress only)
  for (const auto& gw : gws) {
    if (gw.kind == ManagedGateway::Kind::ingress) {
      services = source->objects_of("services");
      break;
    }
  }
  std::set<std::string> wanted;  // "ns/object" of every object a live Gateway wants
  for (size_t gi = 0; gi < gws.size(); ++gi) {
    const ManagedGateway& gw = gws[gi];
    wanted.insert(gw.ns + "/" + gw.object_name);
    const GatewayObjects objs = render_gateway_objects(gw, opt);
    const std::string core = "/api/v1/namespaces/" + gw.ns;
    apply(core + "/serviceaccounts", gw.object_name, objs.service_account, false);
    apply("/apis/apps/v1/namespaces/" + gw.ns + "/deployments", gw.object_name, objs.deployment, false);
    json svc = apply(core + "/services", gw.object_name, objs.service, false);
    // The LoadBalancer's address comes later, as a Service status change: an event that brings
    // the controller back here, while apply() may answer from its cache. The watched copy
    // holds that status; the applied one is used until the watch has seen the Service.
    if (auto it = services.find(gw.ns + "/" + gw.object_name); svc.is_object() && it != services.end()) {
      json watched = json::parse(it->second.json, nullptr, false);
      if (watched.is_object()) svc = std::move(watched);
    }
    json listeners;  // null: no compile yet, listeners left alone
    if (att) {
      auto it = att->listeners.find(gw.ns + "/" + gw.name);
      listeners = gateway_listener_status(raw[gi], it == att->listeners.end() ? nullptr : &it->second, missing,
                                          now_rfc3339(false));
    }
    auto patch = gateway_status_patch(gw, svc, now_rfc3339(false), listeners);
    if (!patch) continue;
    auto r =
        call("PATCH", "/apis/gateway.networking.k8s.io/v1/namespaces/" + gw.ns + "/gateways/" + gw.name + "/status",
             patch->dump(), "application/merge-patch+json");
    if (!r || r->status != 200) {
      dep_log()->warn("status of Gateway {}/{}: {}", gw.ns, gw.name, message_of(r));
    } else {
      const json& st = (*patch)["status"];
      dep_log()->info("Gateway {}/{}: Programmed={} ({}), address {}", gw.ns, gw.name,
                      st["conditions"][1]["status"].get<std::string>(),
                      st["conditions"][1]["reason"].get<std::string>(), st["addresses"][0]["value"].get<std::string>());
    }
  }

  if (att) write_route_status(*att);

  // Managed objects whose Gateway is gone.
  for (const char* managed : {kManagedWaypoint, kManagedIngress}) {
    for (const char* coll : {"/apis/apps/v1/deployments", "/api/v1/services", "/api/v1/serviceaccounts"}) {
      const std::string selector = url_encode(std::string(kManagedLabel) + "=" + managed);
      auto r = call("GET", std::string(coll) + "?labelSelector=" + selector);
      if (!r || r->status != 200) {
        dep_log()->warn("list {} (managed): {}", coll, message_of(r));
        continue;
      }
      json list = json::parse(r->body, nullptr, false);
      if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) continue;
      for (const auto& item : list["items"]) {
        const json& m = item.contains("metadata") ? item["metadata"] : json::object();
        const std::string ns = str(m, "namespace");
        const std::string gw = m.contains("labels") ? str(m["labels"], kGatewayNameLabel) : "";
        if (ns.empty() || gw.empty() || wanted.count(ns + "/" + str(m, "name"))) continue;
        std::string path = std::string(coll);
        const auto slash = path.rfind('/');
        path = path.substr(0, slash) + "/namespaces/" + ns + path.substr(slash) + "/" + str(m, "name");
        auto d = call("DELETE", path);
        if (d && (d->status == 200 || d->status == 202 || d->status == 404)) {
          dep_log()->info("deleted {} (Gateway {}/{} is gone)", path, ns, gw);
          applied.erase(path);
          last_result.erase(path);
        } else {
          dep_log()->warn("delete {}: {}", path, message_of(d));
        }
      }
    }
  }
}

std::set<std::string> WaypointDeployer::Impl::missing_secrets(const std::vector<json>& gateways) {
  std::set<std::string> out;
  for (const auto& g : gateways) {
    const std::string ns = str(g["metadata"], "namespace");
    const json& spec = g["spec"];
    if (str(spec, "gatewayClassName") != "istio" || !spec.contains("listeners") || !spec["listeners"].is_array())
      continue;
    for (const auto& l : spec["listeners"]) {
      if (!l.is_object() || !l.contains("tls") || !l["tls"].is_object()) continue;
      const json& refs = l["tls"].contains("certificateRefs") ? l["tls"]["certificateRefs"] : json();
      if (!refs.is_array()) continue;
      for (const auto& r : refs) {
        const std::string rns = str(r, "namespace").empty() ? ns : str(r, "namespace");
        const std::string name = str(r, "name");
        if (rns != ns || name.empty() || out.count(rns + "/" + name)) continue;  // cross-namespace: refused anyway
        auto got = call("GET", "/api/v1/namespaces/" + rns + "/secrets/" + name);
        if (got && got->status == 404)
          out.insert(rns + "/" + name);
        else if (!got || got->status != 200)
          dep_log()->warn("Secret {}/{} (certificateRef): {}", rns, name, message_of(got));
      }
    }
  }
  return out;
}

void WaypointDeployer::Impl::write_route_status(const GatewayAttachments& att) {
  for (const auto& [plural, kind] : {std::pair{"httproutes", "HTTPRoute"}, std::pair{"grpcroutes", "GRPCRoute"}}) {
    for (const auto& [key, obj] : source->objects_of(plural)) {
      json route = json::parse(obj.json, nullptr, false);
      if (!route.is_object() || !route.contains("metadata")) continue;
      const std::string ns = str(route["metadata"], "namespace");
      const std::string name = str(route["metadata"], "name");
      // Every route the compile read has an entry (maybe without parents); one without was left
      // out as invalid (the error is logged there) and attaches nowhere any more. Either way the
      // patch keeps exactly the parents the compile decided on, so entries we wrote for parentRefs
      // that were removed or no longer attach go (other controllers' entries stay).
      static const RouteAttachment kNone{};
      auto it = att.routes.find(std::string(kind) + "/" + ns + "/" + name);
      const RouteAttachment& ra = it == att.routes.end() ? kNone : it->second;
      auto patch = route_status_patch(route, ra, now_rfc3339(false));
      if (!patch) continue;
      auto r =
          call("PATCH", "/apis/gateway.networking.k8s.io/v1/namespaces/" + ns + "/" + plural + "/" + name + "/status",
               patch->dump(), "application/merge-patch+json");
      if (!r || r->status != 200)
        dep_log()->warn("status of {} {}/{}: {}", kind, ns, name, message_of(r));
      else
        dep_log()->info("{} {}/{}: status of {} parent(s) written", kind, ns, name, ra.parents.size());
    }
  }
}

void WaypointDeployer::Impl::loop() {
  for (;;) {
    bool work = false;
    {
      std::unique_lock<std::mutex> g(mu);
      cv.wait_for(g, std::chrono::seconds(2), [&] { return stopping || dirty; });
      if (stopping) return;
      work = dirty;
      dirty = false;
    }
    const auto now = std::chrono::steady_clock::now();
    if (opt.leader_elect && now - last_renew >= std::chrono::seconds(2)) {
      const bool was = leader;
      leader = renew_lease();
      last_renew = now;
      if (leader != was) {
        dep_log()->info("{} the lease {}/{} as {}", leader ? "acquired" : "lost", opt.lease_namespace, opt.lease_name,
                        opt.identity);
        work = work || leader;
      }
    } else if (!opt.leader_elect) {
      leader = true;
    }
    if (now - last_full >= std::chrono::seconds(30)) {
      work = true;
      applied.clear();  // re-assert everything now and then (objects changed behind our back)
      last_result.clear();
    }
    if (work && leader) {
      last_full = now;
      reconcile();
    }
  }
}

std::unique_ptr<WaypointDeployer> WaypointDeployer::start(std::shared_ptr<KubeSource> source,
                                                          WaypointDeployerOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->source = std::move(source);
  impl->opt = std::move(options);
  Impl* self = impl.get();
  self->source->set_listener([self] {
    {
      std::lock_guard<std::mutex> g(self->mu);
      self->dirty = true;
    }
    self->cv.notify_all();
  });
  self->thread = std::thread([self] { self->loop(); });
  return std::unique_ptr<WaypointDeployer>(new WaypointDeployer(std::move(impl)));
}

void WaypointDeployer::set_attachments(std::shared_ptr<const GatewayAttachments> attachments) {
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    if (impl_->attachments && attachments && *impl_->attachments == *attachments) return;
    impl_->attachments = std::move(attachments);
    impl_->dirty = true;
  }
  impl_->cv.notify_all();
}

WaypointDeployer::WaypointDeployer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WaypointDeployer::~WaypointDeployer() {
  stop();
}

void WaypointDeployer::stop() {
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->cancel.cancel();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->source->set_listener(nullptr);
}

}  // namespace controlplane::kube
