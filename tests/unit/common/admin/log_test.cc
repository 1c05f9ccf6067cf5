// common/admin/log.h and access_log.h: filters, runtime level changes, access-line formatting.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <vector>

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
        "connection complete\tsrc.addr=10.0.0.1:43210 src.workload=\"sleep-abc\" "
        "src.namespace=\"default\" src.identity=\"spiffe://cluster.local/ns/default/sa/sleep\" "
        "dst.addr=10.0.0.2:8080 dst.hbone_addr=10.0.0.2:15008 "
        "dst.service=\"echo.default.svc.cluster.local\" dst.workload=\"echo-xyz\" "
        "dst.namespace=\"default\" dst.identity=\"spiffe://cluster.local/ns/default/sa/echo\" "
        "direction=\"outbound\" bytes_sent=120 bytes_recv=4567 duration=\"12ms\"");
}

TEST_CASE("plain access line quotes errors and omits unknown fields", "[log]") {
  AccessRecord r;
  r.src_addr = "1.2.3.4:5";
  r.direction = "inbound";
  r.error = "connection refused \"x\"";
  std::string line = format_access_record(r, log::Format::Plain);
  CHECK(line ==
        "connection complete\tsrc.addr=1.2.3.4:5 direction=\"inbound\" bytes_sent=0 bytes_recv=0 "
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

namespace {

// Runs `emit` with stdout redirected to a temporary file (the plain sink writes to stdout) and
// returns what it wrote.
template <typename F>
std::string capture_stdout(F&& emit) {
  char path[] = "/tmp/log_test_XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::fflush(stdout);
  int saved = ::dup(1);
  ::dup2(fd, 1);
  emit();
  std::fflush(stdout);
  ::dup2(saved, 1);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  ::unlink(path);
  return ss.str();
}

// A log pipeline's view of a plain line: split on tabs into time, level, scope, message and
// (optionally) the k=v fields, then split the fields on spaces outside quotes. Returns false
// when the line does not have that shape.
struct ParsedLine {
  std::string time, level, scope, message;
  std::map<std::string, std::string> fields;  // values as written (quotes kept)
};
bool parse_plain(const std::string& line, ParsedLine& out) {
  std::vector<std::string> cols;
  std::string cur;
  for (char c : line) {
    if (c == '\t') {
      cols.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  cols.push_back(cur);
  if (cols.size() != 4 && cols.size() != 5) return false;
  out.time = cols[0];
  out.level = cols[1];
  out.scope = cols[2];
  out.message = cols[3];
  if (cols.size() == 4) return true;
  const std::string& f = cols[4];
  size_t i = 0;
  while (i < f.size()) {
    size_t eq = f.find('=', i);
    if (eq == std::string::npos) return false;
    std::string key = f.substr(i, eq - i);
    size_t j = eq + 1;
    if (j < f.size() && f[j] == '"') {
      for (++j; j < f.size() && f[j] != '"'; ++j) {
        if (f[j] == '\\') ++j;
      }
      if (j >= f.size()) return false;  // unterminated quote
      ++j;
    } else {
      while (j < f.size() && f[j] != ' ') ++j;
    }
    out.fields[key] = f.substr(eq + 1, j - eq - 1);
    if (j < f.size() && f[j] != ' ') return false;
    i = j + 1;
  }
  return true;
}

}  // namespace

TEST_CASE("plain log lines split on tabs into time, level, scope, message, fields", "[log]") {
  REQUIRE(log::init("info", log::Format::Plain, "ztunnel").ok());
  AccessRecord r = sample();
  r.error = "connection refused";
  std::string text = capture_stdout([&] {
    spdlog::warn("a plain message with  spaces");
    log_access(r);
    spdlog::default_logger()->flush();
    log::logger("access")->flush();
  });
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  REQUIRE(lines.size() == 2);
  const std::regex rfc3339(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)");

  ParsedLine plain;
  REQUIRE(parse_plain(lines[0], plain));
  CHECK(std::regex_match(plain.time, rfc3339));
  CHECK(plain.level == "warn");
  CHECK(plain.scope == "ztunnel");
  CHECK(plain.message == "a plain message with  spaces");
  CHECK(plain.fields.empty());

  ParsedLine access;
  REQUIRE(parse_plain(lines[1], access));
  CHECK(std::regex_match(access.time, rfc3339));
  CHECK(access.level == "error");
  CHECK(access.scope == "access");
  CHECK(access.message == "connection complete");
  CHECK(access.fields["src.addr"] == "10.0.0.1:43210");
  CHECK(access.fields["dst.hbone_addr"] == "10.0.0.2:15008");
  CHECK(access.fields["direction"] == "\"outbound\"");
  CHECK(access.fields["src.workload"] == "\"sleep-abc\"");
  CHECK(access.fields["dst.service"] == "\"echo.default.svc.cluster.local\"");
  CHECK(access.fields["src.identity"] == "\"spiffe://cluster.local/ns/default/sa/sleep\"");
  CHECK(access.fields["bytes_sent"] == "120");
  CHECK(access.fields["duration"] == "\"12ms\"");
  CHECK(access.fields["error"] == "\"connection refused\"");
  CHECK(access.fields.size() == 15);  // the sample has no src.cluster or dst.cluster
}
