// common/env.h: upstream-style parsing, and errors that name the variable.
#include <catch2/catch.hpp>

#include <map>

#include "common/env.h"

using namespace common::env;
using namespace std::chrono_literals;

namespace {

EnvLookup fake(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view n) -> std::optional<std::string> {
    auto it = vars.find(std::string(n));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST_CASE("parse_bool accepts true/false/1/0 only", "[env]") {
  CHECK(parse_bool("true").value());
  CHECK(parse_bool("TRUE").value());
  CHECK(parse_bool("1").value());
  CHECK_FALSE(parse_bool("false").value());
  CHECK_FALSE(parse_bool("0").value());
  CHECK_FALSE(parse_bool("yes").ok());
  CHECK_FALSE(parse_bool(" true").ok());
  CHECK_FALSE(parse_bool("2").ok());
}

TEST_CASE("parse_unsigned rejects signs, spaces and overflow", "[env]") {
  CHECK(parse_unsigned("0").value() == 0);
  CHECK(parse_unsigned("1337").value() == 1337);
  CHECK(parse_unsigned("18446744073709551615").value() == UINT64_MAX);
  CHECK_FALSE(parse_unsigned("18446744073709551616").ok());
  CHECK_FALSE(parse_unsigned("-1").ok());
  CHECK_FALSE(parse_unsigned("+1").ok());
  CHECK_FALSE(parse_unsigned("1 ").ok());
  CHECK_FALSE(parse_unsigned("").ok());
  CHECK_FALSE(parse_unsigned("0x10").ok());
}

TEST_CASE("parse_duration handles upstream forms", "[env]") {
  CHECK(parse_duration("500ms").value() == 500ms);
  CHECK(parse_duration("10s").value() == 10s);
  CHECK(parse_duration("5m").value() == 5min);
  CHECK(parse_duration("24h").value() == 24h);
  CHECK(parse_duration("1h30m").value() == 90min);
  CHECK(parse_duration("1m30s500ms").value() == 90500ms);
  CHECK(parse_duration("1.5s").value() == 1500ms);
  CHECK(parse_duration("30").value() == 30s);  // bare number = seconds
  CHECK(parse_duration("0").value() == 0ms);
  CHECK(parse_duration("2d").value() == 48h);
  CHECK(parse_duration("1500us").value() == 1ms);  // truncated to milliseconds
  CHECK(parse_duration("2000000ns").value() == 2ms);
  CHECK_FALSE(parse_duration("").ok());
  CHECK_FALSE(parse_duration("s").ok());
  CHECK_FALSE(parse_duration("10x").ok());
  CHECK_FALSE(parse_duration("-5s").ok());
  CHECK_FALSE(parse_duration("10 s").ok());
  CHECK_FALSE(parse_duration("1h30").ok());  // trailing number without a unit
  CHECK_FALSE(parse_duration("999999999999999999999h").ok());
  CHECK_FALSE(parse_duration(".s").ok());
}

TEST_CASE("readers use defaults when unset or empty", "[env]") {
  auto env = fake({{"EMPTY", ""}, {"B", "false"}, {"N", "42"}, {"D", "3s"}, {"S", "x"}});
  CHECK(get_bool(env, "MISSING", true).value());
  CHECK(get_bool(env, "EMPTY", true).value());
  CHECK_FALSE(get_bool(env, "B", true).value());
  CHECK_FALSE(get_bool(env, "MISSING").value().has_value());
  CHECK(get_unsigned(env, "N", 7).value() == 42);
  CHECK(get_unsigned(env, "MISSING", 7).value() == 7);
  CHECK(get_duration(env, "D", 1s).value() == 3s);
  CHECK(get_duration(env, "EMPTY", 1s).value() == 1s);
  CHECK(get_string(env, "S", "d") == "x");
  CHECK(get_string(env, "MISSING", "d") == "d");
  // Strings keep "" as a value (XDS_ADDRESS="" means "disabled").
  CHECK(get_string(env, "EMPTY", "d").empty());
  CHECK(get_string(env, "EMPTY").value().empty());
}

TEST_CASE("malformed values fail with the variable's name and value", "[env]") {
  auto env = fake({{"MY_BOOL", "maybe"}, {"MY_NUM", "12a"}, {"MY_DUR", "10 parsecs"}, {"MY_BIG", "70000"}});
  auto b = get_bool(env, "MY_BOOL", false);
  REQUIRE_FALSE(b.ok());
  CHECK_THAT(b.error(), Catch::Contains("MY_BOOL") && Catch::Contains("maybe"));
  auto n = get_unsigned(env, "MY_NUM", 0);
  REQUIRE_FALSE(n.ok());
  CHECK_THAT(n.error(), Catch::Contains("MY_NUM") && Catch::Contains("12a"));
  auto d = get_duration(env, "MY_DUR", 1s);
  REQUIRE_FALSE(d.ok());
  CHECK_THAT(d.error(), Catch::Contains("MY_DUR"));
  auto m = get_unsigned_max(env, "MY_BIG", 0, 65535);
  REQUIRE_FALSE(m.ok());
  CHECK_THAT(m.error(), Catch::Contains("MY_BIG") && Catch::Contains("65535"));
  CHECK(get_unsigned_max(env, "MISSING", 5, 65535).value() == 5);
}

TEST_CASE("process_env reads the real environment", "[env]") {
  ::setenv("AMBIENT_ENV_TEST_VAR", "hello", 1);
  auto env = process_env();
  CHECK(env("AMBIENT_ENV_TEST_VAR").value() == "hello");
  ::unsetenv("AMBIENT_ENV_TEST_VAR");
  CHECK_FALSE(env("AMBIENT_ENV_TEST_VAR").has_value());
}
