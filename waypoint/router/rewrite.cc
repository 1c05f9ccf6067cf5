// Path/host rewrites and header mutations in Envoy's order (waypoint-facts §5.6).
#include <algorithm>
#include <array>

#include "waypoint/router/path_rewrite.h"
#include "waypoint/router/router.h"

namespace waypoint::router {

namespace {

// Length of the part of :path that prefix_rewrite replaces: the matched prefix, or the whole
// path (without query) for exact-path and regex routes, as Envoy's matcher() string.
size_t matched_length(const RouteMatch& match, const HttpRequest& request) {
  switch (match.path_kind) {
    case RouteMatch::PathKind::Prefix:
    case RouteMatch::PathKind::PathSeparatedPrefix:
      return std::min(match.path.size(), request.path.size());
    case RouteMatch::PathKind::Path:
    case RouteMatch::PathKind::Regex:
      return request.path_only().size();
  }
  return 0;
}

bool protected_header(std::string_view name) {
  return (!name.empty() && name[0] == ':') || name == "host";
}

}  // namespace

std::string rewritten_path(const RouteMatch& match, std::string_view prefix_rewrite,
                           const std::optional<RegexRewrite>& regex_rewrite, const HttpRequest& request) {
  if (regex_rewrite) {
    std::string_view only = request.path_only();
    std::string out = regex_rewrite->pattern.replace_all(only, regex_rewrite->substitution);
    out.append(std::string_view(request.path).substr(only.size()));
    return out;
  }
  if (!prefix_rewrite.empty()) {
    std::string out(prefix_rewrite);
    out.append(std::string_view(request.path).substr(matched_length(match, request)));
    return out;
  }
  return request.path;
}

void apply_rewrites(const RouteMatch& match, const RouteAction& action, const ClusterWeight* weighted,
                    HttpRequest& request) {
  if (action.regex_rewrite || !action.prefix_rewrite.empty()) {
    std::string path = rewritten_path(match, action.prefix_rewrite, action.regex_rewrite, request);
    if (path != request.path) {
      request.headers.set("x-envoy-original-path", request.path);
      request.path = std::move(path);
    }
  }
  const std::string& host = (weighted && !weighted->host_rewrite_literal.empty()) ? weighted->host_rewrite_literal
                                                                                  : action.host_rewrite_literal;
  if (!host.empty()) {
    if (action.append_x_forwarded_host) {
      // Appended to any existing list, as Envoy's appendToHeader.
      auto existing = request.headers.get_joined("x-forwarded-host");
      request.headers.set("x-forwarded-host", existing ? *existing + "," + request.authority : request.authority);
    }
    request.authority = host;
  }
}

void apply_header_options(std::span<const HeaderValueOption> add, std::span<const std::string> remove,
                          HeaderList& headers) {
  for (const auto& name : remove) {
    if (!protected_header(name)) headers.remove(name);
  }
  if (add.empty()) return;
  // Conditions are judged on the headers before this level's changes; overwrites land first,
  // then appends (Envoy's HeaderParser::evaluateHeaders).
  std::vector<const HeaderValueOption*> overwrite;
  std::vector<const HeaderValueOption*> append;
  for (const auto& h : add) {
    // Envoy rejects such config; the converter does too. Skipping here keeps the invariant that
    // :authority lives in HttpRequest::authority even if one slipped through.
    if (protected_header(h.key)) continue;
    if (h.value.empty() && !h.keep_empty_value) continue;
    switch (h.append_action) {
      case AppendAction::AppendIfExistsOrAdd:
        append.push_back(&h);
        break;
      case AppendAction::AddIfAbsent:
        if (!headers.contains(h.key)) append.push_back(&h);
        break;
      case AppendAction::OverwriteIfExists:
        if (headers.contains(h.key)) overwrite.push_back(&h);
        break;
      case AppendAction::OverwriteIfExistsOrAdd:
        overwrite.push_back(&h);
        break;
    }
  }
  for (const auto* h : overwrite) headers.set(h->key, h->value);
  for (const auto* h : append) headers.add(h->key, h->value);
}

namespace {

template <bool Request>
void apply_levels(const RouteConfig& config, const VirtualHost& vhost, const Route& route,
                  const ClusterWeight* weighted, HeaderList& headers) {
  // Most specific first, so the least specific (applied last) wins an overwrite.
  std::array<const HeaderMutations*, 4> levels{weighted ? &weighted->headers : nullptr, &route.headers, &vhost.headers,
                                               &config.headers};
  if (config.most_specific_header_mutations_wins) std::reverse(levels.begin(), levels.end());
  for (const HeaderMutations* m : levels) {
    if (!m) continue;
    if constexpr (Request) {
      apply_header_options(m->request_headers_to_add, m->request_headers_to_remove, headers);
    } else {
      apply_header_options(m->response_headers_to_add, m->response_headers_to_remove, headers);
    }
  }
}

}  // namespace

void apply_request_headers(const RouteConfig& config, const VirtualHost& vhost, const Route& route,
                           const ClusterWeight* weighted, HeaderList& headers) {
  apply_levels<true>(config, vhost, route, weighted, headers);
}

void apply_response_headers(const RouteConfig& config, const VirtualHost& vhost, const Route& route,
                            const ClusterWeight* weighted, HeaderList& headers) {
  apply_levels<false>(config, vhost, route, weighted, headers);
}

}  // namespace waypoint::router
