#include "controlplane/kube/route_status.h"

#include "controlplane/kube/json_fields.h"

namespace controlplane::kube {
namespace {

using nlohmann::json;

std::string str(const json& j, const char* key) {
  return json_str(j, key);
}

const json& child(const json& j, const char* key) {
  static const json none;
  if (!j.is_object()) return none;
  auto it = j.find(key);
  return it == j.end() ? none : *it;
}

int64_t generation_of(const json& obj) {
  const json& g = child(child(obj, "metadata"), "generation");
  return g.is_number_integer() ? g.get<int64_t>() : 1;
}

// A condition; lastTransitionTime carried over from `previous` (the same type in the current
// status) when its status has not changed.
json condition(const json& previous, const char* type, bool ok, const std::string& reason, const std::string& message,
               int64_t generation, const std::string& now) {
  const std::string status = ok ? "True" : "False";
  std::string since = now;
  if (previous.is_array()) {
    for (const auto& c : previous) {
      if (str(c, "type") == type && str(c, "status") == status && !str(c, "lastTransitionTime").empty())
        since = str(c, "lastTransitionTime");
    }
  }
  return json{{"type", type},
              {"status", status},
              {"reason", reason},
              {"message", message},
              {"lastTransitionTime", since},
              {"observedGeneration", generation}};
}

}  // namespace

json gateway_listener_status(const json& gateway, const std::map<std::string, uint32_t>* attached,
                             const std::set<std::string>& missing_secrets, const std::string& now) {
  const std::string ns = str(child(gateway, "metadata"), "namespace");
  const bool waypoint = str(child(gateway, "spec"), "gatewayClassName") == "istio-waypoint";
  const int64_t gen = generation_of(gateway);
  const json& current = child(child(gateway, "status"), "listeners");
  json out = json::array();
  const json& listeners = child(child(gateway, "spec"), "listeners");
  if (!listeners.is_array()) return out;
  for (const auto& l : listeners) {
    const std::string name = str(l, "name");
    const std::string protocol = str(l, "protocol");
    json previous;
    if (current.is_array()) {
      for (const auto& c : current)
        if (str(c, "name") == name) previous = child(c, "conditions");
    }
    uint32_t count = 0;
    if (attached) {
      auto it = attached->find(waypoint ? "*" : name);
      if (it != attached->end()) count = it->second;
    }
    json kinds = json::array();
    if (waypoint || protocol == "HTTP" || protocol == "HTTPS") {
      // allowedRoutes.kinds narrows the default (both kinds) at an ingress gateway.
      const json& allowed = child(child(l, "allowedRoutes"), "kinds");
      for (const char* k : {"HTTPRoute", "GRPCRoute"}) {
        bool ok = waypoint || !allowed.is_array() || allowed.empty();
        if (!ok) {
          for (const auto& a : allowed) ok |= str(a, "kind") == k;
        }
        if (ok) kinds.push_back({{"group", "gateway.networking.k8s.io"}, {"kind", k}});
      }
    }
    // certificateRefs: core Secrets of the Gateway's namespace only (no ReferenceGrant).
    std::string bad_ref;
    const json& refs = child(child(l, "tls"), "certificateRefs");
    if (refs.is_array()) {
      for (const auto& r : refs) {
        const std::string kind = str(r, "kind").empty() ? "Secret" : str(r, "kind");
        const std::string group = str(r, "group");
        const std::string rns = str(r, "namespace").empty() ? ns : str(r, "namespace");
        const std::string rname = str(r, "name");
        if (kind != "Secret" || !(group.empty() || group == "core"))
          bad_ref = "invalid certificate reference " + kind + "/" + rname + ": only core Secrets are supported";
        else if (rns != ns)
          bad_ref = "invalid certificate reference " + rns + "/" + rname +
                    ": a Secret in another namespace is not allowed (no ReferenceGrant)";
        else if (missing_secrets.count(rns + "/" + rname))
          bad_ref = "invalid certificate reference " + rns + "/" + rname + ": secret not found";
        if (!bad_ref.empty()) break;
      }
    }
    const bool resolved = bad_ref.empty();
    json conditions =
        json::array({condition(previous, "Accepted", true, "Accepted", "No errors found", gen, now),
                     condition(previous, "Conflicted", false, "NoConflicts", "No errors found", gen, now),
                     condition(previous, "Programmed", resolved, resolved ? "Programmed" : "Invalid",
                               resolved ? "No errors found" : "Bad TLS configuration", gen, now),
                     condition(previous, "ResolvedRefs", resolved, resolved ? "ResolvedRefs" : "InvalidCertificateRef",
                               resolved ? "No errors found" : bad_ref, gen, now)});
    out.push_back(
        {{"name", name}, {"supportedKinds", kinds}, {"attachedRoutes", count}, {"conditions", std::move(conditions)}});
  }
  return out;
}

std::optional<json> route_status_patch(const json& route, const RouteAttachment& att, const std::string& now) {
  const int64_t gen = generation_of(route);
  const json& refs = child(child(route, "spec"), "parentRefs");
  const json& current = child(child(route, "status"), "parents");
  json parents = json::array();
  if (current.is_array()) {
    for (const auto& p : current)  // other controllers' parents stay as they are
      if (str(p, "controllerName") != kGatewayController) parents.push_back(p);
  }
  for (const auto& pa : att.parents) {
    if (!refs.is_array() || pa.index >= refs.size()) continue;
    const json& ref = refs[pa.index];
    json previous;
    if (current.is_array()) {
      for (const auto& p : current)
        if (str(p, "controllerName") == kGatewayController && child(p, "parentRef") == ref)
          previous = child(p, "conditions");
    }
    parents.push_back(
        {{"parentRef", ref},
         {"controllerName", kGatewayController},
         {"conditions", json::array({condition(previous, "Accepted", pa.accepted, pa.reason, pa.message, gen, now),
                                     condition(previous, "ResolvedRefs", att.backends_resolved,
                                               att.backends_resolved ? "ResolvedRefs" : "BackendNotFound",
                                               att.backends_resolved ? "All references resolved" : att.backend_message,
                                               gen, now)})}});
  }
  const json before = current.is_array() ? current : json::array();
  if (parents == before) return std::nullopt;
  return json{{"status", {{"parents", parents}}}};
}

}  // namespace controlplane::kube
