#include "waypoint/authz/rbac_eval.h"

#include <algorithm>

#include "waypoint/router/router.h"

namespace waypoint::authz {
namespace {

bool value_matches(const ValueMatch& m, const MetaValue& v) {
  switch (m.kind) {
    case ValueMatch::Kind::String:
      return v.kind == MetaValue::Kind::String && router::string_matches(m.string, v.str);
    case ValueMatch::Kind::Bool:
      return v.kind == MetaValue::Kind::Bool && v.boolean == m.boolean;
    case ValueMatch::Kind::Present:
      return (v.kind != MetaValue::Kind::Null) == m.boolean;
    case ValueMatch::Kind::ListOneOf:
      if (m.one_of.empty()) return false;
      // A JWT `aud` or claim may be a single string where Istio's matcher expects a list: the
      // waypoint's own metadata treats it as a list of one (documented deviation).
      if (v.kind == MetaValue::Kind::String) return value_matches(m.one_of.front(), v);
      if (v.kind != MetaValue::Kind::List) return false;
      return std::any_of(v.list.begin(), v.list.end(),
                         [&](const MetaValue& e) { return value_matches(m.one_of.front(), e); });
  }
  return false;
}

bool metadata_matches(const MetadataMatch& m, const RequestContext& ctx) {
  const MetaValue* v = m.filter == "istio_authn" ? ctx.authn : nullptr;
  for (const auto& key : m.path) {
    if (!v || v->kind != MetaValue::Kind::Object) {
      v = nullptr;
      break;
    }
    v = v->get(key);
  }
  // Envoy: a missing value matches only a present_match: false; invert flips the result.
  bool hit;
  if (!v) {
    hit = m.value.kind == ValueMatch::Kind::Present && !m.value.boolean;
  } else {
    hit = value_matches(m.value, *v);
  }
  return hit != m.invert;
}

}  // namespace

bool permission_matches(const Permission& p, const RequestContext& ctx) {
  switch (p.kind) {
    case Permission::Kind::And:
      return std::all_of(p.children.begin(), p.children.end(),
                         [&](const Permission& c) { return permission_matches(c, ctx); });
    case Permission::Kind::Or:
      return std::any_of(p.children.begin(), p.children.end(),
                         [&](const Permission& c) { return permission_matches(c, ctx); });
    case Permission::Kind::Any:
      return true;
    case Permission::Kind::Header:
      return ctx.request && router::header_matches(p.header, *ctx.request);
    case Permission::Kind::UrlPath:
      return ctx.request && router::string_matches(p.path, ctx.request->path_only());
    case Permission::Kind::DestinationIp:
      return ctx.destination_ip && p.cidr.contains(*ctx.destination_ip);
    case Permission::Kind::DestinationPort:
      return ctx.destination_port == p.port;
    case Permission::Kind::Metadata:
      return metadata_matches(p.metadata, ctx);
    case Permission::Kind::Not:
      return !p.children.empty() && !permission_matches(p.children.front(), ctx);
  }
  return false;
}

bool principal_matches(const Principal& p, const RequestContext& ctx) {
  switch (p.kind) {
    case Principal::Kind::And:
      return std::all_of(p.children.begin(), p.children.end(),
                         [&](const Principal& c) { return principal_matches(c, ctx); });
    case Principal::Kind::Or:
      return std::any_of(p.children.begin(), p.children.end(),
                         [&](const Principal& c) { return principal_matches(c, ctx); });
    case Principal::Kind::Any:
      return true;
    case Principal::Kind::Authenticated:
      if (!ctx.peer_principal) return false;
      return !p.principal_name || router::string_matches(*p.principal_name, *ctx.peer_principal);
    case Principal::Kind::DirectRemoteIp:
    case Principal::Kind::RemoteIp:
      return ctx.source_ip && p.cidr.contains(*ctx.source_ip);
    case Principal::Kind::Header:
      return ctx.request && router::header_matches(p.header, *ctx.request);
    case Principal::Kind::UrlPath:
      return ctx.request && router::string_matches(p.path, ctx.request->path_only());
    case Principal::Kind::Metadata:
      return metadata_matches(p.metadata, ctx);
    case Principal::Kind::Not:
      return !p.children.empty() && !principal_matches(p.children.front(), ctx);
  }
  return false;
}

bool policy_matches(const Policy& p, const RequestContext& ctx) {
  return std::any_of(p.permissions.begin(), p.permissions.end(),
                     [&](const Permission& x) { return permission_matches(x, ctx); }) &&
         std::any_of(p.principals.begin(), p.principals.end(),
                     [&](const Principal& x) { return principal_matches(x, ctx); });
}

const Policy* first_match(const Rbac& rbac, const RequestContext& ctx) {
  for (const auto& p : rbac.policies)
    if (policy_matches(p, ctx)) return &p;
  return nullptr;
}

ShadowResult evaluate_shadow(const ShadowRbac& shadow, const RequestContext& ctx) {
  ShadowResult r;
  r.stat_prefix = shadow.stat_prefix;
  const Policy* p = first_match(shadow.rules, ctx);
  if (p) r.policy = p->name;
  r.allowed = shadow.rules.action == Action::Deny ? p == nullptr : p != nullptr;
  return r;
}

Decision authorize(const RbacFilters& filters, const RequestContext& ctx) {
  Decision d;
  if (filters.deny_shadow) d.shadow.push_back(evaluate_shadow(*filters.deny_shadow, ctx));
  if (filters.deny) {
    if (const Policy* p = first_match(*filters.deny, ctx)) {
      d.allowed = false;
      d.policy = p->name;
      return d;
    }
  }
  if (filters.allow_shadow) d.shadow.push_back(evaluate_shadow(*filters.allow_shadow, ctx));
  if (filters.allow && !first_match(*filters.allow, ctx)) {
    d.allowed = false;
    return d;
  }
  if (filters.audit) {
    if (const Policy* p = first_match(*filters.audit, ctx)) d.audit_policy = p->name;
  }
  return d;
}

}  // namespace waypoint::authz
