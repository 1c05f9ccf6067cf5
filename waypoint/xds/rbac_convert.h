// envoy.extensions.filters.http.rbac.v3.RBACPerRoute (typed_per_filter_config of a virtual host,
// route or weighted cluster) -> waypoint::authz::RbacFilters. The keys are one per RBAC filter
// instance: "envoy.filters.http.rbac.deny", ".allow", ".audit", ".custom" (rbac_model.h says
// why), and rules.action must agree with the key (DENY / ALLOW / LOG / LOG). shadow_rules (Istio's
// dry-run policies) with shadow_rules_stat_prefix are accepted on DENY and ALLOW, with the same
// action; `rules` may then be absent (nothing enforced). Everything the evaluator does not
// implement is refused naming the field: shadow rules on AUDIT and CUSTOM, the matcher-tree form, CEL conditions,
// extension matchers, uri_template, SNI, filter_state, metadata other than "istio_authn",
// ValueMatcher kinds other than string / bool / present / list one_of.
//
// Threading: pure functions. Protobuf types are forward-declared.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "waypoint/authz/rbac_model.h"

namespace google::protobuf {
class Any;
}

namespace waypoint::xds {

inline constexpr std::string_view kRbacDenyFilterName = "envoy.filters.http.rbac.deny";
inline constexpr std::string_view kRbacAllowFilterName = "envoy.filters.http.rbac.allow";
inline constexpr std::string_view kRbacAuditFilterName = "envoy.filters.http.rbac.audit";
// CUSTOM: the rules selecting the requests the ext_authz filter checks (rules.action LOG).
inline constexpr std::string_view kRbacCustomFilterName = "envoy.filters.http.rbac.custom";
inline constexpr std::string_view kRbacPerRouteTypeUrl =
    "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute";

bool is_rbac_filter_key(std::string_view key);

// Converts the entry `key` (one of the three names) into the matching member of `out`. The
// error names the field below `path`.
common::Status convert_rbac_per_route(std::string_view key, const google::protobuf::Any& any, const std::string& path,
                                      authz::RbacFilters& out);

// The same from serialized RBACPerRoute bytes (fuzzing, tests).
common::Status parse_rbac_per_route(std::string_view key, std::string_view bytes, authz::RbacFilters& out);

}  // namespace waypoint::xds
