// Terse builders for the waypoint route model in unit tests, so each table row reads like the
// Envoy config it stands for. Test-only; aborts the test (Catch2 FAIL) on a bad regex.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "waypoint/route_model.h"
#include "waypoint/router/http_message.h"

namespace waypoint::test {

inline Regex re(const std::string& pattern) {
  auto r = Regex::compile(pattern);
  if (!r.ok()) FAIL("bad regex in test: " << r.error());
  return r.value();
}

inline StringMatcher exact(std::string v, bool ignore_case = false) {
  StringMatcher m;
  m.kind = StringMatcher::Kind::Exact;
  m.value = std::move(v);
  m.ignore_case = ignore_case;
  return m;
}
inline StringMatcher prefix(std::string v, bool ignore_case = false) {
  StringMatcher m = exact(std::move(v), ignore_case);
  m.kind = StringMatcher::Kind::Prefix;
  return m;
}
inline StringMatcher suffix(std::string v, bool ignore_case = false) {
  StringMatcher m = exact(std::move(v), ignore_case);
  m.kind = StringMatcher::Kind::Suffix;
  return m;
}
inline StringMatcher contains(std::string v, bool ignore_case = false) {
  StringMatcher m = exact(std::move(v), ignore_case);
  m.kind = StringMatcher::Kind::Contains;
  return m;
}
inline StringMatcher regex(const std::string& pattern) {
  StringMatcher m;
  m.kind = StringMatcher::Kind::Regex;
  m.regex = re(pattern);
  return m;
}

inline HeaderMatcher header(std::string name, StringMatcher m, bool invert = false, bool missing_as_empty = false) {
  HeaderMatcher h;
  h.name = std::move(name);
  h.spec = std::move(m);
  h.invert_match = invert;
  h.treat_missing_header_as_empty = missing_as_empty;
  return h;
}
inline HeaderMatcher present(std::string name, bool is_present = true, bool invert = false) {
  HeaderMatcher h;
  h.name = std::move(name);
  h.spec = PresentMatch{is_present};
  h.invert_match = invert;
  return h;
}
inline HeaderMatcher range(std::string name, int64_t start, int64_t end, bool invert = false) {
  HeaderMatcher h;
  h.name = std::move(name);
  h.spec = Int64Range{start, end};
  h.invert_match = invert;
  return h;
}

inline RouteMatch match_prefix(std::string p, bool case_sensitive = true) {
  RouteMatch m;
  m.path_kind = RouteMatch::PathKind::Prefix;
  m.path = std::move(p);
  m.case_sensitive = case_sensitive;
  return m;
}
inline RouteMatch match_path(std::string p, bool case_sensitive = true) {
  RouteMatch m = match_prefix(std::move(p), case_sensitive);
  m.path_kind = RouteMatch::PathKind::Path;
  return m;
}
inline RouteMatch match_separated(std::string p) {
  RouteMatch m = match_prefix(std::move(p));
  m.path_kind = RouteMatch::PathKind::PathSeparatedPrefix;
  return m;
}
inline RouteMatch match_regex(const std::string& pattern) {
  RouteMatch m;
  m.path_kind = RouteMatch::PathKind::Regex;
  m.regex = re(pattern);
  return m;
}

inline Route route_to(std::string name, RouteMatch m, std::string cluster) {
  Route r;
  r.name = std::move(name);
  r.match = std::move(m);
  RouteAction a;
  a.cluster = std::move(cluster);
  r.action = std::move(a);
  return r;
}

inline router::HttpRequest request(std::string method, std::string path, router::HeaderList headers = {},
                                   std::string authority = "calculate.demo.svc.cluster.local:8080") {
  router::HttpRequest r;
  r.method = std::move(method);
  r.scheme = "http";
  r.authority = std::move(authority);
  r.path = std::move(path);
  r.headers = std::move(headers);
  return r;
}

inline HeaderValueOption hv(std::string key, std::string value,
                            AppendAction action = AppendAction::AppendIfExistsOrAdd) {
  HeaderValueOption o;
  o.key = std::move(key);
  o.value = std::move(value);
  o.append_action = action;
  return o;
}

}  // namespace waypoint::test
