#include "controlplane/waypoint_authn.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "controlplane/jwks_resolver.h"
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
      const bool remote = r.jwks_uri.rfind("http://", 0) == 0 || r.jwks_uri.rfind("https://", 0) == 0;
      if (jwks.empty() && !r.jwks_uri.empty() && !remote) {
        if (r.jwks_uri.rfind("file://", 0) != 0) {
          diag(Severity::Error, r.path + ".jwksUri", "only http://, https:// and file:// URIs are read; rule left out");
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
      } else if (jwks.empty() && (remote || !r.issuer.empty())) {
        // Fetched by the resolver in the background (jwks_resolver.h); until keys arrive the
        // rule carries a key nobody can sign with, so its tokens fail (401) rather than pass.
        const std::string field = remote ? r.path + ".jwksUri" : r.path + ".issuer";
        if (!opt.jwks) {
          diag(Severity::Error, field,
               remote ? "http(s) jwksUri is fetched only by `controlplane serve`; rule left out"
                      : "jwks or jwksUri is required (OpenID discovery from the issuer runs only in `controlplane "
                        "serve`); rule left out");
          continue;
        }
        const JwksResolver::Keys keys = remote ? opt.jwks->keys_for_uri(r.jwks_uri) : opt.jwks->keys_for_issuer(r.issuer);
        if (keys.jwks.empty()) {
          diag(Severity::Warning, field,
               std::string(remote ? "JWKS from " + r.jwks_uri : "JWKS by OpenID discovery from " + r.issuer) +
                   " not fetched yet" + (keys.error.empty() ? "" : " (" + keys.error + ")") +
                   ": every token of this rule is rejected until it is");
          jwks = kFailedJwks;
        } else {
          if (!keys.error.empty())
            diag(Severity::Warning, field, "refreshing the JWKS failed (" + keys.error + "); the last keys fetched stay");
          jwks = keys.jwks;
        }
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
