#include "waypoint/xds/rbac_convert.h"

#include <google/protobuf/any.pb.h>
#include <algorithm>

#include "envoy/config/rbac/v3/rbac.pb.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb.h"
#include "waypoint/xds/convert.h"
#include "waypoint/xds/validate.h"

namespace waypoint::xds {
namespace {

namespace rbac = envoy::config::rbac::v3;
namespace matcher = envoy::type::matcher::v3;
using common::make_error;
using common::Status;

Status fail(const std::string& path, const std::string& what) {
  return make_error(path + ": " + what);
}

Status cidr(const envoy::config::core::v3::CidrRange& c, const std::string& path, ztunnel::Cidr& out) {
  std::string text = c.address_prefix();
  if (c.has_prefix_len()) text += "/" + std::to_string(c.prefix_len().value());
  auto parsed = ztunnel::Cidr::parse(text);
  if (!parsed) return fail(path, "invalid CIDR '" + text + "'");
  out = *parsed;
  return common::ok_status();
}

Status value_matcher(const matcher::ValueMatcher& v, const std::string& path, authz::ValueMatch& out) {
  switch (v.match_pattern_case()) {
    case matcher::ValueMatcher::kStringMatch:
      out.kind = authz::ValueMatch::Kind::String;
      return convert_string_matcher(v.string_match(), path + ".string_match", out.string);
    case matcher::ValueMatcher::kBoolMatch:
      out.kind = authz::ValueMatch::Kind::Bool;
      out.boolean = v.bool_match();
      return common::ok_status();
    case matcher::ValueMatcher::kPresentMatch:
      out.kind = authz::ValueMatch::Kind::Present;
      out.boolean = v.present_match();
      return common::ok_status();
    case matcher::ValueMatcher::kListMatch: {
      if (!v.list_match().has_one_of()) return fail(path + ".list_match", "one_of required");
      out.kind = authz::ValueMatch::Kind::ListOneOf;
      out.one_of.resize(1);
      return value_matcher(v.list_match().one_of(), path + ".list_match.one_of", out.one_of[0]);
    }
    default:
      return fail(path, "no match pattern set");
  }
}

Status metadata(const matcher::MetadataMatcher& m, const std::string& path, authz::MetadataMatch& out) {
  // Only the JWT filter's metadata exists at the waypoint; anything else could never match,
  // which would silently turn a DENY into "allow".
  if (m.filter() != "istio_authn")
    return fail(path + ".filter", "only dynamic metadata 'istio_authn' is available, got '" + m.filter() + "'");
  out.filter = m.filter();
  for (int i = 0; i < m.path_size(); ++i) {
    if (!m.path(i).has_key() || m.path(i).key().empty())
      return fail(path + ".path[" + std::to_string(i) + "]", "key required");
    out.path.push_back(m.path(i).key());
  }
  if (out.path.empty()) return fail(path + ".path", "at least one key required");
  if (!m.has_value()) return fail(path + ".value", "required");
  out.invert = m.invert();
  return value_matcher(m.value(), path + ".value", out.value);
}

Status path_matcher(const matcher::PathMatcher& p, const std::string& path, StringMatcher& out) {
  if (!p.has_path()) return fail(path, "path required");
  return convert_string_matcher(p.path(), path + ".path", out);
}

Status permission(const rbac::Permission& p, const std::string& path, authz::Permission& out) {
  using K = authz::Permission::Kind;
  auto set = [&](const rbac::Permission::Set& s, const std::string& sp, K kind) -> Status {
    out.kind = kind;
    if (s.rules_size() == 0) return fail(sp + ".rules", "at least one rule required");
    out.children.resize(static_cast<size_t>(s.rules_size()));
    for (int i = 0; i < s.rules_size(); ++i) {
      auto st = permission(s.rules(i), sp + ".rules[" + std::to_string(i) + "]", out.children[static_cast<size_t>(i)]);
      if (!st) return st;
    }
    return common::ok_status();
  };
  switch (p.rule_case()) {
    case rbac::Permission::kAndRules:
      return set(p.and_rules(), path + ".and_rules", K::And);
    case rbac::Permission::kOrRules:
      return set(p.or_rules(), path + ".or_rules", K::Or);
    case rbac::Permission::kAny:
      if (!p.any()) return fail(path + ".any", "must be true");
      out.kind = K::Any;
      return common::ok_status();
    case rbac::Permission::kHeader:
      out.kind = K::Header;
      return convert_header_matcher(p.header(), path + ".header", out.header);
    case rbac::Permission::kUrlPath:
      out.kind = K::UrlPath;
      return path_matcher(p.url_path(), path + ".url_path", out.path);
    case rbac::Permission::kDestinationIp:
      out.kind = K::DestinationIp;
      return cidr(p.destination_ip(), path + ".destination_ip", out.cidr);
    case rbac::Permission::kDestinationPort:
      if (p.destination_port() > 65535) return fail(path + ".destination_port", "above 65535");
      out.kind = K::DestinationPort;
      out.port = static_cast<uint16_t>(p.destination_port());
      return common::ok_status();
    case rbac::Permission::kMetadata:
      out.kind = K::Metadata;
      return metadata(p.metadata(), path + ".metadata", out.metadata);
    case rbac::Permission::kNotRule:
      out.kind = K::Not;
      out.children.resize(1);
      return permission(p.not_rule(), path + ".not_rule", out.children[0]);
    case rbac::Permission::kRequestedServerName:
      return fail(path + ".requested_server_name", "not implemented (no SNI inside an HBONE tunnel)");
    case rbac::Permission::kMatcher:
      return fail(path + ".matcher", "extension matchers are not implemented");
    case rbac::Permission::kUriTemplate:
      return fail(path + ".uri_template", "not implemented (path templates arrive as safe_regex url_path)");
    default:
      return fail(path, "a rule is required");
  }
}

Status principal(const rbac::Principal& p, const std::string& path, authz::Principal& out) {
  using K = authz::Principal::Kind;
  auto set = [&](const rbac::Principal::Set& s, const std::string& sp, K kind) -> Status {
    out.kind = kind;
    if (s.ids_size() == 0) return fail(sp + ".ids", "at least one id required");
    out.children.resize(static_cast<size_t>(s.ids_size()));
    for (int i = 0; i < s.ids_size(); ++i) {
      auto st = principal(s.ids(i), sp + ".ids[" + std::to_string(i) + "]", out.children[static_cast<size_t>(i)]);
      if (!st) return st;
    }
    return common::ok_status();
  };
  switch (p.identifier_case()) {
    case rbac::Principal::kAndIds:
      return set(p.and_ids(), path + ".and_ids", K::And);
    case rbac::Principal::kOrIds:
      return set(p.or_ids(), path + ".or_ids", K::Or);
    case rbac::Principal::kAny:
      if (!p.any()) return fail(path + ".any", "must be true");
      out.kind = K::Any;
      return common::ok_status();
    case rbac::Principal::kAuthenticated:
      out.kind = K::Authenticated;
      if (p.authenticated().has_principal_name()) {
        out.principal_name.emplace();
        return convert_string_matcher(p.authenticated().principal_name(), path + ".authenticated.principal_name",
                                      *out.principal_name);
      }
      return common::ok_status();
    case rbac::Principal::kSourceIp:
      // Deprecated alias of direct_remote_ip with the same behaviour at the waypoint.
      out.kind = K::DirectRemoteIp;
      return cidr(p.source_ip(), path + ".source_ip", out.cidr);
    case rbac::Principal::kDirectRemoteIp:
      out.kind = K::DirectRemoteIp;
      return cidr(p.direct_remote_ip(), path + ".direct_remote_ip", out.cidr);
    case rbac::Principal::kRemoteIp:
      out.kind = K::RemoteIp;
      return cidr(p.remote_ip(), path + ".remote_ip", out.cidr);
    case rbac::Principal::kHeader:
      out.kind = K::Header;
      return convert_header_matcher(p.header(), path + ".header", out.header);
    case rbac::Principal::kUrlPath:
      out.kind = K::UrlPath;
      return path_matcher(p.url_path(), path + ".url_path", out.path);
    case rbac::Principal::kMetadata:
      out.kind = K::Metadata;
      return metadata(p.metadata(), path + ".metadata", out.metadata);
    case rbac::Principal::kNotId:
      out.kind = K::Not;
      out.children.resize(1);
      return principal(p.not_id(), path + ".not_id", out.children[0]);
    default:
      return fail(path, "an identifier is required");
  }
}

// One RBAC rule set (`rules` or `shadow_rules` at `path`) whose action must be `want`.
Status rules_to(const rbac::RBAC& rules, const std::string& path, authz::Action want, std::string_view key,
                authz::Rbac& r) {
  authz::Action got = authz::Action::Allow;
  switch (rules.action()) {
    case rbac::RBAC::ALLOW:
      got = authz::Action::Allow;
      break;
    case rbac::RBAC::DENY:
      got = authz::Action::Deny;
      break;
    case rbac::RBAC::LOG:
      got = authz::Action::Log;
      break;
    default:
      return fail(path + ".action", "unknown action " + std::to_string(rules.action()));
  }
  if (got != want) return fail(path + ".action", "does not match the filter instance " + std::string(key));
  r.action = got;
  std::vector<std::string> names;
  for (const auto& [name, pol] : rules.policies()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const auto& pol = rules.policies().at(name);
    const std::string pp = path + ".policies[" + name + "]";
    authz::Policy out_p;
    out_p.name = name;
    if (pol.permissions_size() == 0) return fail(pp + ".permissions", "at least one permission required");
    if (pol.principals_size() == 0) return fail(pp + ".principals", "at least one principal required");
    out_p.permissions.resize(static_cast<size_t>(pol.permissions_size()));
    for (int i = 0; i < pol.permissions_size(); ++i) {
      auto st = permission(pol.permissions(i), pp + ".permissions[" + std::to_string(i) + "]",
                           out_p.permissions[static_cast<size_t>(i)]);
      if (!st) return st;
    }
    out_p.principals.resize(static_cast<size_t>(pol.principals_size()));
    for (int i = 0; i < pol.principals_size(); ++i) {
      auto st = principal(pol.principals(i), pp + ".principals[" + std::to_string(i) + "]",
                          out_p.principals[static_cast<size_t>(i)]);
      if (!st) return st;
    }
    r.policies.push_back(std::move(out_p));
  }
  return common::ok_status();
}

Status convert(std::string_view key, const envoy::extensions::filters::http::rbac::v3::RBACPerRoute& per_route,
               const std::string& path, authz::RbacFilters& out) {
  if (auto e = find_unsupported_field(per_route, path); !e.empty()) return make_error(e + ": rejected");
  if (!per_route.has_rbac()) return fail(path + ".rbac", "required (an empty RBACPerRoute disables nothing here)");
  const auto& f = per_route.rbac();
  if (f.has_matcher()) return fail(path + ".rbac.matcher", "the matcher-tree form is not implemented");
  if (f.has_shadow_matcher()) return fail(path + ".rbac.shadow_matcher", "not implemented");
  authz::Action want = authz::Action::Allow;
  std::optional<authz::Rbac>* slot = nullptr;
  std::optional<authz::ShadowRbac>* shadow_slot = nullptr;
  if (key == kRbacDenyFilterName) {
    want = authz::Action::Deny, slot = &out.deny, shadow_slot = &out.deny_shadow;
  } else if (key == kRbacAllowFilterName) {
    want = authz::Action::Allow, slot = &out.allow, shadow_slot = &out.allow_shadow;
  } else if (key == kRbacAuditFilterName) {
    want = authz::Action::Log, slot = &out.audit;
  } else if (key == kRbacCustomFilterName) {
    want = authz::Action::Log, slot = &out.custom;
  } else {
    return fail(path, "unknown RBAC filter instance (expected " + std::string(kRbacDenyFilterName) + ", " +
                          std::string(kRbacAllowFilterName) + ", " + std::string(kRbacAuditFilterName) + " or " +
                          std::string(kRbacCustomFilterName) + ")");
  }
  // Shadow rules (Istio's dry-run policies) on DENY and ALLOW; an AUDIT instance never
  // enforces, so istiod has no dry-run form of it, and the CUSTOM selection has none either.
  if (f.has_shadow_rules() && !shadow_slot)
    return fail(path + ".rbac.shadow_rules", "shadow rules are not implemented on the " + std::string(key) + " instance");
  if (!f.has_rules() && !f.has_shadow_rules()) return fail(path + ".rbac.rules", "required (or shadow_rules)");
  if (f.has_rules()) {
    authz::Rbac r;
    if (auto st = rules_to(f.rules(), path + ".rbac.rules", want, key, r); !st) return st;
    *slot = std::move(r);
  }
  if (f.has_shadow_rules()) {
    authz::ShadowRbac sh;
    if (auto st = rules_to(f.shadow_rules(), path + ".rbac.shadow_rules", want, key, sh.rules); !st) return st;
    sh.stat_prefix = f.shadow_rules_stat_prefix();
    *shadow_slot = std::move(sh);
  }
  return common::ok_status();
}

}  // namespace

bool is_rbac_filter_key(std::string_view key) {
  return key.starts_with("envoy.filters.http.rbac");
}

Status convert_rbac_per_route(std::string_view key, const google::protobuf::Any& any, const std::string& path,
                              authz::RbacFilters& out) {
  envoy::extensions::filters::http::rbac::v3::RBACPerRoute per_route;
  if (!any.Is<envoy::extensions::filters::http::rbac::v3::RBACPerRoute>() || !any.UnpackTo(&per_route))
    return fail(path, "expected envoy.extensions.filters.http.rbac.v3.RBACPerRoute, got " + any.type_url());
  return convert(key, per_route, path, out);
}

Status parse_rbac_per_route(std::string_view key, std::string_view bytes, authz::RbacFilters& out) {
  envoy::extensions::filters::http::rbac::v3::RBACPerRoute per_route;
  if (!per_route.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error("RBACPerRoute: not a valid protobuf message");
  return convert(key, per_route, "rbac", out);
}

}  // namespace waypoint::xds
