// Request mirroring and CORS decisions (Envoy's shadow policy and envoy.filters.http.cors).
#include "waypoint/router/router.h"
#include "waypoint/router/strings.h"

namespace waypoint::router {

std::vector<const MirrorPolicy*> decide_mirrors(const VirtualHost& vhost, const RouteAction& action, Random& random) {
  const auto& policies = action.mirror_policies.empty() ? vhost.mirror_policies : action.mirror_policies;
  std::vector<const MirrorPolicy*> fired;
  for (const auto& p : policies) {
    if (p.cluster.empty()) continue;
    if (fraction_enabled(p.fraction, random.next())) fired.push_back(&p);
  }
  return fired;
}

std::string shadow_authority(const MirrorPolicy& mirror, std::string_view authority) {
  if (!mirror.host_rewrite_literal.empty()) return mirror.host_rewrite_literal;
  if (mirror.disable_shadow_host_suffix_append) return std::string(authority);
  // "-shadow" goes on the host, before any port: "svc:8080" -> "svc-shadow:8080".
  size_t sep = port_separator(authority);
  std::string_view host = sep == std::string_view::npos ? authority : authority.substr(0, sep);
  std::string_view port = sep == std::string_view::npos ? std::string_view() : authority.substr(sep);
  std::string out;
  out.reserve(authority.size() + 7);
  out.append(host).append("-shadow").append(port);
  return out;
}

const CorsPolicy* effective_cors_policy(const VirtualHost& vhost, const Route& route) {
  if (route.filters.cors) return &*route.filters.cors;
  if (vhost.filters.cors) return &*vhost.filters.cors;
  return nullptr;
}

CorsDecision decide_cors(const CorsPolicy& policy, const HttpRequest& request, uint64_t random_value) {
  CorsDecision d;
  if (!fraction_enabled(policy.filter_enabled, random_value)) return d;
  auto origin = request.headers.get("origin");
  if (!origin || origin->empty()) return d;

  bool allowed = false;
  for (const auto& m : policy.allow_origin) {
    // A matcher that accepts "*" admits every origin (Envoy's isOriginAllowed).
    if (string_matches(m, "*") || string_matches(m, *origin)) {
      allowed = true;
      break;
    }
  }

  auto request_method = request.headers.get("access-control-request-method");
  const bool preflight = request.method == "OPTIONS" && request_method && !request_method->empty();
  if (!preflight) {
    d.kind = CorsDecision::Kind::Forward;
    if (allowed) {
      d.response_headers.add("access-control-allow-origin", std::string(*origin));
      if (policy.allow_credentials.value_or(false)) d.response_headers.add("access-control-allow-credentials", "true");
      if (!policy.expose_headers.empty())
        d.response_headers.add("access-control-expose-headers", policy.expose_headers);
    }
    return d;
  }
  if (!allowed && policy.forward_not_matching_preflights) {
    d.kind = CorsDecision::Kind::Forward;
    return d;
  }
  // Answered here, 200 without body; an origin that is not allowed gets no allow-origin.
  d.kind = CorsDecision::Kind::Preflight;
  HeaderList& h = d.response.headers;
  d.response.status = 200;
  if (allowed) h.add("access-control-allow-origin", std::string(*origin));
  if (policy.allow_credentials.value_or(false)) h.add("access-control-allow-credentials", "true");
  if (!policy.allow_methods.empty()) {
    h.add("access-control-allow-methods",
          policy.allow_methods == "*" ? std::string(*request_method) : policy.allow_methods);
  }
  if (!policy.allow_headers.empty()) {
    std::string value = policy.allow_headers;
    if (value == "*") value = std::string(request.headers.get("access-control-request-headers").value_or(""));
    h.add("access-control-allow-headers", std::move(value));
  }
  if (!policy.max_age.empty()) h.add("access-control-max-age", policy.max_age);
  if (policy.allow_private_network_access &&
      request.headers.get("access-control-request-private-network").value_or("") == "true") {
    h.add("access-control-allow-private-network", "true");
  }
  return d;
}

}  // namespace waypoint::router
