#include "controlplane/waypoint_authz.h"

#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "common/model/model.h"
#include "controlplane/waypoint_targets.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/rbac/v3/rbac.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/ext_authz/v3/ext_authz.pb.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb.h"

namespace controlplane {
namespace {

namespace rbac = envoy::config::rbac::v3;
namespace matcher = envoy::type::matcher::v3;

constexpr std::string_view kAuthnFilter = "istio_authn";

enum class Action : uint8_t { Allow, Deny, Audit, Custom };

struct Compiled {
  Action action = Action::Allow;
  bool dry_run = false;  // annotation istio.io/dry-run: shadow rules, never enforced
  std::string provider;  // Custom: a resolved ext_authz provider (Impl::providers)
  std::string key;       // "ns/name", for the one-provider check's diagnostics
  SourceRef src;
  std::vector<WaypointTarget> targets;
  std::vector<std::pair<std::string, rbac::Policy>> rules;
  std::vector<std::pair<std::string, rbac::Policy>> tcp_rules;  // the same rules on a TCP chain
};

std::string regex_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// Istio's glob: "*" = present (non-empty), "x*" prefix, "*x" suffix, else exact. `prefix` is
// prepended to the written value (e.g. "spiffe://" for principals).
void glob(matcher::StringMatcher* m, std::string_view v, std::string_view prefix = "", bool ignore_case = false) {
  if (ignore_case) m->set_ignore_case(true);
  if (v == "*") {
    m->mutable_safe_regex()->set_regex(prefix.empty() ? ".+" : regex_escape(prefix) + ".+");
  } else if (v.size() > 1 && v.front() == '*') {
    m->set_suffix(std::string(v.substr(1)));
  } else if (v.size() > 1 && v.back() == '*') {
    m->set_prefix(std::string(prefix) + std::string(v.substr(0, v.size() - 1)));
  } else {
    m->set_exact(std::string(prefix) + std::string(v));
  }
}

// Istio path templates: `{*}` one segment, `{**}` any remainder; only whole segments.
std::optional<std::string> path_template_regex(std::string_view v, std::string& why) {
  std::string re;
  size_t i = 0;
  while (i < v.size()) {
    if (v.substr(i, 4) == "{**}") {
      if (i + 4 != v.size()) {
        why = "'{**}' must be the last segment";
        return std::nullopt;
      }
      re += ".+";
      i += 4;
    } else if (v.substr(i, 3) == "{*}") {
      re += "[^/]+";
      i += 3;
    } else if (v[i] == '{' || v[i] == '}') {
      why = "only '{*}' and '{**}' are valid path template operators";
      return std::nullopt;
    } else {
      re += regex_escape(v.substr(i, 1));
      ++i;
    }
  }
  // Operators must fill whole segments: "/a{*}" is not a template.
  for (size_t p = v.find('{'); p != std::string_view::npos; p = v.find('{', p + 1)) {
    const size_t close = v.find('}', p);
    if (p == 0 || v[p - 1] != '/' || (close + 1 < v.size() && v[close + 1] != '/')) {
      why = "a template operator must be a whole path segment";
      return std::nullopt;
    }
  }
  return re;
}

std::optional<uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

bool cidr(envoy::config::core::v3::CidrRange* out, std::string_view v) {
  auto c = ztunnel::Cidr::parse(v);
  if (!c) return false;
  out->set_address_prefix(c->addr.to_string());
  out->mutable_prefix_len()->set_value(c->prefix_len);
  return true;
}

// One field's values are alternatives: `or`, or `not(or)` for a notX field.
rbac::Permission or_perm(std::vector<rbac::Permission> v, bool negate) {
  rbac::Permission p;
  if (v.size() == 1) {
    p = std::move(v[0]);
  } else {
    for (auto& x : v) *p.mutable_or_rules()->add_rules() = std::move(x);
  }
  if (!negate) return p;
  rbac::Permission n;
  *n.mutable_not_rule() = std::move(p);
  return n;
}

rbac::Principal or_id(std::vector<rbac::Principal> v, bool negate) {
  rbac::Principal p;
  if (v.size() == 1) {
    p = std::move(v[0]);
  } else {
    for (auto& x : v) *p.mutable_or_ids()->add_ids() = std::move(x);
  }
  if (!negate) return p;
  rbac::Principal n;
  *n.mutable_not_id() = std::move(p);
  return n;
}

rbac::Permission and_perm(std::vector<rbac::Permission> v) {
  rbac::Permission p;
  if (v.empty()) {
    p.set_any(true);
  } else if (v.size() == 1) {
    p = std::move(v[0]);
  } else {
    for (auto& x : v) *p.mutable_and_rules()->add_rules() = std::move(x);
  }
  return p;
}

rbac::Principal and_id(std::vector<rbac::Principal> v) {
  rbac::Principal p;
  if (v.empty()) {
    p.set_any(true);
  } else if (v.size() == 1) {
    p = std::move(v[0]);
  } else {
    for (auto& x : v) *p.mutable_and_ids()->add_ids() = std::move(x);
  }
  return p;
}

class RuleCompiler {
 public:
  // `tcp`: compile for a TCP filter chain, where HTTP-only attributes do not exist (istiod's
  // forTCP): an ALLOW rule using one is omitted (it can never match, so it allows nothing); in
  // DENY and AUDIT rules the value is ignored (the rule widens to what remains).
  RuleCompiler(const AuthorizationPolicyObject& pol, Action action, const CompileOptions& opt, std::string path,
               Diagnostics& diags, bool tcp = false)
      : pol_(pol), action_(action), opt_(opt), path_(std::move(path)), diags_(diags), tcp_(tcp) {}

  // nullopt: the rule is omitted (an ALLOW/AUDIT rule with an unusable value).
  std::optional<rbac::Policy> compile(const PolicyRule& rule) {
    std::vector<rbac::Permission> perms;
    std::vector<rbac::Principal> ids;

    if (!rule.to.empty()) {
      std::vector<rbac::Permission> ops;
      for (size_t j = 0; j < rule.to.size(); ++j) {
        const std::string p = path_ + ".to[" + std::to_string(j) + "].operation";
        std::vector<rbac::Permission> fields;
        for (const auto& [key, values] : rule.to[j].fields) operation_field(key, values, p + "." + key, fields);
        ops.push_back(and_perm(std::move(fields)));
      }
      perms.push_back(or_perm(std::move(ops), false));
    }
    if (!rule.from.empty()) {
      std::vector<rbac::Principal> srcs;
      for (size_t j = 0; j < rule.from.size(); ++j) {
        const std::string p = path_ + ".from[" + std::to_string(j) + "].source";
        std::vector<rbac::Principal> fields;
        for (const auto& [key, values] : rule.from[j].fields) source_field(key, values, p + "." + key, fields);
        srcs.push_back(and_id(std::move(fields)));
      }
      ids.push_back(or_id(std::move(srcs), false));
    }
    for (size_t j = 0; j < rule.when.size(); ++j) {
      const PolicyCondition& c = rule.when[j];
      const std::string p = path_ + ".when[" + std::to_string(j) + "]";
      if (!c.values.empty()) condition(c.key, c.values, p + ".values", false, perms, ids);
      if (!c.not_values.empty()) condition(c.key, c.not_values, p + ".notValues", true, perms, ids);
    }
    if ((bad_ && action_ != Action::Deny && action_ != Action::Custom) || tcp_skip_) return std::nullopt;
    rbac::Policy out;
    *out.add_permissions() = and_perm(std::move(perms));
    *out.add_principals() = and_id(std::move(ids));
    return out;
  }

 private:
  void invalid(const std::string& field, const std::string& what) {
    bad_ = true;
    diags_.push_back({Severity::Error, pol_.src.file, pol_.src.object, field,
                      what + (action_ == Action::Deny ? "; the constraint is dropped from this DENY rule (denies more)"
                              : action_ == Action::Custom ? "; the constraint is dropped from this CUSTOM rule (more "
                                                            "requests are sent to the provider)"
                                                          : "; this rule is omitted (matches nothing)")});
  }

  // An HTTP-only attribute on a TCP chain: true = leave this value out (see the constructor).
  bool tcp_drops_http() {
    if (!tcp_) return false;
    if (action_ == Action::Allow) tcp_skip_ = true;
    return true;
  }

  static rbac::Permission header_perm(const std::string& name, std::string_view v, bool ignore_case = false) {
    rbac::Permission p;
    p.mutable_header()->set_name(name);
    glob(p.mutable_header()->mutable_string_match(), v, "", ignore_case);
    return p;
  }

  rbac::Principal principal_name(std::string_view v) const {
    rbac::Principal p;
    glob(p.mutable_authenticated()->mutable_principal_name(), v, "spiffe://");
    return p;
  }

  static rbac::Principal namespace_id(std::string_view v) {
    std::string seg;
    if (v == "*") {
      seg = "[^/]+";
    } else if (v.size() > 1 && v.front() == '*') {
      seg = "[^/]*" + regex_escape(v.substr(1));
    } else if (v.size() > 1 && v.back() == '*') {
      seg = regex_escape(v.substr(0, v.size() - 1)) + "[^/]*";
    } else {
      seg = regex_escape(v);
    }
    rbac::Principal p;
    p.mutable_authenticated()->mutable_principal_name()->mutable_safe_regex()->set_regex("spiffe://[^/]+/ns/" + seg +
                                                                                         "/.*");
    return p;
  }

  rbac::Principal authn_meta(std::vector<std::string> path, std::string_view v, bool list) const {
    rbac::Principal p;
    auto* m = p.mutable_metadata();
    m->set_filter(std::string(kAuthnFilter));
    for (auto& k : path) m->add_path()->set_key(std::move(k));
    auto* sm = list ? m->mutable_value()->mutable_list_match()->mutable_one_of()->mutable_string_match()
                    : m->mutable_value()->mutable_string_match();
    glob(sm, v);
    return p;
  }

  void operation_field(const std::string& key, const std::vector<std::string>& values, const std::string& fp,
                       std::vector<rbac::Permission>& out) {
    const bool neg = key.starts_with("not");
    std::vector<rbac::Permission> alts;
    for (size_t k = 0; k < values.size(); ++k) {
      const std::string& v = values[k];
      const std::string vp = fp + "[" + std::to_string(k) + "]";
      const bool http_only = key == "hosts" || key == "notHosts" || key == "methods" || key == "notMethods" ||
                             key == "paths" || key == "notPaths";
      if (http_only && tcp_drops_http()) continue;
      if (key == "hosts" || key == "notHosts") {
        alts.push_back(header_perm(":authority", v, true));
      } else if (key == "methods" || key == "notMethods") {
        alts.push_back(header_perm(":method", v));
      } else if (key == "paths" || key == "notPaths") {
        rbac::Permission p;
        auto* sm = p.mutable_url_path()->mutable_path();
        if (v.find('{') != std::string::npos || v.find('}') != std::string::npos) {
          std::string why;
          auto re = path_template_regex(v, why);
          if (!re) return invalid(vp, "invalid path template '" + v + "': " + why);
          sm->mutable_safe_regex()->set_regex(*re);
        } else {
          glob(sm, v);
        }
        alts.push_back(std::move(p));
      } else if (key == "ports" || key == "notPorts") {
        auto port = parse_port(v);
        if (!port) return invalid(vp, "invalid port '" + v + "'");
        rbac::Permission p;
        p.set_destination_port(*port);
        alts.push_back(std::move(p));
      }
    }
    if (!alts.empty()) out.push_back(or_perm(std::move(alts), neg));
  }

  void source_field(const std::string& key, const std::vector<std::string>& values, const std::string& fp,
                    std::vector<rbac::Principal>& out) {
    const bool neg = key.starts_with("not");
    std::vector<rbac::Principal> alts;
    for (size_t k = 0; k < values.size(); ++k) {
      const std::string& v = values[k];
      const std::string vp = fp + "[" + std::to_string(k) + "]";
      if (key == "principals" || key == "notPrincipals") {
        if (v.rfind("spiffe://", 0) == 0)
          diags_.push_back({Severity::Warning, pol_.src.file, pol_.src.object, vp,
                            "principal '" + v +
                                "' includes 'spiffe://'; principals are written without it, so this "
                                "value never matches"});
        alts.push_back(principal_name(v));
      } else if (key == "namespaces" || key == "notNamespaces") {
        alts.push_back(namespace_id(v));
      } else if (key == "serviceAccounts" || key == "notServiceAccounts") {
        const auto slash = v.find('/');
        std::string ns = slash == std::string::npos ? pol_.meta.ns : v.substr(0, slash);
        std::string sa = slash == std::string::npos ? v : v.substr(slash + 1);
        if (ns.empty() || sa.empty() || sa.find('/') != std::string::npos)
          return invalid(vp, "invalid service account '" + v + "' (expected 'name' or 'namespace/name')");
        rbac::Principal p;
        p.mutable_authenticated()->mutable_principal_name()->set_exact("spiffe://" + opt_.trust_domain + "/ns/" + ns +
                                                                       "/sa/" + sa);
        alts.push_back(std::move(p));
      } else if (key == "ipBlocks" || key == "notIpBlocks" || key == "remoteIpBlocks" || key == "notRemoteIpBlocks") {
        rbac::Principal p;
        const bool remote = key.find("emote") != std::string::npos;
        if (!cidr(remote ? p.mutable_remote_ip() : p.mutable_direct_remote_ip(), v))
          return invalid(vp, "invalid IP or CIDR '" + v + "'");
        alts.push_back(std::move(p));
      } else if (key == "requestPrincipals" || key == "notRequestPrincipals") {
        if (tcp_drops_http()) continue;
        alts.push_back(authn_meta({"request.auth.principal"}, v, false));
      }
    }
    if (!alts.empty()) out.push_back(or_id(std::move(alts), neg));
  }

  // "request.auth.claims[a][b]" -> {"a", "b"}; nullopt when malformed.
  static std::optional<std::vector<std::string>> claim_path(std::string_view rest) {
    std::vector<std::string> out;
    while (!rest.empty()) {
      if (rest.front() != '[') return std::nullopt;
      const auto close = rest.find(']');
      if (close == std::string_view::npos || close == 1) return std::nullopt;
      out.emplace_back(rest.substr(1, close - 1));
      rest.remove_prefix(close + 1);
    }
    if (out.empty()) return std::nullopt;
    return out;
  }

  void condition(const std::string& key, const std::vector<std::string>& values, const std::string& fp, bool neg,
                 std::vector<rbac::Permission>& perms, std::vector<rbac::Principal>& ids) {
    std::vector<rbac::Permission> palts;
    std::vector<rbac::Principal> ialts;
    for (size_t k = 0; k < values.size(); ++k) {
      const std::string& v = values[k];
      const std::string vp = fp + "[" + std::to_string(k) + "]";
      if ((key.starts_with("request.headers[") || key.starts_with("request.auth.")) && tcp_drops_http()) continue;
      if (key.starts_with("request.headers[") && key.ends_with("]") && key.size() > 17) {
        std::string h = key.substr(16, key.size() - 17);
        for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        rbac::Permission p;
        p.mutable_header()->set_name(h);
        glob(p.mutable_header()->mutable_string_match(), v);
        palts.push_back(std::move(p));
      } else if (key == "source.ip" || key == "remote.ip") {
        rbac::Principal p;
        if (!cidr(key == "remote.ip" ? p.mutable_remote_ip() : p.mutable_direct_remote_ip(), v))
          return invalid(vp, "invalid IP or CIDR '" + v + "'");
        ialts.push_back(std::move(p));
      } else if (key == "source.namespace") {
        ialts.push_back(namespace_id(v));
      } else if (key == "source.principal") {
        ialts.push_back(principal_name(v));
      } else if (key == "request.auth.principal") {
        ialts.push_back(authn_meta({"request.auth.principal"}, v, false));
      } else if (key == "request.auth.audiences") {
        ialts.push_back(authn_meta({"request.auth.audiences"}, v, true));
      } else if (key == "request.auth.presenter") {
        ialts.push_back(authn_meta({"request.auth.presenter"}, v, false));
      } else if (key.starts_with("request.auth.claims")) {
        auto path = claim_path(std::string_view(key).substr(19));
        if (!path) return invalid(fp.substr(0, fp.rfind('.')) + ".key", "malformed claim key '" + key + "'");
        path->insert(path->begin(), "request.auth.claims");
        ialts.push_back(authn_meta(std::move(*path), v, true));
      } else if (key == "destination.ip") {
        rbac::Permission p;
        if (!cidr(p.mutable_destination_ip(), v)) return invalid(vp, "invalid IP or CIDR '" + v + "'");
        palts.push_back(std::move(p));
      } else if (key == "destination.port") {
        auto port = parse_port(v);
        if (!port) return invalid(vp, "invalid port '" + v + "'");
        rbac::Permission p;
        p.set_destination_port(*port);
        palts.push_back(std::move(p));
      } else {
        return invalid(fp.substr(0, fp.rfind('.')) + ".key",
                       "condition key '" + key + "' is not supported at the waypoint");
      }
    }
    if (!palts.empty()) perms.push_back(or_perm(std::move(palts), neg));
    if (!ialts.empty()) ids.push_back(or_id(std::move(ialts), neg));
  }

  const AuthorizationPolicyObject& pol_;
  Action action_;
  const CompileOptions& opt_;
  std::string path_;
  Diagnostics& diags_;
  bool tcp_ = false;
  bool tcp_skip_ = false;
  bool bad_ = false;
};

}  // namespace

// An ext_authz provider of the mesh config with its Service resolved: what a CUSTOM policy
// naming it compiles to.
struct ResolvedProvider {
  const ExtensionProvider* provider = nullptr;
  const ServiceObject* service = nullptr;
  const ServicePort* port = nullptr;
  std::string host;     // the Service's FQDN
  std::string cluster;  // outbound|<port>||<host>, as istiod names it
};

struct WaypointAuthz::Impl {
  std::vector<Compiled> policies;
  std::map<std::string, ResolvedProvider> providers;  // by provider name
  std::optional<MeshConfigObject> mesh;
  // attach() reports the one-provider conflicts it meets, once per policy and provider.
  Diagnostics* diags = nullptr;
  mutable std::set<std::string> reported;

  // The provider a CUSTOM policy names, or why it cannot be used.
  const ResolvedProvider* resolve(const std::string& name, const ResourceSet& in, const CompileOptions& opt,
                                  std::string& why) {
    if (name.empty()) {
      why = "CUSTOM needs spec.provider.name (an ext_authz extension provider of the mesh config)";
      return nullptr;
    }
    if (auto it = providers.find(name); it != providers.end()) return &it->second;
    const ExtensionProvider* p = mesh ? mesh->provider(name) : nullptr;
    if (!p) {
      why = "no extension provider '" + name + "' in the mesh config (ConfigMap " + kSystemNamespace + "/" +
            kMeshConfigMapName + ", data.mesh extensionProviders)";
      return nullptr;
    }
    if (p->kind != ExtensionProvider::Kind::ExtAuthzGrpc && p->kind != ExtensionProvider::Kind::ExtAuthzHttp) {
      why = "extension provider '" + name + "' is " +
            (p->kind == ExtensionProvider::Kind::Zipkin ? std::string("a zipkin tracing provider")
                                                        : "of kind '" + p->unsupported_kind + "'") +
            ", not envoyExtAuthzGrpc or envoyExtAuthzHttp";
      return nullptr;
    }
    // service: "[<namespace>/]<hostname>"; a hostname without dots is short for the Service
    // of that name in the given namespace (else istio-system, where the mesh config lives).
    std::string ns = kSystemNamespace, host = p->service;
    if (auto slash = host.find('/'); slash != std::string::npos) {
      ns = host.substr(0, slash);
      host = host.substr(slash + 1);
    }
    if (host.find('.') == std::string::npos) host += "." + ns + ".svc." + opt.cluster_domain;
    for (const auto& svc : in.services) {
      if (svc.meta.name + "." + svc.meta.ns + ".svc." + opt.cluster_domain != host) continue;
      for (const auto& sp : svc.ports) {
        if (sp.port != p->port) continue;
        ResolvedProvider r{p, &svc, &sp, host, "outbound|" + std::to_string(p->port) + "||" + host};
        return &providers.emplace(name, std::move(r)).first->second;
      }
    }
    why = "extension provider '" + name + "': service " + host + ":" + std::to_string(p->port) +
          " is not a known Service port";
    return nullptr;
  }
};

WaypointAuthz::WaypointAuthz(const ResourceSet& in, const CompileOptions& opt, Diagnostics& diags)
    : impl_(std::make_unique<Impl>()) {
  impl_->mesh = in.mesh;
  impl_->diags = &diags;
  std::set<std::string> body_warned;
  for (const auto& pol : in.policies) {
    if (pol.target_refs.empty()) continue;  // ztunnel's (authz_policy.h)
    auto diag = [&](Severity s, const std::string& field, std::string msg) {
      diags.push_back({s, pol.src.file, pol.src.object, field, std::move(msg)});
    };
    Compiled c;
    c.key = pol.meta.ns + "/" + pol.meta.name;
    c.src = pol.src;
    if (pol.action == "ALLOW") {
      c.action = Action::Allow;
    } else if (pol.action == "DENY") {
      c.action = Action::Deny;
    } else if (pol.action == "AUDIT") {
      c.action = Action::Audit;
    } else {
      std::string why;
      const ResolvedProvider* rp = pol.action == "CUSTOM" ? impl_->resolve(pol.provider, in, opt, why) : nullptr;
      if (!rp) {
        if (why.empty()) why = "action '" + pol.action + "' is not ALLOW, DENY, AUDIT or CUSTOM";
        diag(Severity::Error, pol.action == "CUSTOM" ? "spec.provider.name" : "spec.action",
             why + "; the requests it would send to the provider are denied instead (fail closed)");
        c.action = Action::Deny;
      } else {
        c.action = Action::Custom;
        c.provider = pol.provider;
        const ExtensionProvider& p = *rp->provider;
        if (p.include_request_body && body_warned.insert(p.name).second && impl_->mesh)
          diags.push_back(
              {Severity::Warning, impl_->mesh->file, impl_->mesh->object,
               p.path +
                   (p.kind == ExtensionProvider::Kind::ExtAuthzGrpc ? ".envoyExtAuthzGrpc" : ".envoyExtAuthzHttp") +
                   ".includeRequestBodyInCheck",
               "not supported by the waypoint: checks carry the request's headers, not its body"});
      }
    }
    if (auto it = pol.meta.annotations.find("istio.io/dry-run"); it != pol.meta.annotations.end()) {
      // istiod parses the value as a Go bool; anything else leaves the policy enforced.
      const std::string& v = it->second;
      if (v == "true" || v == "True" || v == "TRUE" || v == "t" || v == "T" || v == "1") {
        c.dry_run = true;
      } else if (!(v == "false" || v == "False" || v == "FALSE" || v == "f" || v == "F" || v == "0")) {
        diag(Severity::Warning, "metadata.annotations[istio.io/dry-run]",
             "'" + v + "' is not a boolean; the policy is enforced");
      }
      if (c.dry_run && c.action == Action::Audit) {
        diag(Severity::Warning, "metadata.annotations[istio.io/dry-run]",
             "AUDIT never enforces; dry-run changes nothing and the policy is audited as usual");
        c.dry_run = false;
      }
    }
    c.targets = resolve_waypoint_targets(pol.target_refs, pol.meta.ns, pol.src, in, opt, diags);
    if (c.targets.empty()) continue;
    for (size_t i = 0; i < pol.rules.size(); ++i) {
      const std::string path = "spec.rules[" + std::to_string(i) + "]";
      RuleCompiler rc(pol, c.action, opt, path, diags);
      auto p = rc.compile(pol.rules[i]);
      if (!p) continue;
      const std::string name = "ns[" + pol.meta.ns + "]-policy[" + pol.meta.name + "]-rule[" + std::to_string(i) + "]";
      c.rules.emplace_back(name, std::move(*p));
      // The TCP form: its findings were reported by the HTTP pass above.
      Diagnostics again;
      RuleCompiler tcp(pol, c.action, opt, path, again, /*tcp=*/true);
      if (auto t = tcp.compile(pol.rules[i])) c.tcp_rules.emplace_back(name, std::move(*t));
    }
    impl_->policies.push_back(std::move(c));
  }
}

WaypointAuthz::~WaypointAuthz() = default;

std::unique_ptr<WaypointAuthz> compile_waypoint_authz(const ResourceSet& in, const CompileOptions& opt,
                                                      Diagnostics& diags) {
  return std::make_unique<WaypointAuthz>(in, opt, diags);
}

namespace {

namespace ext_authz = envoy::extensions::filters::http::ext_authz::v3;

// The RBAC configs (CUSTOM, DENY, ALLOW, AUDIT) of every policy that applies to `svc` at the
// waypoint, the ext_authz provider of the CUSTOM ones, and the shadow rules of the dry-run DENY /
// ALLOW policies (istiod: a filter instance's `rules` hold its enforced policies, absent when all
// are dry-run; `shadow_rules` the dry-run ones, with shadow_rules_stat_prefix
// istio_dry_run_deny_ / istio_dry_run_allow_).
struct Filters {
  std::optional<rbac::RBAC> custom, deny, allow, audit;
  std::optional<rbac::RBAC> deny_shadow, allow_shadow;
  const ResolvedProvider* provider = nullptr;
};

constexpr std::string_view kDryRunAllowPrefix = "istio_dry_run_allow_";
constexpr std::string_view kDryRunDenyPrefix = "istio_dry_run_deny_";

void add_rules(std::optional<rbac::RBAC>& slot, rbac::RBAC::Action action,
               const std::vector<std::pair<std::string, rbac::Policy>>& rules) {
  if (!slot) {
    slot.emplace();
    slot->set_action(action);
  }
  for (const auto& [name, p] : rules) (*slot->mutable_policies())[name] = p;
}

// One provider per waypoint service (Istio's limit): the first CUSTOM policy that applies
// (policy order: namespace, name) chooses it; a policy naming another provider is an Error and
// denies what it would have sent (fail closed). On a TCP chain there is no ext_authz: CUSTOM
// rules deny what they match (fail closed; docs/waypoint-routing.md).
Filters collect(const std::vector<Compiled>& policies, const WaypointAuthz::Impl& impl, const std::string& gateway_ns,
                const std::string& gateway_name, const ServiceObject& svc, bool tcp) {
  Filters f;
  for (const auto& c : policies) {
    if (!targets_apply(c.targets, gateway_ns, gateway_name, svc)) continue;
    const auto& rules = tcp ? c.tcp_rules : c.rules;
    switch (c.action) {
      case Action::Deny:
        add_rules(c.dry_run ? f.deny_shadow : f.deny, rbac::RBAC::DENY, rules);
        break;
      case Action::Allow:
        add_rules(c.dry_run ? f.allow_shadow : f.allow, rbac::RBAC::ALLOW, rules);
        break;
      case Action::Audit:
        add_rules(f.audit, rbac::RBAC::LOG, rules);
        break;
      case Action::Custom: {
        if (tcp) {
          add_rules(f.deny, rbac::RBAC::DENY, rules);
          break;
        }
        const ResolvedProvider* p = &impl.providers.at(c.provider);
        if (f.provider && f.provider != p) {
          if (impl.diags && impl.reported.insert(c.key + "|" + svc.meta.ns + "/" + svc.meta.name).second)
            impl.diags->push_back({Severity::Error, c.src.file, c.src.object, "spec.provider.name",
                                   "service " + svc.meta.ns + "/" + svc.meta.name +
                                       " already uses ext_authz provider '" + f.provider->provider->name +
                                       "' (one provider per waypoint service); '" + c.provider +
                                       "' not applied, its requests are denied instead (fail closed)"});
          add_rules(f.deny, rbac::RBAC::DENY, rules);
          break;
        }
        f.provider = p;
        add_rules(f.custom, rbac::RBAC::LOG, rules);
        break;
      }
    }
  }
  return f;
}

ext_authz::ExtAuthz ext_authz_config(const ResolvedProvider& rp) {
  const ExtensionProvider& p = *rp.provider;
  ext_authz::ExtAuthz m;
  m.set_transport_api_version(2);  // envoy.config.core.v3.ApiVersion V3
  m.set_failure_mode_allow(p.fail_open);
  m.mutable_status_on_error()->set_code(static_cast<int32_t>(p.status_on_error));
  auto set_timeout = [&](google::protobuf::Duration* d) {
    d->set_seconds(static_cast<int64_t>(p.timeout_ms / 1000));
    d->set_nanos(static_cast<int32_t>((p.timeout_ms % 1000) * 1'000'000));
  };
  if (p.kind == ExtensionProvider::Kind::ExtAuthzGrpc) {
    auto* g = m.mutable_grpc_service();
    g->mutable_envoy_grpc()->set_cluster_name(rp.cluster);
    g->mutable_envoy_grpc()->set_authority(rp.host);
    set_timeout(g->mutable_timeout());
    return m;
  }
  // HTTP, as istiod writes it: the request headers to forward as allowed_headers (exact, any
  // case; "x*" prefix, "*x" suffix), the response headers to copy as the response's lists.
  auto list = [](const std::vector<std::string>& names, ext_authz::ListStringMatcher* out) {
    for (const auto& n : names) {
      auto* sm = out->add_patterns();
      sm->set_ignore_case(true);
      if (n.size() > 1 && n.front() == '*') {
        sm->set_suffix(n.substr(1));
      } else if (n.size() > 1 && n.back() == '*') {
        sm->set_prefix(n.substr(0, n.size() - 1));
      } else {
        sm->set_exact(n);
      }
    }
  };
  auto* h = m.mutable_http_service();
  h->mutable_server_uri()->set_uri("http://" + rp.host + ":" + std::to_string(p.port));
  h->mutable_server_uri()->set_cluster(rp.cluster);
  set_timeout(h->mutable_server_uri()->mutable_timeout());
  h->set_path_prefix(p.path_prefix);
  if (!p.include_request_headers.empty()) list(p.include_request_headers, m.mutable_allowed_headers());
  for (const auto& [k, v] : p.include_additional_headers) {
    auto* hv = h->mutable_authorization_request()->add_headers_to_add();
    hv->set_key(k);
    hv->set_value(v);
  }
  auto* resp = h->mutable_authorization_response();
  if (!p.headers_to_upstream_on_allow.empty())
    list(p.headers_to_upstream_on_allow, resp->mutable_allowed_upstream_headers());
  if (!p.headers_to_downstream_on_deny.empty())
    list(p.headers_to_downstream_on_deny, resp->mutable_allowed_client_headers());
  if (!p.headers_to_downstream_on_allow.empty())
    list(p.headers_to_downstream_on_allow, resp->mutable_allowed_client_headers_on_success());
  return m;
}

template <typename Map>
void put_all(const Filters& f, Map& out, std::string_view deny_key, std::string_view allow_key,
             std::string_view audit_key) {
  auto put = [&](const std::optional<rbac::RBAC>& r, const std::optional<rbac::RBAC>& shadow, std::string_view prefix,
                 std::string_view key) {
    if (!r && !shadow) return;
    envoy::extensions::filters::http::rbac::v3::RBACPerRoute per_route;
    if (r) *per_route.mutable_rbac()->mutable_rules() = *r;
    if (shadow) {
      *per_route.mutable_rbac()->mutable_shadow_rules() = *shadow;
      per_route.mutable_rbac()->set_shadow_rules_stat_prefix(std::string(prefix));
    }
    out[std::string(key)].PackFrom(per_route);
  };
  if (f.custom && f.provider) {
    put(f.custom, std::nullopt, "", kRbacCustomKey);
    out[std::string(kExtAuthzKey)].PackFrom(ext_authz_config(*f.provider));
  }
  put(f.deny, f.deny_shadow, kDryRunDenyPrefix, deny_key);
  put(f.allow, f.allow_shadow, kDryRunAllowPrefix, allow_key);
  put(f.audit, std::nullopt, "", audit_key);
}

}  // namespace

void WaypointAuthz::attach(envoy::config::route::v3::VirtualHost& vh, const std::string& gateway_ns,
                           const std::string& gateway_name, const ServiceObject& svc) const {
  put_all(collect(impl_->policies, *impl_, gateway_ns, gateway_name, svc, false), *vh.mutable_typed_per_filter_config(),
          "envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow", "envoy.filters.http.rbac.audit");
}

void WaypointAuthz::attach_tcp(envoy::config::cluster::v3::Cluster& cluster, const std::string& gateway_ns,
                               const std::string& gateway_name, const ServiceObject& svc) const {
  put_all(collect(impl_->policies, *impl_, gateway_ns, gateway_name, svc, true),
          *cluster.mutable_metadata()->mutable_typed_filter_metadata(), kTcpRbacDenyKey, kTcpRbacAllowKey,
          kTcpRbacAuditKey);
}

std::optional<std::pair<const ServiceObject*, const ServicePort*>> WaypointAuthz::ext_authz_service(
    const std::string& gateway_ns, const std::string& gateway_name, const ServiceObject& svc) const {
  const Filters f = collect(impl_->policies, *impl_, gateway_ns, gateway_name, svc, false);
  if (!f.custom || !f.provider) return std::nullopt;
  return std::make_pair(f.provider->service, f.provider->port);
}

}  // namespace controlplane
