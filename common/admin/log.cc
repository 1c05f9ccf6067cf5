#include "common/admin/log.h"

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace common::log {
namespace {

constexpr const char* kAccessLogger = "access";
constexpr const char* kTime = "%Y-%m-%dT%H:%M:%S.%fZ";

struct ParsedFilter {
  spdlog::level::level_enum def = spdlog::level::info;
  std::map<std::string, spdlog::level::level_enum, std::less<>> per_logger;
};

Result<spdlog::level::level_enum> parse_level(std::string_view s) {
  if (s == "trace") return spdlog::level::trace;
  if (s == "debug") return spdlog::level::debug;
  if (s == "info") return spdlog::level::info;
  if (s == "warn" || s == "warning") return spdlog::level::warn;
  if (s == "error") return spdlog::level::err;
  if (s == "off") return spdlog::level::off;
  return make_error("unknown log level \"" + std::string(s) + "\" (expected trace, debug, info, warn, error or off)");
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<ParsedFilter> parse_filter(std::string_view filter) {
  ParsedFilter out;
  while (!filter.empty()) {
    size_t comma = filter.find(',');
    std::string_view d = trim(filter.substr(0, comma));
    filter = comma == std::string_view::npos ? std::string_view{} : filter.substr(comma + 1);
    if (d.empty()) continue;
    size_t eq = d.find('=');
    if (eq == std::string_view::npos) {
      auto l = parse_level(d);
      if (!l) return make_error(l.error());
      out.def = *l;
      continue;
    }
    std::string_view target = trim(d.substr(0, eq));
    if (target.empty()) return make_error("empty logger name in log filter directive");
    auto l = parse_level(trim(d.substr(eq + 1)));
    if (!l) return make_error(l.error());
    out.per_logger[std::string(target)] = *l;
  }
  return out;
}

std::string json_string(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// %* : the message as a quoted, escaped JSON string.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string s = json_string(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

// %& : the members of a JSON-object message, spliced into the line's object. A message that
// is not an object is emitted as "message":"<text>" so nothing is ever lost or malformed.
class JsonMembersFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view p(msg.payload.data(), msg.payload.size());
    if (p.size() >= 2 && p.front() == '{' && p.back() == '}') {
      std::string_view inner = p.substr(1, p.size() - 2);
      if (!inner.empty()) {
        dest.append(inner.data(), inner.data() + inner.size());
        return;
      }
    }
    std::string s = "\"message\":" + json_string(p);
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMembersFlag>(); }
};

// %~ : upstream's level names ("warn", not spdlog's "warning"), so log tooling that filters on
// ztunnel's levels keeps working.
class LevelFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view n;
    switch (msg.level) {
      case spdlog::level::trace:
        n = "trace";
        break;
      case spdlog::level::debug:
        n = "debug";
        break;
      case spdlog::level::info:
        n = "info";
        break;
      case spdlog::level::warn:
        n = "warn";
        break;
      case spdlog::level::err:
        n = "error";
        break;
      case spdlog::level::critical:
        n = "error";
        break;
      default:
        n = "off";
        break;
    }
    dest.append(n.data(), n.data() + n.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<LevelFlag>(); }
};

struct State {
  std::mutex mu;
  bool initialised = false;
  std::atomic<Format> format{Format::Plain};
  std::string default_name = "ztunnel";
  std::string init_filter = "info";
  std::string current = "info";
  ParsedFilter parsed;
  std::vector<std::shared_ptr<spdlog::logger>> loggers;  // ours, for re-leveling
};

State& state() {
  static State s;
  return s;
}

std::unique_ptr<spdlog::formatter> make_formatter(Format f, bool access) {
  auto fmt = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  fmt->add_flag<LevelFlag>('~');
  if (f == Format::Json) {
    fmt->add_flag<JsonMessageFlag>('*').add_flag<JsonMembersFlag>('&');
    std::string head = std::string("{\"level\":\"%~\",\"time\":\"") + kTime + "\",\"scope\":\"%n\",";
    fmt->set_pattern(head + (access ? "%&}" : "\"message\":%*}"));
  } else {
    fmt->set_pattern(std::string(kTime) + "  %~  %n  %v");
  }
  return fmt;
}

spdlog::level::level_enum level_for(const State& s, std::string_view name) {
  auto it = s.parsed.per_logger.find(name);
  return it == s.parsed.per_logger.end() ? s.parsed.def : it->second;
}

// Caller holds s.mu. Each logger gets its own sink because spdlog keeps the formatter on
// the sink, and the access logger's JSON layout differs from the others. stdout sinks write a
// whole line per fwrite(), which stdio serialises, so lines from different sinks never mix.
std::shared_ptr<spdlog::logger> make_logger(State& s, const std::string& name) {
  auto sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  auto lg = std::make_shared<spdlog::logger>(name, std::move(sink));
  lg->set_formatter(make_formatter(s.format.load(), name == kAccessLogger));
  lg->set_level(level_for(s, name));
  lg->flush_on(spdlog::level::warn);
  spdlog::drop(name);
  spdlog::register_logger(lg);
  s.loggers.push_back(lg);
  return lg;
}

// Caller holds s.mu.
std::shared_ptr<spdlog::logger> find_or_make(State& s, std::string_view name) {
  for (auto& lg : s.loggers) {
    if (lg->name() == name) return lg;
  }
  return make_logger(s, std::string(name));
}

// Caller holds s.mu.
void apply(State& s) {
  for (auto& lg : s.loggers) lg->set_level(level_for(s, lg->name()));
}

}  // namespace

Result<Format> parse_format(std::string_view s) {
  if (s == "plain" || s.empty()) return Format::Plain;
  if (s == "json") return Format::Json;
  return make_error("unknown log format \"" + std::string(s) + "\" (expected plain or json)");
}

Status validate_filter(std::string_view filter) {
  auto p = parse_filter(filter);
  if (!p) return make_error(p.error());
  return ok_status();
}

Status init(std::string_view filter, Format format, std::string_view default_name) {
  auto p = parse_filter(filter);
  if (!p) return make_error(p.error());
  State& s = state();
  std::lock_guard<std::mutex> l(s.mu);
  s.parsed = std::move(p.value());
  s.init_filter = s.current = std::string(filter);
  s.format.store(format);
  s.default_name = std::string(default_name);
  // Loggers are never replaced (callers may cache them); re-init only re-formats and re-levels.
  for (auto& lg : s.loggers) lg->set_formatter(make_formatter(format, lg->name() == kAccessLogger));
  apply(s);
  spdlog::set_default_logger(find_or_make(s, s.default_name));
  find_or_make(s, kAccessLogger);
  s.initialised = true;
  return ok_status();
}

Status set_filter(std::string_view filter) {
  auto p = parse_filter(filter);
  if (!p) return make_error(p.error());
  State& s = state();
  std::lock_guard<std::mutex> l(s.mu);
  s.parsed = std::move(p.value());
  s.current = std::string(filter);
  apply(s);
  return ok_status();
}

void reset() {
  State& s = state();
  std::lock_guard<std::mutex> l(s.mu);
  auto p = parse_filter(s.init_filter);  // validated by init()
  if (p) s.parsed = std::move(p.value());
  s.current = s.init_filter;
  apply(s);
}

std::string current_filter() {
  State& s = state();
  std::lock_guard<std::mutex> l(s.mu);
  return s.current;
}

Format format() {
  return state().format.load();
}

std::shared_ptr<spdlog::logger> logger(std::string_view name) {
  State& s = state();
  std::lock_guard<std::mutex> l(s.mu);
  return find_or_make(s, name);
}

}  // namespace common::log
