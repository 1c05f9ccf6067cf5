// The router's building blocks: compiled regexes and the codec-neutral request/headers.
#include <catch2/catch.hpp>

#include "waypoint/regex.h"
#include "waypoint/router/http_message.h"

using namespace waypoint;
using namespace waypoint::router;

TEST_CASE("Regex: compile errors are values; full match; substitutions checked", "[waypoint][router][regex]") {
  auto bad = Regex::compile("/api/(v1");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("/api/(v1") != std::string::npos);
  // RE2 rejects backreferences in patterns (Envoy's safe_regex does too).
  CHECK_FALSE(Regex::compile("(a)\\1").ok());

  auto r = Regex::compile("/v([0-9]+)/(.*)");
  REQUIRE(r.ok());
  CHECK(r->full_match("/v1/calc"));
  CHECK_FALSE(r->full_match("x/v1/calc"));
  CHECK(r->replace_all("/v1/calc", "/calc/\\1/\\2") == "/calc/1/calc");
  CHECK(r->check_substitution("\\2-\\1").ok());
  CHECK_FALSE(r->check_substitution("\\3").ok());

  Regex empty;
  CHECK_FALSE(empty.valid());
  CHECK_FALSE(empty.full_match(""));
}

TEST_CASE("HeaderList and HttpRequest accessors", "[waypoint][router][http]") {
  HeaderList h{{"a", "1"}, {"b", "2"}, {"a", "3"}};
  CHECK(h.get("a") == std::optional<std::string_view>("1"));
  CHECK(h.get_joined("a") == std::optional<std::string>("1,3"));
  CHECK_FALSE(h.get_joined("c"));
  h.set("a", "9");
  CHECK(h.size() == 2);
  CHECK(h.fields()[0].name == "a");  // the first occurrence keeps its place
  CHECK(h.fields()[0].value == "9");
  CHECK(h.remove("b") == 1);
  CHECK(h.remove("b") == 0);
  h.set("new", "x");
  CHECK(h.fields().back().name == "new");

  HttpRequest req;
  req.method = "GET";
  req.authority = "calc:8080";
  req.path = "/a/b?x=1&y=2#frag";
  CHECK(req.path_only() == "/a/b");
  CHECK(req.query() == "x=1&y=2");
  CHECK(req.header_joined(":method") == std::optional<std::string>("GET"));
  CHECK(req.header_joined("host") == std::optional<std::string>("calc:8080"));
  CHECK_FALSE(req.header_joined(":status"));
  req.path = "/plain";
  CHECK(req.query().empty());
  CHECK(req.path_only() == "/plain");
}
