// Evaluation of the L7 RBAC filters (rbac_model.h) for one request, with Envoy's semantics and
// Istio's order (waypoint-facts §2.1, §3.8): the DENY instance first (a matching policy -> 403),
// then ALLOW (configured and no policy matches -> 403), then AUDIT (LOG: never denies, only
// marks the request). Shadow rules (dry-run) of the DENY instance are evaluated with it, those of
// the ALLOW instance only when the request reaches ALLOW (a request the DENY instance stops
// never reaches the next filter, as in Envoy's chain); their results never change the
// decision. CUSTOM (ext_authz) is not supported; the control plane refuses it.
//
// Envoy's matching rules reproduced here: a Policy matches when any permission and any principal
// match; and/or sets over children; `not` negates; headers through the router's HeaderMatcher
// (pseudo-headers included, multiple values joined by ","); url_path on the path without the
// query; authenticated.principal_name against the peer's URI SAN ("spiffe://..."), and an absent
// peer certificate never matches `authenticated`; metadata against the JWT filter's
// "istio_authn" dynamic metadata (a missing value never matches, then `invert` applies).
//
// Threading: pure functions over immutable config and one request; no allocation on the
// common path except the decision's policy name.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/model/model.h"
#include "waypoint/authz/rbac_model.h"
#include "waypoint/router/http_message.h"

namespace waypoint::authz {

// Everything the RBAC filter reads about one request.
struct RequestContext {
  const router::HttpRequest* request = nullptr;
  std::optional<std::string> peer_principal;  // URI SAN of the HBONE peer; none = no client cert
  std::optional<ztunnel::IpAddr> source_ip;   // the client's address (direct_remote_ip, remote_ip)
  std::optional<ztunnel::IpAddr> destination_ip;
  uint16_t destination_port = 0;
  const MetaValue* authn = nullptr;  // "istio_authn" metadata object; null = no JWT
};

bool permission_matches(const Permission& p, const RequestContext& ctx);
bool principal_matches(const Principal& p, const RequestContext& ctx);
bool policy_matches(const Policy& p, const RequestContext& ctx);

// The first (by name) policy of `rbac` that matches, or nullptr.
const Policy* first_match(const Rbac& rbac, const RequestContext& ctx);

struct Decision {
  bool allowed = true;
  std::string policy;        // the DENY policy that matched (empty for "no ALLOW matched")
  std::string audit_policy;  // the AUDIT (LOG) policy that matched, if any
  std::vector<ShadowResult> shadow;  // one per shadow engine evaluated (DENY's first)
};

// Envoy's shadow engine: with ALLOW rules a match is "allowed" (else "denied"), with DENY rules
// a match is "denied" (else "allowed"); the matching policy is the effective policy id.
ShadowResult evaluate_shadow(const ShadowRbac& shadow, const RequestContext& ctx);

Decision authorize(const RbacFilters& filters, const RequestContext& ctx);

// Envoy's response to a denied request: 403, body "RBAC: access denied", flag "RBAC".
inline constexpr uint16_t kDeniedStatus = 403;
inline constexpr std::string_view kDeniedBody = "RBAC: access denied";
inline constexpr std::string_view kDeniedFlag = "RBAC";

}  // namespace waypoint::authz
