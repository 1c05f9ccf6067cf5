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

namespace {

RequestContext context(router::HttpRequest& request, const Downstream& downstream, const AuthnState& state) {
  RequestContext ctx;
  ctx.request = &request;
  ctx.peer_principal = downstream.peer_principal;
  ctx.source_ip = downstream.source_ip;
  ctx.destination_ip = downstream.destination_ip;
  ctx.destination_port = downstream.destination_port;
  ctx.authn = state.authenticated ? &state.authn : nullptr;
  return ctx;
}

}  // namespace

FilterOutcome run_authn(const VirtualHost& vhost, const Route* route, router::HttpRequest& request,
                        const Downstream& downstream, AuthnState& state) {
  FilterOutcome out;
  const JwtConfig* jwt = effective_jwt(vhost, route);
  const RbacFilters* rbac = effective_rbac(vhost, route);
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
      state.authn = std::move(a.metadata);
      state.authenticated = true;
    }
  }
  if (rbac && rbac->custom) {
    const RequestContext ctx = context(request, downstream, state);
    state.custom_check = first_match(*rbac->custom, ctx) != nullptr;
  }
  return out;
}

FilterOutcome run_rbac(const VirtualHost& vhost, const Route* route, router::HttpRequest& request,
                       const Downstream& downstream, const AuthnState& state) {
  FilterOutcome out;
  const RbacFilters* rbac = effective_rbac(vhost, route);
  if (!rbac) return out;
  Decision d = authorize(*rbac, context(request, downstream, state));
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

FilterOutcome run_filters(const VirtualHost& vhost, const Route* route, router::HttpRequest& request,
                          const Downstream& downstream) {
  AuthnState state;
  FilterOutcome out = run_authn(vhost, route, request, downstream, state);
  if (out.denied) return out;
  if (state.custom_check) {
    out.denied = true;
    out.status = kDeniedStatus;
    out.flag = "UAEX";
    out.reason = "a CUSTOM rule matched and no ext_authz check is possible here";
    return out;
  }
  return run_rbac(vhost, route, request, downstream, state);
}

}  // namespace waypoint::authz
