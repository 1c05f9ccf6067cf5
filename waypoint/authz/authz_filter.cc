#include "waypoint/authz/authz_filter.h"

#include <chrono>

#include "waypoint/authz/jwt.h"
#include "waypoint/authz/rbac_eval.h"

namespace waypoint::authz {

const RbacFilters* effective_rbac(const VirtualHost& vhost, const Route* route) {
  if (route && route->filters.rbac) return route->filters.rbac.get();
  return vhost.filters.rbac.get();
}

const JwtConfig* effective_jwt(const VirtualHost& vhost, const Route* route) {
  if (route && route->filters.jwt) return route->filters.jwt.get();
  return vhost.filters.jwt.get();
}

FilterOutcome run_filters(const VirtualHost& vhost, const Route* route, router::HttpRequest& request,
                          const Downstream& downstream) {
  FilterOutcome out;
  const JwtConfig* jwt = effective_jwt(vhost, route);
  const RbacFilters* rbac = effective_rbac(vhost, route);
  if (!jwt && !rbac) return out;

  MetaValue authn;
  bool authenticated = false;
  if (jwt) {
    const int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    AuthnOutcome a = authenticate(*jwt, request, now);
    if (a.rejected) {
      out.denied = true;
      out.status = kJwtRejectedStatus;
      out.body = a.message;
      out.reason = "JWT rejected: " + a.message;
      return out;
    }
    if (a.authenticated) {
      authn = std::move(a.metadata);
      authenticated = true;
    }
  }
  if (!rbac) return out;
  RequestContext ctx;
  ctx.request = &request;
  ctx.peer_principal = downstream.peer_principal;
  ctx.source_ip = downstream.source_ip;
  ctx.destination_ip = downstream.destination_ip;
  ctx.destination_port = downstream.destination_port;
  ctx.authn = authenticated ? &authn : nullptr;
  Decision d = authorize(*rbac, ctx);
  out.audit_policy = d.audit_policy;
  out.shadow = std::move(d.shadow);
  if (!d.allowed) {
    out.denied = true;
    out.status = kDeniedStatus;
    out.body = std::string(kDeniedBody);
    out.flag = std::string(kDeniedFlag);
    out.reason = d.policy.empty() ? "no ALLOW policy matched" : "denied by " + d.policy;
  }
  return out;
}

}  // namespace waypoint::authz
