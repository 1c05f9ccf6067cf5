// common/admin/log.h and access_log.h: filters, runtime level changes, access-line formatting.
#include <catch2/catch.hpp>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/admin/access_log.h"
#include "common/admin/log.h"

using namespace common;
using namespace std::chrono_literals;

namespace {

AccessRecord sample() {
  AccessRecord r;
  r.src_addr = "10.0.0.1:43210";
  r.src_workload = "sleep-abc";
  r.src_namespace = "default";
  r.src_identity = "spiffe://cluster.local/ns/default/sa/sleep";
  r.dst_addr = "10.0.0.2:8080";
  r.dst_hbone_addr = "10.0.0.2:15008";
  r.dst_service = "echo.default.svc.cluster.local";
  r.dst_workload = "echo-xyz";
  r.dst_namespace = "default";
  r.dst_identity = "spiffe://cluster.local/ns/default/sa/echo";
  r.direction = "outbound";
  r.bytes_sent = 120;
  r.bytes_recv = 4567;
  r.duration = 12ms;
  return r;
}

}  // namespace

TEST_CASE("plain access line has upstream field names in order", "[log]") {
  std::string line = format_access_record(sample(), log::Format::Plain);
  CHECK(line ==
        "connection complete src.addr=10.0.0.1:43210 src.workload=sleep-abc "
        "src.namespace=default src.identity=\"spiffe://cluster.local/ns/default/sa/sleep\" "
        "dst.addr=10.0.0.2:8080 dst.hbone_addr=10.0.0.2:15008 "
        "dst.service=echo.default.svc.cluster.local dst.workload=echo-xyz "
        "dst.namespace=default dst.identity=\"spiffe://cluster.local/ns/default/sa/echo\" "
        "direction=outbound bytes_sent=120 bytes_recv=4567 duration=\"12ms\"");
}

TEST_CASE("plain access line quotes errors and omits unknown fields", "[log]") {
  AccessRecord r;
  r.src_addr = "1.2.3.4:5";
  r.direction = "inbound";
  r.error = "connection refused \"x\"";
  std::string line = format_access_record(r, log::Format::Plain);
  CHECK(line ==
        "connection complete src.addr=1.2.3.4:5 direction=inbound bytes_sent=0 bytes_recv=0 "
        "duration=\"0ms\" error=\"connection refused \\\"x\\\"\"");
}

TEST_CASE("json access line is an object with the same fields", "[log]") {
  AccessRecord r = sample();
  r.error = "timeout";
  r.src_workload = "bad\xff utf8";  // must not throw
  auto j = nlohmann::json::parse(format_access_record(r, log::Format::Json));
  CHECK(j["message"] == "connection complete");
  CHECK(j["src.addr"] == "10.0.0.1:43210");
  CHECK(j["dst.hbone_addr"] == "10.0.0.2:15008");
  CHECK(j["dst.identity"] == "spiffe://cluster.local/ns/default/sa/echo");
  CHECK(j["direction"] == "outbound");
  CHECK(j["bytes_sent"] == 120);
  CHECK(j["bytes_recv"] == 4567);
  CHECK(j["duration"] == "12ms");
  CHECK(j["error"] == "timeout");
  CHECK_FALSE(j.contains("src.cluster"));
}

TEST_CASE("log filters parse, apply per logger and reset", "[log]") {
  CHECK(log::parse_format("json").value() == log::Format::Json);
  CHECK(log::parse_format("plain").value() == log::Format::Plain);
  CHECK_FALSE(log::parse_format("xml").ok());
  CHECK(log::validate_filter("info").ok());
  CHECK(log::validate_filter("access=off, warn").ok());
  CHECK_FALSE(log::validate_filter("loud").ok());
  CHECK_FALSE(log::validate_filter("=debug").ok());

  REQUIRE(log::init("warn,access=info", log::Format::Plain, "test").ok());
  CHECK(spdlog::default_logger()->level() == spdlog::level::warn);
  CHECK(log::logger("access")->level() == spdlog::level::info);
  CHECK(log::logger("xds")->level() == spdlog::level::warn);

  REQUIRE(log::set_filter("debug,xds=trace").ok());
  CHECK(log::current_filter() == "debug,xds=trace");
  CHECK(spdlog::default_logger()->level() == spdlog::level::debug);
  CHECK(log::logger("xds")->level() == spdlog::level::trace);
  CHECK(log::logger("access")->level() == spdlog::level::debug);
  CHECK(log::logger("late")->level() == spdlog::level::debug);  // created after the change

  CHECK_FALSE(log::set_filter("nonsense").ok());
  CHECK(log::current_filter() == "debug,xds=trace");  // unchanged on error

  log::reset();
  CHECK(log::current_filter() == "warn,access=info");
  CHECK(spdlog::default_logger()->level() == spdlog::level::warn);
  CHECK(log::logger("xds")->level() == spdlog::level::warn);
  // Loggers are stable objects across init/reset (callers may cache them).
  auto a = log::logger("access");
  REQUIRE(log::init("info", log::Format::Json).ok());
  CHECK(log::logger("access") == a);
  CHECK(log::format() == log::Format::Json);
  // Emitting must not throw in either format.
  log_access(sample());
  log_connection_failed(sample());
  spdlog::info("json \"quoted\" message");
  REQUIRE(log::init("info", log::Format::Plain).ok());
}
