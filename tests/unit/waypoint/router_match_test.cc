// Route matching against Envoy's documented semantics (waypoint-facts §5.1): path kinds and
// regex anchoring, case sensitivity, header presence/absence/invert/range, query parameters,
// first match wins, virtual host selection.
#include <catch2/catch.hpp>

#include "tests/unit/waypoint/route_builders.h"
#include "waypoint/router/router.h"

using namespace waypoint;
using namespace waypoint::router;
using namespace waypoint::test;

TEST_CASE("string matchers: exact, prefix, suffix, contains, regex, ignore_case", "[waypoint][router][match]") {
  struct Row {
    StringMatcher m;
    std::string value;
    bool expect;
  };
  std::vector<Row> rows = {
      {exact("dog"), "dog", true},
      {exact("dog"), "Dog", false},
      {exact("dog", true), "DoG", true},
      {exact(""), "", true},
      {exact(""), "x", false},
      {prefix("v1"), "v1.2", true},
      {prefix("v1"), "xv1", false},
      {prefix("v1", true), "V1-beta", true},
      {suffix(".svc"), "a.svc", true},
      {suffix(".svc"), "a.svc.x", false},
      {suffix(".SVC", false), "a.svc", false},
      {contains("cat"), "concatenate", true},
      {contains("cat", true), "CONCATENATE", true},
      {contains("dog"), "cat", false},
      // RE2 full match: no implicit substring search.
      {regex("v[0-9]"), "v1", true},
      {regex("v[0-9]"), "v12", false},
      {regex("v[0-9]"), "xv1", false},
      {regex("(?i)dog"), "DOG", true},
      // Anchoring applies to the whole alternation, and explicit anchors are harmless.
      {regex("a|ab"), "ab", true},
      {regex("a|ab"), "abc", false},
      {regex("^v1$"), "v1", true},
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("row " << i << " value '" << rows[i].value << "'");
    CHECK(string_matches(rows[i].m, rows[i].value) == rows[i].expect);
  }
}

TEST_CASE("path matching: prefix, exact, separated prefix, anchored regex, case sensitivity",
          "[waypoint][router][match]") {
  struct Row {
    RouteMatch m;
    std::string path;
    bool expect;
  };
  std::vector<Row> rows;
  rows.push_back({match_prefix("/"), "/anything/at/all", true});
  rows.push_back({match_prefix("/api"), "/api/v1", true});
  rows.push_back({match_prefix("/api"), "/apiary", true});  // a raw prefix, not segment-aware
  rows.push_back({match_prefix("/api"), "/API/v1", false});
  rows.push_back({match_prefix("/api", false), "/API/v1", true});
  rows.push_back({match_prefix("/api"), "/ap", false});
  rows.push_back({match_path("/api"), "/api", true});
  rows.push_back({match_path("/api"), "/api?x=1", true});  // the query is not part of the path
  rows.push_back({match_path("/api"), "/api/", false});
  rows.push_back({match_path("/api"), "/API", false});
  rows.push_back({match_path("/api", false), "/API", true});
  rows.push_back({match_separated("/api"), "/api", true});
  rows.push_back({match_separated("/api"), "/api/", true});
  rows.push_back({match_separated("/api"), "/api?q", true});
  rows.push_back({match_separated("/api"), "/api/v1", true});
  rows.push_back({match_separated("/api"), "/apiary", false});
  rows.push_back({match_regex("/api/v[0-9]+"), "/api/v1", true});
  rows.push_back({match_regex("/api/v[0-9]+"), "/api/v12?q=1", true});
  rows.push_back({match_regex("/api/v[0-9]+"), "/api/v1/extra", false});  // anchored at the end
  rows.push_back({match_regex("/api/v[0-9]+"), "/x/api/v1", false});      // anchored at the start
  rows.push_back({match_regex("/a"), "/ab", false});
  {
    RouteMatch m = match_regex("/api");
    m.case_sensitive = false;  // ignored for regexes
    rows.push_back({m, "/API", false});
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("row " << i << " path '" << rows[i].path << "'");
    CHECK(route_matches(rows[i].m, request("GET", rows[i].path), 0) == rows[i].expect);
  }
}

TEST_CASE("header matchers: value, presence, absence, invert, range, multi-value, pseudo-headers",
          "[waypoint][router][match]") {
  struct Row {
    HeaderMatcher m;
    HeaderList headers;
    bool expect;
  };
  std::vector<Row> rows = {
      {header("version", exact("dog")), {{"version", "dog"}}, true},
      {header("version", exact("dog")), {{"version", "cat"}}, false},
      {header("version", exact("dog")), {}, false},
      // invert_match: a present, non-matching value matches; a missing header never does...
      {header("version", exact("dog"), true), {{"version", "cat"}}, true},
      {header("version", exact("dog"), true), {{"version", "dog"}}, false},
      {header("version", exact("dog"), true), {}, false},
      // ...unless treat_missing_header_as_empty (Istio's withoutHeaders).
      {header("version", exact("dog"), true, true), {}, true},
      {header("version", exact(""), false, true), {}, true},
      {present("x-debug"), {{"x-debug", ""}}, true},
      {present("x-debug"), {}, false},
      {present("x-debug", false), {}, true},
      {present("x-debug", false), {{"x-debug", "1"}}, false},
      {present("x-debug", true, true), {}, true},
      {present("x-debug", true, true), {{"x-debug", "1"}}, false},
      {range("x-n", 0, 10), {{"x-n", "5"}}, true},
      {range("x-n", 0, 10), {{"x-n", "0"}}, true},
      {range("x-n", 0, 10), {{"x-n", "10"}}, false},  // end exclusive
      {range("x-n", 0, 10), {{"x-n", "-3"}}, false},
      {range("x-n", 0, 10), {{"x-n", "5abc"}}, false},
      {range("x-n", 0, 10), {}, false},
      {range("x-n", 0, 10, true), {{"x-n", "10"}}, true},
      {range("x-n", -10, 0), {{"x-n", "-3"}}, true},
      // several values are joined with "," before matching
      {header("x-v", exact("a,b")), {{"x-v", "a"}, {"x-v", "b"}}, true},
      {header("x-v", exact("a")), {{"x-v", "a"}, {"x-v", "b"}}, false},
      {header("x-v", regex("v[0-9]")), {{"x-v", "v12"}}, false},
      {header("x-v", regex("v[0-9]+")), {{"x-v", "v12"}}, true},
      {header("user", exact("Jason", true)), {{"user", "jason"}}, true},
      {header(":method", exact("POST")), {}, false},
      {header(":method", exact("GET")), {}, true},
      {header(":authority", suffix(":8080")), {}, true},
      {header("host", prefix("calculate.")), {}, true},
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("row " << i << " header " << rows[i].m.name);
    CHECK(header_matches(rows[i].m, request("GET", "/", rows[i].headers)) == rows[i].expect);
  }
}

TEST_CASE("query parameter matchers", "[waypoint][router][match]") {
  auto q = [](std::string name, std::variant<std::monostate, StringMatcher> spec) {
    QueryParameterMatcher m;
    m.name = std::move(name);
    m.spec = std::move(spec);
    return m;
  };
  struct Row {
    QueryParameterMatcher m;
    std::string query;
    bool expect;
  };
  std::vector<Row> rows = {
      {q("debug", std::monostate{}), "debug", true},           {q("debug", std::monostate{}), "a=1&debug=", true},
      {q("debug", std::monostate{}), "debugger=1", false},     {q("user", exact("bob")), "user=bob", true},
      {q("user", exact("bob")), "user=alice&user=bob", false},  // the first occurrence decides
      {q("user", exact("a b")), "user=a%20b", true},            // percent-decoded
      {q("user", regex("[a-z]+")), "user=bob1", false},        {q("user", exact("bob")), "", false},
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("row " << i << " query '" << rows[i].query << "'");
    CHECK(query_parameter_matches(rows[i].m, rows[i].query) == rows[i].expect);
  }
  // Through a route: every matcher must hold, against the :path's query string.
  RouteMatch m = match_prefix("/");
  m.query_parameters.push_back(q("user", exact("bob")));
  m.query_parameters.push_back(q("debug", std::monostate{}));
  CHECK(route_matches(m, request("GET", "/x?user=bob&debug"), 0));
  CHECK_FALSE(route_matches(m, request("GET", "/x?user=bob"), 0));
}

TEST_CASE("a route needs path AND all headers AND the runtime fraction", "[waypoint][router][match]") {
  RouteMatch m = match_prefix("/calc");
  m.headers.push_back(header("version", exact("dog")));
  m.headers.push_back(header(":method", exact("POST")));
  CHECK(route_matches(m, request("POST", "/calc", {{"version", "dog"}}), 0));
  CHECK_FALSE(route_matches(m, request("GET", "/calc", {{"version", "dog"}}), 0));
  CHECK_FALSE(route_matches(m, request("POST", "/other", {{"version", "dog"}}), 0));

  RouteMatch half = match_prefix("/");
  half.runtime_fraction = FractionalPercent{50, 100};
  CHECK(route_matches(half, request("GET", "/"), 149));  // 149 % 100 = 49 < 50
  CHECK_FALSE(route_matches(half, request("GET", "/"), 150));
}

TEST_CASE("first match wins, in configuration order; no match is NR", "[waypoint][router][match]") {
  // The seeds' dark launch: version: dog -> dog-with-multi, everything else -> cat-with-plus.
  VirtualHost vh;
  vh.domains = {"*"};
  Route dog = route_to("dark-launch", match_prefix("/"), "inbound-vip|8080|http/dog-with-multi|calculate");
  dog.match.headers.push_back(header("version", exact("dog")));
  vh.routes.push_back(dog);
  vh.routes.push_back(route_to("default", match_prefix("/"), "inbound-vip|8080|http/cat-with-plus|calculate"));

  const Route* r = select_route(vh, request("GET", "/calc", {{"version", "dog"}}), 0);
  REQUIRE(r);
  CHECK(r->name == "dark-launch");
  r = select_route(vh, request("GET", "/calc"), 0);
  REQUIRE(r);
  CHECK(r->name == "default");

  // A catch-all placed first shadows everything after it.
  VirtualHost shadowed;
  shadowed.routes.push_back(route_to("catch-all", match_prefix("/"), "a"));
  shadowed.routes.push_back(route_to("specific", match_path("/calc"), "b"));
  r = select_route(shadowed, request("GET", "/calc"), 0);
  REQUIRE(r);
  CHECK(r->name == "catch-all");

  // No route: nullptr (404 NR in the data path).
  VirtualHost only_api;
  only_api.routes.push_back(route_to("api", match_prefix("/api"), "a"));
  CHECK(select_route(only_api, request("GET", "/web"), 0) == nullptr);
}

TEST_CASE("virtual host selection: exact, longest suffix, longest prefix, then *", "[waypoint][router][match]") {
  RouteConfig rc;
  auto vh = [](std::string name, std::vector<std::string> domains) {
    VirtualHost v;
    v.name = std::move(name);
    v.domains = std::move(domains);
    return v;
  };
  rc.virtual_hosts = {vh("default", {"*"}),
                      vh("prefix", {"api.*"}),
                      vh("short-suffix", {"*.com"}),
                      vh("long-suffix", {"*.example.com"}),
                      vh("exact", {"www.example.com"}),
                      vh("with-port", {"calc:8080"})};
  struct Row {
    std::string authority;
    std::string expect;
  };
  std::vector<Row> rows = {
      {"www.example.com", "exact"},       {"WWW.Example.COM", "exact"},  // case-insensitive
      {"api.example.com", "long-suffix"},                                // suffix wildcards beat prefix wildcards
      {"foo.com", "short-suffix"},        {".com", "default"},  // the wildcard stands for at least one character
      {"api.internal", "prefix"},         {"other", "default"},
      {"calc:8080", "with-port"},         {"www.example.com:80", "default"},  // the port is part of the name by default
  };
  for (const auto& row : rows) {
    INFO(row.authority);
    const VirtualHost* v = select_virtual_host(rc, row.authority);
    REQUIRE(v);
    CHECK(v->name == row.expect);
  }
  rc.ignore_port_in_host_matching = true;
  CHECK(select_virtual_host(rc, "www.example.com:80")->name == "exact");
  CHECK(select_virtual_host(rc, "[::1]:80")->name == "default");

  RouteConfig no_default;
  no_default.virtual_hosts = {vh("exact", {"a"})};
  CHECK(select_virtual_host(no_default, "b") == nullptr);
  CHECK(select(no_default, request("GET", "/", {}, "b"), 0).route == nullptr);
}
