#include "controlplane/waypoint_targets.h"

namespace controlplane {
namespace {
constexpr std::string_view kGatewayGroup = "gateway.networking.k8s.io";
}

std::vector<WaypointTarget> resolve_waypoint_targets(const std::vector<PolicyTargetRef>& refs,
                                                     const std::string& policy_ns, const SourceRef& src,
                                                     const ResourceSet& in, const CompileOptions& opt,
                                                     Diagnostics& diags) {
  std::vector<WaypointTarget> out;
  auto diag = [&](Severity s, const std::string& field, std::string msg) {
    diags.push_back({s, src.file, src.object, field, std::move(msg)});
  };
  for (const auto& t : refs) {
    const std::string ns = t.ns.empty() ? policy_ns : t.ns;
    if (ns != policy_ns) {
      diag(Severity::Error, t.path + ".namespace", "cross-namespace targetRefs are not allowed; ignored");
      continue;
    }
    if (t.kind == "Gateway" && (t.group.empty() || t.group == kGatewayGroup)) {
      bool found = false;
      for (const auto& g : in.gateways)
        found |= g.meta.ns == ns && g.meta.name == t.name && g.class_name == kWaypointGatewayClass;
      if (!found)
        diag(Severity::Warning, t.path,
             "no waypoint Gateway " + ns + "/" + t.name + "; the policy applies nowhere yet");
      out.push_back({WaypointTarget::Kind::Gateway, ns, t.name});
    } else if (t.kind == "Service" && (t.group.empty() || t.group == "core")) {
      bool found = false;
      for (const auto& s : in.services) found |= s.meta.ns == ns && s.meta.name == t.name;
      if (!found) diag(Severity::Warning, t.path, "no Service " + ns + "/" + t.name);
      out.push_back({WaypointTarget::Kind::Service, ns, t.name});
    } else if (t.kind == "GatewayClass" && (t.group.empty() || t.group == kGatewayGroup)) {
      if (policy_ns != opt.root_namespace || t.name != kWaypointGatewayClass) {
        diag(Severity::Error, t.path,
             "a GatewayClass target must be istio-waypoint, from the root namespace " + opt.root_namespace +
                 "; ignored");
        continue;
      }
      out.push_back({WaypointTarget::Kind::AllWaypoints, "", ""});
    } else {
      diag(Severity::Warning, t.path + ".kind",
           "target kind " + (t.group.empty() ? "" : t.group + "/") + t.kind +
               " is not supported at waypoints (Gateway, Service, GatewayClass); ignored");
    }
  }
  return out;
}

bool targets_apply(const std::vector<WaypointTarget>& targets, const std::string& gateway_ns,
                   const std::string& gateway_name, const ServiceObject& svc) {
  for (const auto& t : targets) {
    switch (t.kind) {
      case WaypointTarget::Kind::Gateway:
        if (t.ns == gateway_ns && t.name == gateway_name) return true;
        break;
      case WaypointTarget::Kind::Service:
        if (t.ns == svc.meta.ns && t.name == svc.meta.name) return true;
        break;
      case WaypointTarget::Kind::AllWaypoints:
        return true;
    }
  }
  return false;
}

}  // namespace controlplane
