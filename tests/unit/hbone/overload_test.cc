// Overload manager policy (hbone/overload.h) and its env value parser.
#include <catch2/catch.hpp>

#include "common/admin/metrics.h"
#include "hbone/connection_stats.h"
#include "hbone/overload.h"
#include "ztunnel/config.h"

#include <map>
#include <optional>

TEST_CASE("HBONE_BUFFER_BUDGET parses plain bytes and binary suffixes") {
  CHECK(hbone::parse_buffer_budget("0").value() == 0);
  CHECK(hbone::parse_buffer_budget("1048576").value() == 1048576);
  CHECK(hbone::parse_buffer_budget("32Mi").value() == 32ull << 20);
  CHECK(hbone::parse_buffer_budget("64KiB").value() == 64ull << 10);
  CHECK(hbone::parse_buffer_budget("1Gi").value() == 1ull << 30);
  for (const char* bad : {"", "Mi", "12MB", "-1", "1.5Gi", "99999999999999999999", "18446744073709551615Gi"}) {
    INFO(bad);
    auto r = hbone::parse_buffer_budget(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().find("HBONE_BUFFER_BUDGET") != std::string::npos);
  }
}

TEST_CASE("overload: heavy holders pause at 3/4, shed at the budget, light ones never") {
  hbone::Overload o;
  o.set_budget(100 << 20);
  // Two connections: one holds 70 MiB, one 2 MiB (total 72 MiB, under 75 MiB soft).
  o.account(0, 70 << 20);
  o.account(0, 2 << 20);
  CHECK(o.holders() == 2);
  CHECK(o.buffered() == 72 << 20);
  CHECK_FALSE(o.should_pause(70 << 20));
  // Past the soft limit: only the one above its fair share (75/2 MiB) pauses.
  o.account(2 << 20, 4 << 20);  // the light one grows to 6 MiB -> total 76 MiB
  CHECK(o.should_pause(70 << 20));
  CHECK_FALSE(o.should_pause(6 << 20));
  CHECK_FALSE(o.should_shed(70 << 20));
  // Past the budget: the heavy one sheds, the light one does not.
  o.account(70ull << 20, 30 << 20);  // heavy now 100 MiB, total 106 MiB
  CHECK(o.should_shed(100 << 20));
  CHECK_FALSE(o.should_shed(6 << 20));
  // Resume only well below the soft limit (hysteresis), or once under half the fair share.
  o.account(100ull << 20, -(30ll << 20));  // total 76 MiB
  CHECK_FALSE(o.should_resume(70 << 20));
  o.account(70ull << 20, -(10ll << 20));  // total 66 MiB: > 5/8 (62.5) still
  CHECK_FALSE(o.should_resume(60 << 20));
  o.account(60ull << 20, -(10ll << 20));  // total 56 MiB
  CHECK(o.should_resume(50 << 20));
  // Everything released: no holders left.
  o.account(50ull << 20, -(50ll << 20));
  o.account(6ull << 20, -(6ll << 20));
  CHECK(o.holders() == 0);
  CHECK(o.buffered() == 0);
}

TEST_CASE("overload: budget 0 turns the manager off") {
  hbone::Overload o;
  o.set_budget(0);
  o.account(0, 1ll << 40);
  CHECK_FALSE(o.should_pause(1ull << 40));
  CHECK_FALSE(o.should_shed(1ull << 40));
  CHECK(o.should_resume(1ull << 40));
}

TEST_CASE("connection stats render every family with Istio-style names") {
  common::metrics::Registry r;
  hbone::register_connection_stats(r);
  auto before = hbone::connection_stats().timeouts[hbone::ConnectionStats::kPreface].load();
  hbone::ConnectionStats::bump(hbone::connection_stats().timeouts[hbone::ConnectionStats::kPreface]);
  auto text = r.render();
  CHECK(text.find("istio_hbone_timeouts_total{phase=\"preface\"} " + std::to_string(before + 1)) != std::string::npos);
  for (const char* s : {"istio_hbone_handshake_failures_total{role=\"server\",reason=\"timeout\"}",
                        "istio_hbone_abuse_closes_total{reason=\"slow_headers\"}",
                        "istio_hbone_overload_actions_total{action=\"reset_stream\"}", "\nistio_hbone_buffered_bytes ",
                        "\nistio_hbone_buffered_bytes_limit "}) {
    INFO(s);
    CHECK(text.find(s) != std::string::npos);
  }
}

TEST_CASE("ztunnel config: HBONE_BUFFER_BUDGET default, value, and a bad value naming the variable") {
  auto env = [](std::map<std::string, std::string> vars) -> common::env::EnvLookup {
    return [vars](std::string_view n) -> std::optional<std::string> {
      auto it = vars.find(std::string(n));
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  };
  auto def = ztunnel::load_config(env({}), 4);
  REQUIRE(def);
  CHECK(def.value().hbone_buffer_budget == hbone::kDefaultBufferBudget);
  auto set = ztunnel::load_config(env({{"HBONE_BUFFER_BUDGET", "64Mi"}}), 4);
  REQUIRE(set);
  CHECK(set.value().hbone_buffer_budget == 64ull << 20);
  auto bad = ztunnel::load_config(env({{"HBONE_BUFFER_BUDGET", "lots"}}), 4);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("HBONE_BUFFER_BUDGET") != std::string::npos);
}
