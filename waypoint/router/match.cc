// Route and virtual-host matching with Envoy's semantics (waypoint-facts §5.1).
#include <algorithm>

#include "waypoint/router/router.h"
#include "waypoint/router/strings.h"

namespace waypoint::router {

bool string_matches(const StringMatcher& m, std::string_view value) {
  switch (m.kind) {
    case StringMatcher::Kind::Exact:
      return m.ignore_case ? iequals(value, m.value) : value == m.value;
    case StringMatcher::Kind::Prefix:
      return m.ignore_case ? istarts_with(value, m.value) : value.starts_with(m.value);
    case StringMatcher::Kind::Suffix:
      return m.ignore_case ? iends_with(value, m.value) : value.ends_with(m.value);
    case StringMatcher::Kind::Contains:
      return m.ignore_case ? icontains(value, m.value) : value.find(m.value) != std::string_view::npos;
    case StringMatcher::Kind::Regex:
      return m.regex.full_match(value);
  }
  return false;
}

namespace {

// Envoy's HeaderUtility::matchHeaders given the (joined) value or its absence.
bool header_value_matches(const HeaderMatcher& m, const std::optional<std::string>& value) {
  const PresentMatch* present = std::get_if<PresentMatch>(&m.spec);
  if (!value && !m.treat_missing_header_as_empty) {
    // A missing header fails every value matcher whatever invert_match says; only presence
    // matchers can succeed on absence.
    if (!present) return false;
    return m.invert_match ? present->present : !present->present;
  }
  std::string_view v = value ? std::string_view(*value) : std::string_view();
  bool match = false;
  if (present) {
    match = present->present;
  } else if (const auto* sm = std::get_if<StringMatcher>(&m.spec)) {
    match = string_matches(*sm, v);
  } else if (const auto* range = std::get_if<Int64Range>(&m.spec)) {
    auto n = parse_int64(v);
    match = n && *n >= range->start && *n < range->end;
  }
  return match != m.invert_match;
}

bool path_matches(const RouteMatch& m, const HttpRequest& request) {
  switch (m.path_kind) {
    case RouteMatch::PathKind::Prefix:
      // Current Envoy (PathMatcher) strips "?query" and "#fragment" before every path matcher,
      // prefix included; older Envoy compared the raw :path. Only prefixes holding '?' differ.
      return m.case_sensitive ? request.path_only().starts_with(m.path) : istarts_with(request.path_only(), m.path);
    case RouteMatch::PathKind::Path: {
      std::string_view p = request.path_only();
      return m.case_sensitive ? p == m.path : iequals(p, m.path);
    }
    case RouteMatch::PathKind::PathSeparatedPrefix: {
      std::string_view p = request.path_only();
      bool prefix = m.case_sensitive ? p.starts_with(m.path) : istarts_with(p, m.path);
      return prefix && (p.size() == m.path.size() || p[m.path.size()] == '/');
    }
    case RouteMatch::PathKind::Regex:
      // Case sensitivity does not apply to regexes (the pattern decides, e.g. "(?i)").
      return m.regex.full_match(request.path_only());
  }
  return false;
}

}  // namespace

bool header_matches(const HeaderMatcher& m, const HttpRequest& request) {
  return header_value_matches(m, request.header_joined(m.name));
}

bool header_matches(const HeaderMatcher& m, const HeaderList& headers) {
  return header_value_matches(m, headers.get_joined(m.name));
}

bool headers_match(std::span<const HeaderMatcher> matchers, const HttpRequest& request) {
  return std::all_of(matchers.begin(), matchers.end(),
                     [&](const HeaderMatcher& m) { return header_matches(m, request); });
}

bool headers_match(std::span<const HeaderMatcher> matchers, const HeaderList& headers) {
  return std::all_of(matchers.begin(), matchers.end(),
                     [&](const HeaderMatcher& m) { return header_matches(m, headers); });
}

bool query_parameter_matches(const QueryParameterMatcher& m, std::string_view query) {
  // The first occurrence decides; names and values are compared percent-decoded.
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view raw_name = pair.substr(0, eq);
    std::string_view raw_value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (percent_decode(raw_name) != m.name) continue;
    const auto* sm = std::get_if<StringMatcher>(&m.spec);
    if (!sm) return true;  // present_match
    return string_matches(*sm, percent_decode(raw_value));
  }
  return false;
}

bool route_matches(const RouteMatch& match, const HttpRequest& request, uint64_t random_value) {
  if (!path_matches(match, request)) return false;
  if (!headers_match(match.headers, request)) return false;
  if (!match.query_parameters.empty()) {
    std::string_view query = request.query();
    for (const auto& q : match.query_parameters) {
      if (!query_parameter_matches(q, query)) return false;
    }
  }
  if (match.runtime_fraction && !fraction_enabled(*match.runtime_fraction, random_value)) return false;
  return true;
}

const VirtualHost* select_virtual_host(const RouteConfig& config, std::string_view authority) {
  std::string host = to_lower(authority);
  if (config.ignore_port_in_host_matching) {
    size_t sep = port_separator(host);
    if (sep != std::string::npos) host.resize(sep);
  }
  const VirtualHost* exact = nullptr;
  const VirtualHost* suffix = nullptr;
  size_t suffix_len = 0;
  const VirtualHost* prefix = nullptr;
  size_t prefix_len = 0;
  const VirtualHost* any = nullptr;
  for (const auto& vh : config.virtual_hosts) {
    for (const auto& d : vh.domains) {
      if (d.empty()) continue;
      if (d == "*") {
        if (!any) any = &vh;
      } else if (d.front() == '*') {
        std::string_view s = std::string_view(d).substr(1);
        // The wildcard stands for at least one character ("*.foo.com" does not match ".foo.com").
        if (host.size() > s.size() && std::string_view(host).ends_with(s) && (!suffix || s.size() > suffix_len)) {
          suffix = &vh;
          suffix_len = s.size();
        }
      } else if (d.back() == '*') {
        std::string_view p = std::string_view(d).substr(0, d.size() - 1);
        if (host.size() > p.size() && std::string_view(host).starts_with(p) && (!prefix || p.size() > prefix_len)) {
          prefix = &vh;
          prefix_len = p.size();
        }
      } else if (d == host) {
        if (!exact) exact = &vh;
      }
    }
  }
  if (exact) return exact;
  if (suffix) return suffix;
  if (prefix) return prefix;
  return any;
}

const Route* select_route(const VirtualHost& vhost, const HttpRequest& request, uint64_t random_value) {
  for (const auto& route : vhost.routes) {
    if (route_matches(route.match, request, random_value)) return &route;
  }
  return nullptr;
}

RouteSelection select(const RouteConfig& config, const HttpRequest& request, uint64_t random_value) {
  RouteSelection sel;
  sel.vhost = select_virtual_host(config, request.authority);
  if (sel.vhost) sel.route = select_route(*sel.vhost, request, random_value);
  return sel;
}

}  // namespace waypoint::router
