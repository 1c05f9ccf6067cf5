// The waypoint's L7 security filters for one request, in Envoy/Istio's HTTP filter order
// (waypoint-facts §3.8): jwt_authn (jwt.h), then CUSTOM (the ext_authz check of the requests the
// CUSTOM rules select, ext_authz_filter.h; asynchronous, so the request flow runs it between
// run_authn() and run_rbac()), then RBAC DENY -> ALLOW -> AUDIT, all before fault injection,
// CORS and the router. request_flow calls run_filters() right after route selection
// (the per-filter config comes from the selected route, else its virtual host, as Envoy resolves
// the most specific typed_per_filter_config); it also runs when no route matched, because Istio
// configures the RBAC filter for the whole listener, so a denied caller gets 403 rather than 404.
//
// Threading: pure function of the immutable config and one request; runs on the worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/model/model.h"
#include "waypoint/authz/rbac_model.h"
#include "waypoint/route_model.h"
#include "waypoint/router/http_message.h"

namespace waypoint::authz {

struct JwtConfig;

// A request whose token is present but fails verification (jwt_authn): 401 with Envoy's message.
inline constexpr uint16_t kJwtRejectedStatus = 401;

// What the waypoint knows about the downstream of a request (the HBONE CONNECT stream).
struct Downstream {
  std::optional<std::string> peer_principal;      // URI SAN of the client ztunnel's certificate
  std::optional<ztunnel::IpAddr> source_ip;       // the client pod (Forwarded: for=, else TCP peer)
  std::optional<ztunnel::IpAddr> destination_ip;  // the CONNECT :authority (service VIP or pod)
  uint16_t destination_port = 0;
};

struct FilterOutcome {
  bool denied = false;
  uint16_t status = 0;       // denied: the local reply's status
  std::string body;          // denied: the local reply's body
  std::string flag;          // denied: the response flag (RBAC; none for a JWT rejection)
  std::string reason;        // for the debug log: the policy that denied, or why
  std::string audit_policy;  // an AUDIT policy that matched (the request goes on)
  std::vector<ShadowResult> shadow;  // dry-run (shadow) RBAC results, for telemetry
};

// The filters in effect: the route's typed_per_filter_config, else the virtual host's.
const RbacFilters* effective_rbac(const VirtualHost& vhost, const Route* route);
const JwtConfig* effective_jwt(const VirtualHost& vhost, const Route* route);

// Both phases below, for a request path without ext_authz: a request a CUSTOM rule selects is
// denied (403, flag UAEX: it cannot be checked here, fail closed).
FilterOutcome run_filters(const VirtualHost& vhost, const Route* route, router::HttpRequest& request,
                          const Downstream& downstream);

// What phase 1 learned for phase 2 (the JWT's claims) and whether the request must be checked.
struct AuthnState {
  MetaValue authn;
  bool authenticated = false;
  bool custom_check = false;  // a CUSTOM rule matched: ask the ext_authz service
};
// Phase 1: jwt_authn, then the CUSTOM selection.
FilterOutcome run_authn(const VirtualHost& vhost, const Route* route, router::HttpRequest& request,
                        const Downstream& downstream, AuthnState& state);
// Phase 2: RBAC DENY -> ALLOW -> AUDIT.
FilterOutcome run_rbac(const VirtualHost& vhost, const Route* route, router::HttpRequest& request,
                       const Downstream& downstream, const AuthnState& state);

}  // namespace waypoint::authz
