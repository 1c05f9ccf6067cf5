#include "controlplane/waypoint_authn.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "controlplane/waypoint_targets.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb.h"

namespace controlplane {
namespace {

namespace jwt = envoy::extensions::filters::http::jwt_authn::v3;

struct Compiled {
  std::vector<WaypointTarget> targets;
  std::vector<std::pair<std::string, jwt::JwtProvider>> providers;
};

// Empty = a usable JWKS document (an object with a non-empty "keys" array); else why not.
std::string check_jwks(const std::string& text) {
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return "not a JSON object";
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array() || keys->empty()) return "no 'keys' array with at least one key";
  return "";
}

class WaypointAuthn final : public WaypointVhostPolicy {
 public:
  void attach(envoy::config::route::v3::VirtualHost& vh, const std::string& gateway_ns, const std::string& gateway_name,
              const ServiceObject& svc) const override;

  std::vector<Compiled> objects;
};

}  // namespace

std::unique_ptr<WaypointVhostPolicy> compile_waypoint_authn(const ResourceSet& in, const CompileOptions& opt,
                                                            Diagnostics& diags) {
  auto out = std::make_unique<WaypointAuthn>();
  for (const auto& ra : in.request_authns) {
    auto diag = [&](Severity s, const std::string& field, std::string msg) {
      diags.push_back({s, ra.src.file, ra.src.object, field, std::move(msg)});
    };
    if (ra.target_refs.empty()) {
      diag(Severity::Warning, ra.has_selector ? "spec.selector" : "spec",
           "only RequestAuthentications with targetRefs (waypoints) are enforced here; this one applies nowhere");
      continue;
    }
    Compiled c;
    c.targets = resolve_waypoint_targets(ra.target_refs, ra.meta.ns, ra.src, in, opt, diags);
    for (size_t i = 0; i < ra.jwt_rules.size(); ++i) {
      const JwtRuleSpec& r = ra.jwt_rules[i];
      jwt::JwtProvider p;
      p.set_issuer(r.issuer);
      for (const auto& a : r.audiences) p.add_audiences(a);
      std::string jwks = r.jwks;
      if (jwks.empty() && !r.jwks_uri.empty()) {
        if (r.jwks_uri.rfind("file://", 0) != 0) {
          diag(Severity::Error, r.path + ".jwksUri",
               "only file:// URIs are read (the control plane fetches nothing over the network); use jwks inline; "
               "rule left out");
          continue;
        }
        std::ifstream f(r.jwks_uri.substr(7));
        std::stringstream ss;
        ss << f.rdbuf();
        if (!f) {
          diag(Severity::Error, r.path + ".jwksUri", "cannot read " + r.jwks_uri.substr(7) + "; rule left out");
          continue;
        }
        jwks = ss.str();
      }
      if (jwks.empty()) {
        diag(Severity::Error, r.path, "jwks or jwksUri is required; rule left out");
        continue;
      }
      if (auto why = check_jwks(jwks); !why.empty()) {
        diag(Severity::Error, r.path + (r.jwks.empty() ? ".jwksUri" : ".jwks"),
             "invalid JWKS: " + why + "; rule left out");
        continue;
      }
      p.mutable_local_jwks()->set_inline_string(jwks);
      for (const auto& [name, prefix] : r.from_headers) {
        auto* h = p.add_from_headers();
        h->set_name(name);
        h->set_value_prefix(prefix);
      }
      for (const auto& q : r.from_params) p.add_from_params(q);
      p.set_forward_payload_header(r.output_payload_to_header);
      p.set_forward(r.forward_original_token);
      c.providers.emplace_back(ra.meta.ns + "/" + ra.meta.name + "/" + std::to_string(i), std::move(p));
    }
    if (!c.targets.empty() && !c.providers.empty()) out->objects.push_back(std::move(c));
  }
  return out;
}

void WaypointAuthn::attach(envoy::config::route::v3::VirtualHost& vh, const std::string& gateway_ns,
                           const std::string& gateway_name, const ServiceObject& svc) const {
  jwt::JwtAuthentication cfg;
  for (const auto& c : objects) {
    const bool applies = targets_apply(c.targets, gateway_ns, gateway_name, svc);
    if (!applies) continue;
    for (const auto& [name, p] : c.providers) (*cfg.mutable_providers())[name] = p;
  }
  if (cfg.providers().empty()) return;
  (*vh.mutable_typed_per_filter_config())["envoy.filters.http.jwt_authn"].PackFrom(cfg);
}

}  // namespace controlplane
