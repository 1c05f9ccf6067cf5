// AuthorizationPolicy (security.istio.io) -> ztunnel's L4 Authorization, with istiod's
// semantics for everything ztunnel can enforce:
//   scope   no selector -> Namespace; no selector in the root namespace -> Global;
//           a selector -> WorkloadSelector (the compiler lists the key on matching workloads);
//   action  ALLOW / DENY; AUDIT and CUSTOM do not exist at L4 and are dropped (Info);
//           targetRef(s) bind the policy to a waypoint, so ztunnel never sees it (Info);
//   rule    one Istio rule -> one rule whose clauses are AND-ed: the `to` entries (OR), the
//           `from` entries (OR), then one clause per `when` condition.
//
// What L4 cannot see (hosts, methods, paths, requestPrincipals, remoteIpBlocks, non-L4 `when`
// keys) is handled in the safe direction and reported as a Warning: an ALLOW rule using them is
// omitted (it can never be proven to match), a DENY rule is kept without them (so it denies at
// least as much as written). Values ztunnel cannot parse (a port "http", a CIDR "10.0.0/8")
// are Errors and handled the same way. Where removing constraints leaves a `to`/`from` entry
// empty, that whole clause becomes "any": this differs from istiod, which emits an empty match
// that ztunnel skips — making such a DENY match nothing, the opposite of its own warning.
//
// Threading: pure functions.
#pragma once

#include <optional>
#include <string_view>

#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"
#include "common/model/model.h"

namespace controlplane {

inline constexpr std::string_view kDefaultRootNamespace = "istio-system";

// Istio's glob for principals and namespaces: "*" = present (non-empty), "*x" = suffix,
// "x*" = prefix, anything else exact.
ztunnel::StringMatch string_match_from_glob(std::string_view value);

// nullopt when ztunnel must not receive the policy (AUDIT/CUSTOM, targetRef); the reason is
// in `diags`. A returned policy may carry Warning/Error diagnostics about omitted parts.
std::optional<ztunnel::Authorization> translate_policy(const AuthorizationPolicyObject& policy,
                                                       std::string_view root_namespace, Diagnostics& diags);

}  // namespace controlplane
