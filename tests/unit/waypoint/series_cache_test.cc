// Telemetry::record's per-thread series cache: equal records under one config snapshot share a
// series without rebuilding labels; anything in the label key that differs gets its own series;
// a new snapshot (whose objects may sit at the old addresses) never reuses the old label sets.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "common/admin/metrics.h"
#include "waypoint/telemetry.h"

using namespace waypoint;

namespace {

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The istio_requests_total sample line that carries `label`, or "" when none does.
std::string requests_line(const common::metrics::Registry& reg, const std::string& label) {
  const std::string text = reg.render();
  size_t at = 0;
  while ((at = text.find("istio_requests_total{", at)) != std::string::npos) {
    const size_t end = text.find('\n', at);
    std::string line = text.substr(at, end - at);
    if (line.find(label) != std::string::npos) return line;
    at = end;
  }
  return "";
}

RequestRecord record_for(const ztunnel::Workload* src, std::shared_ptr<const void> scope, uint16_t code = 200) {
  RequestRecord r;
  r.src = src;
  r.src_identity = src->identity();
  r.service_host = "calc.default.svc.cluster.local";
  r.response_code = code;
  r.scope = std::move(scope);
  return r;
}

}  // namespace

TEST_CASE("telemetry: equal records under one snapshot count in one series") {
  common::metrics::Registry reg;
  Telemetry t(reg);
  ztunnel::Workload w;
  w.name = "sleep-1";
  w.ns = "default";
  auto scope = std::make_shared<int>(1);
  for (int i = 0; i < 3; ++i) t.record(record_for(&w, scope));
  t.record(record_for(&w, scope, 503));
  const std::string ok = requests_line(reg, "response_code=\"200\"");
  REQUIRE_FALSE(ok.empty());
  CHECK(ok.find("source_workload=\"sleep-1\"") != std::string::npos);
  CHECK(ok.substr(ok.rfind(' ') + 1) == "3");
  const std::string failed = requests_line(reg, "response_code=\"503\"");
  REQUIRE_FALSE(failed.empty());
  CHECK(failed.substr(failed.rfind(' ') + 1) == "1");
  CHECK(count_of(reg.render(), "istio_requests_total{") == 2);
}

TEST_CASE("telemetry: a new snapshot with an object at the same address gets its own labels") {
  common::metrics::Registry reg;
  Telemetry t(reg);
  ztunnel::Workload w;
  w.name = "sleep-1";
  w.ns = "default";
  auto first = std::make_shared<int>(1);
  t.record(record_for(&w, first));
  // The next snapshot's workload lives where the old one did, with other labels.
  w.name = "sleep-2";
  auto second = std::make_shared<int>(2);
  t.record(record_for(&w, second));
  CHECK_FALSE(requests_line(reg, "source_workload=\"sleep-1\"").empty());
  CHECK_FALSE(requests_line(reg, "source_workload=\"sleep-2\"").empty());
  // Without a scope nothing is reused either.
  w.name = "sleep-3";
  t.record(record_for(&w, nullptr));
  CHECK_FALSE(requests_line(reg, "source_workload=\"sleep-3\"").empty());
}

TEST_CASE("telemetry: two instances on one thread keep their own series") {
  common::metrics::Registry reg_a, reg_b;
  Telemetry a(reg_a), b(reg_b);
  ztunnel::Workload w;
  w.name = "sleep-1";
  w.ns = "default";
  auto scope = std::make_shared<int>(1);
  a.record(record_for(&w, scope));
  b.record(record_for(&w, scope));
  b.record(record_for(&w, scope));
  const std::string la = requests_line(reg_a, "sleep-1"), lb = requests_line(reg_b, "sleep-1");
  REQUIRE_FALSE(la.empty());
  REQUIRE_FALSE(lb.empty());
  CHECK(la.substr(la.rfind(' ') + 1) == "1");
  CHECK(lb.substr(lb.rfind(' ') + 1) == "2");
}

TEST_CASE("telemetry: more label sets than the cache holds are all counted right") {
  common::metrics::Registry reg;
  Telemetry t(reg);
  ztunnel::Workload w;
  w.name = "sleep-1";
  w.ns = "default";
  auto scope = std::make_shared<int>(1);
  // 40 distinct codes, twice each in two passes: entries get evicted between the passes.
  for (int pass = 0; pass < 2; ++pass)
    for (uint16_t code = 200; code < 240; ++code) t.record(record_for(&w, scope, code));
  CHECK(count_of(reg.render(), "istio_requests_total{") == 40);
  for (uint16_t code = 200; code < 240; ++code) {
    const std::string line = requests_line(reg, "response_code=\"" + std::to_string(code) + "\"");
    REQUIRE_FALSE(line.empty());
    CHECK(line.substr(line.rfind(' ') + 1) == "2");
  }
}
