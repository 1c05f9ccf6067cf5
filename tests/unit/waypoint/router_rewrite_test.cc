// Path and host rewrites, header mutations in Envoy's order (waypoint-facts §5.6), redirects and
// direct responses.
#include <catch2/catch.hpp>

#include "tests/unit/waypoint/route_builders.h"
#include "waypoint/router/router.h"

using namespace waypoint;
using namespace waypoint::router;
using namespace waypoint::test;

namespace {

std::vector<std::string> values(const HeaderList& h, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& f : h.fields()) {
    if (f.name == name) out.push_back(f.value);
  }
  return out;
}

RegexRewrite regex_rewrite(const std::string& pattern, std::string substitution) {
  return RegexRewrite{re(pattern), std::move(substitution)};
}

}  // namespace

TEST_CASE("path rewrites: prefix, exact, regex route, regex substitution with back-references",
          "[waypoint][router][rewrite]") {
  struct Row {
    RouteMatch match;
    std::string prefix_rewrite;
    std::optional<RegexRewrite> regex;
    std::string path;
    std::string expect;
  };
  std::vector<Row> rows;
  rows.push_back({match_prefix("/api"), "/v2", std::nullopt, "/api/calc?x=1", "/v2/calc?x=1"});
  rows.push_back({match_prefix("/api", false), "/v2", std::nullopt, "/API/calc", "/v2/calc"});
  rows.push_back({match_prefix("/api/"), "/", std::nullopt, "/api/calc", "/calc"});
  rows.push_back({match_path("/old"), "/new", std::nullopt, "/old?q", "/new?q"});
  rows.push_back({match_regex("/calc/[0-9]+"), "/x", std::nullopt, "/calc/12?y", "/x?y"});
  // Envoy's documented examples for regex_rewrite.
  rows.push_back({match_prefix("/"), "", regex_rewrite("^/service/([^/]+)(/.*)$", "\\2/instance/\\1"),
                  "/service/foo/v1/api?q=1", "/v1/api/instance/foo?q=1"});
  rows.push_back({match_prefix("/"), "", regex_rewrite("one", "two"), "/xxx/one/yyy/one/zzz", "/xxx/two/yyy/two/zzz"});
  rows.push_back({match_prefix("/"), "", regex_rewrite("^/nomatch$", "/x"), "/keep", "/keep"});
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("row " << i << " " << rows[i].path);
    RouteAction a;
    a.cluster = "c";
    a.prefix_rewrite = rows[i].prefix_rewrite;
    a.regex_rewrite = rows[i].regex;
    auto req = request("GET", rows[i].path);
    apply_rewrites(rows[i].match, a, nullptr, req);
    CHECK(req.path == rows[i].expect);
    if (rows[i].expect != rows[i].path) {
      CHECK(req.headers.get("x-envoy-original-path") == std::optional<std::string_view>(rows[i].path));
    } else {
      CHECK_FALSE(req.headers.contains("x-envoy-original-path"));
    }
  }
}

TEST_CASE("host rewrite: literal, per weighted cluster, x-forwarded-host", "[waypoint][router][rewrite]") {
  RouteAction a;
  a.cluster = "c";
  a.host_rewrite_literal = "backend.internal";
  auto req = request("GET", "/", {}, "calculate:8080");
  apply_rewrites(match_prefix("/"), a, nullptr, req);
  CHECK(req.authority == "backend.internal");
  CHECK_FALSE(req.headers.contains("x-forwarded-host"));

  ClusterWeight cw;
  cw.name = "dog";
  cw.host_rewrite_literal = "dog.internal";
  a.append_x_forwarded_host = true;
  req = request("GET", "/", {{"x-forwarded-host", "edge.example.com"}}, "calculate:8080");
  apply_rewrites(match_prefix("/"), a, &cw, req);
  CHECK(req.authority == "dog.internal");
  CHECK(req.headers.get("x-forwarded-host") == std::optional<std::string_view>("edge.example.com,calculate:8080"));
}

TEST_CASE("header mutation levels: weighted cluster, route, vhost, route config; least specific wins",
          "[waypoint][router][headers]") {
  RouteConfig rc;
  VirtualHost vh;
  Route route = route_to("r", match_prefix("/"), "c");
  ClusterWeight cw;
  const auto ow = AppendAction::OverwriteIfExistsOrAdd;
  cw.headers.request_headers_to_add = {hv("x-level", "cluster", ow), hv("x-trail", "cluster")};
  route.headers.request_headers_to_add = {hv("x-level", "route", ow), hv("x-trail", "route")};
  vh.headers.request_headers_to_add = {hv("x-level", "vhost", ow), hv("x-trail", "vhost")};
  rc.headers.request_headers_to_add = {hv("x-level", "config", ow), hv("x-trail", "config")};

  HeaderList h;
  apply_request_headers(rc, vh, route, &cw, h);
  CHECK(values(h, "x-level") == std::vector<std::string>{"config"});
  CHECK(values(h, "x-trail") == std::vector<std::string>{"cluster", "route", "vhost", "config"});

  rc.most_specific_header_mutations_wins = true;
  h = {};
  apply_request_headers(rc, vh, route, &cw, h);
  CHECK(values(h, "x-level") == std::vector<std::string>{"cluster"});
  CHECK(values(h, "x-trail") == std::vector<std::string>{"config", "vhost", "route", "cluster"});

  // Response side, same order; no weighted cluster.
  rc.most_specific_header_mutations_wins = false;
  route.headers.response_headers_to_add = {hv("x-resp", "route", ow)};
  vh.headers.response_headers_to_add = {hv("x-resp", "vhost", ow)};
  vh.headers.response_headers_to_remove = {"server"};
  HeaderList resp{{"server", "app"}, {"x-resp", "app"}};
  apply_response_headers(rc, vh, route, nullptr, resp);
  CHECK(values(resp, "x-resp") == std::vector<std::string>{"vhost"});
  CHECK_FALSE(resp.contains("server"));
}

TEST_CASE("append actions, removal before add, empty values, protected headers", "[waypoint][router][headers]") {
  struct Row {
    std::string name;
    HeaderList before;
    std::vector<HeaderValueOption> add;
    std::vector<std::string> remove;
    std::vector<std::string> expect_x;
  };
  using A = AppendAction;
  std::vector<Row> rows = {
      {"append adds a value", {{"x", "1"}}, {hv("x", "2", A::AppendIfExistsOrAdd)}, {}, {"1", "2"}},
      {"add-if-absent keeps existing", {{"x", "1"}}, {hv("x", "2", A::AddIfAbsent)}, {}, {"1"}},
      {"add-if-absent adds", {}, {hv("x", "2", A::AddIfAbsent)}, {}, {"2"}},
      {"overwrite-if-exists skips absent", {}, {hv("x", "2", A::OverwriteIfExists)}, {}, {}},
      {"overwrite-if-exists replaces", {{"x", "1"}, {"x", "3"}}, {hv("x", "2", A::OverwriteIfExists)}, {}, {"2"}},
      {"overwrite-or-add adds", {}, {hv("x", "2", A::OverwriteIfExistsOrAdd)}, {}, {"2"}},
      {"removal runs before adds", {{"x", "old"}}, {hv("x", "new")}, {"x"}, {"new"}},
      // Conditions see the headers as they were before this level: both entries apply.
      {"conditions judged before the level", {}, {hv("x", "1"), hv("x", "2", A::AddIfAbsent)}, {}, {"1", "2"}},
      // Overwrites land before appends inside one level.
      {"overwrite then append", {{"x", "0"}}, {hv("x", "a"), hv("x", "o", A::OverwriteIfExistsOrAdd)}, {}, {"o", "a"}},
      {"empty value skipped", {}, {hv("x", "")}, {}, {}},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    HeaderList h = row.before;
    apply_header_options(row.add, row.remove, h);
    CHECK(values(h, "x") == row.expect_x);
  }
  HeaderValueOption keep = hv("x", "");
  keep.keep_empty_value = true;
  HeaderList h;
  apply_header_options(std::vector<HeaderValueOption>{keep}, {}, h);
  CHECK(values(h, "x") == std::vector<std::string>{""});

  HeaderList no_pseudo;
  apply_header_options(std::vector<HeaderValueOption>{hv(":authority", "evil"), hv("host", "evil"), hv("x", "1")}, {},
                       no_pseudo);
  CHECK_FALSE(no_pseudo.contains(":authority"));
  CHECK_FALSE(no_pseudo.contains("host"));
  CHECK(no_pseudo.contains("x"));

  HeaderList protected_headers{{":path", "/"}, {"host", "a"}, {"x", "1"}};
  apply_header_options({}, std::vector<std::string>{":path", "host", "x"}, protected_headers);
  CHECK(protected_headers.contains(":path"));
  CHECK(protected_headers.contains("host"));
  CHECK_FALSE(protected_headers.contains("x"));
}

TEST_CASE("redirects build Envoy's Location", "[waypoint][router][redirect]") {
  auto redirect = [](auto&& fill) {
    RedirectAction r;
    fill(r);
    return r;
  };
  struct Row {
    std::string name;
    RedirectAction r;
    RouteMatch match;
    std::string authority;
    std::string path;
    uint16_t status;
    std::string location;
  };
  std::vector<Row> rows = {
      {"https upgrade", redirect([](RedirectAction& r) { r.scheme = "https"; }), match_prefix("/"), "a.com", "/p?q",
       301, "https://a.com/p?q"},
      {"default port of the old scheme dropped", redirect([](RedirectAction& r) { r.scheme = "https"; }),
       match_prefix("/"), "a.com:80", "/p", 301, "https://a.com/p"},
      {"other ports kept", redirect([](RedirectAction& r) { r.scheme = "https"; }), match_prefix("/"), "a.com:8080",
       "/p", 301, "https://a.com:8080/p"},
      {"host", redirect([](RedirectAction& r) { r.host = "b.com"; }), match_prefix("/"), "a.com:8080", "/p", 301,
       "http://b.com/p"},
      {"port replaces the request's", redirect([](RedirectAction& r) { r.port = 8443; }), match_prefix("/"),
       "a.com:8080", "/p", 301, "http://a.com:8443/p"},
      {"path keeps the query", redirect([](RedirectAction& r) {
         r.path_kind = RedirectAction::PathKind::Path;
         r.path = "/new";
       }),
       match_prefix("/"), "a", "/p?q=1", 301, "http://a/new?q=1"},
      {"strip_query", redirect([](RedirectAction& r) {
         r.path_kind = RedirectAction::PathKind::Path;
         r.path = "/new";
         r.strip_query = true;
       }),
       match_prefix("/"), "a", "/p?q=1", 301, "http://a/new"},
      {"a query in the new path wins and survives strip_query", redirect([](RedirectAction& r) {
         r.path_kind = RedirectAction::PathKind::Path;
         r.path = "/new?x=2";
         r.strip_query = true;
       }),
       match_prefix("/"), "a", "/p?q=1", 301, "http://a/new?x=2"},
      {"prefix rewrite of the matched prefix", redirect([](RedirectAction& r) {
         r.path_kind = RedirectAction::PathKind::PrefixRewrite;
         r.path = "/new";
         r.response_code = 308;
       }),
       match_prefix("/old"), "a", "/old/x?b", 308, "http://a/new/x?b"},
      {"regex rewrite", redirect([](RedirectAction& r) {
         r.path_kind = RedirectAction::PathKind::RegexRewrite;
         r.regex_rewrite = RegexRewrite{re("^/v1/(.*)$"), "/v2/\\1"};
         r.response_code = 302;
       }),
       match_prefix("/"), "a", "/v1/calc", 302, "http://a/v2/calc"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    LocalResponse resp = build_redirect(row.r, row.match, request("GET", row.path, {}, row.authority));
    CHECK(resp.status == row.status);
    CHECK(resp.body.empty());
    CHECK(resp.headers.get("location") == std::optional<std::string_view>(row.location));
  }
  // x-forwarded-proto (what the client used) decides which default port is dropped.
  RedirectAction to_http;
  to_http.scheme = "http";
  LocalResponse resp =
      build_redirect(to_http, match_prefix("/"), request("GET", "/", {{"x-forwarded-proto", "https"}}, "a:443"));
  CHECK(resp.headers.get("location") == std::optional<std::string_view>("http://a/"));
}

TEST_CASE("direct responses", "[waypoint][router][direct]") {
  LocalResponse r = build_direct_response(DirectResponseAction{503, "calculate is down"});
  CHECK(r.status == 503);
  CHECK(r.body == "calculate is down");
  CHECK(r.headers.get("content-type") == std::optional<std::string_view>("text/plain"));
  LocalResponse empty = build_direct_response(DirectResponseAction{204, ""});
  CHECK(empty.status == 204);
  CHECK_FALSE(empty.headers.contains("content-type"));
}
