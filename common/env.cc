#include "common/env.h"

#include <cstdlib>
#include <limits>

namespace common::env {
namespace {

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Nanoseconds per unit; 0 = unknown unit.
unsigned __int128 unit_ns(std::string_view u) {
  if (u == "ns") return 1;
  if (u == "us" || u == "\xC2\xB5s" || u == "\xCE\xBCs") return 1000;  // "µs" (micro or mu sign)
  if (u == "ms") return 1000000;
  if (u == "s") return 1000000000ULL;
  if (u == "m") return 60ULL * 1000000000ULL;
  if (u == "h") return 3600ULL * 1000000000ULL;
  if (u == "d") return 86400ULL * 1000000000ULL;
  return 0;
}

// Shared shape of the typed readers: unset/empty -> nullopt, malformed -> named error.
template <typename T, typename Parse>
Result<std::optional<T>> read_typed(const EnvLookup& env, std::string_view name, Parse parse) {
  auto v = env(name);
  if (!v || v->empty()) return std::optional<T>{};
  auto r = parse(*v);
  if (!r) return make_error(invalid_var(name, *v, r.error()));
  return std::optional<T>{std::move(r.value())};
}

}  // namespace

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    std::string key(name);  // getenv needs a NUL-terminated name
    const char* v = std::getenv(key.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string invalid_var(std::string_view name, std::string_view value, std::string_view why) {
  std::string out = "invalid env var ";
  out.append(name).append("=\"").append(value).append("\": ").append(why);
  return out;
}

Result<bool> parse_bool(std::string_view s) {
  if (s == "1" || ascii_iequals(s, "true")) return true;
  if (s == "0" || ascii_iequals(s, "false")) return false;
  return make_error("expected true, false, 1 or 0");
}

Result<uint64_t> parse_unsigned(std::string_view s) {
  if (s.empty()) return make_error("expected an unsigned integer");
  uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return make_error("expected an unsigned integer");
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return make_error("number too large");
    v = v * 10 + d;
  }
  return v;
}

Result<std::chrono::milliseconds> parse_duration(std::string_view s) {
  static constexpr const char* kForm = "expected a duration like 500ms, 10s, 5m, 24h or 1h30m";
  if (s.empty()) return make_error(kForm);
  // Plain number: seconds (upstream accepts bare integers as seconds).
  bool all_digits = true;
  for (char c : s) all_digits = all_digits && is_digit(c);
  if (all_digits) {
    auto n = parse_unsigned(s);
    if (!n || *n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 1000)) {
      return make_error("duration too large");
    }
    return std::chrono::milliseconds(static_cast<int64_t>(*n) * 1000);
  }

  // Sum of <int>[.<frac>]<unit> groups, computed in nanoseconds with 128-bit headroom.
  constexpr unsigned __int128 kMaxNs = static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max());
  unsigned __int128 total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    unsigned __int128 whole = 0;
    while (i < s.size() && is_digit(s[i])) {
      whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
      if (whole > kMaxNs) return make_error("duration too large");
      ++i;
    }
    bool had_whole = i > start;
    unsigned __int128 frac = 0, frac_scale = 1;
    bool had_frac = false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && is_digit(s[i])) {
        // Digits beyond nanosecond precision of the largest unit cannot matter; ignore them.
        if (frac_scale < static_cast<unsigned __int128>(1000000000000000000ULL)) {
          frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
          frac_scale *= 10;
        }
        had_frac = true;
        ++i;
      }
    }
    if (!had_whole && !had_frac) return make_error(kForm);
    size_t ustart = i;
    while (i < s.size() && !is_digit(s[i]) && s[i] != '.') ++i;
    unsigned __int128 mult = unit_ns(s.substr(ustart, i - ustart));
    if (mult == 0) return make_error(kForm);
    total += whole * mult + frac * mult / frac_scale;
    if (total > kMaxNs) return make_error("duration too large");
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total / 1000000));
}

std::optional<std::string> get_string(const EnvLookup& env, std::string_view name) {
  return env(name);
}

std::string get_string(const EnvLookup& env, std::string_view name, std::string_view def) {
  auto v = env(name);
  return v ? *v : std::string(def);
}

Result<std::optional<bool>> get_bool(const EnvLookup& env, std::string_view name) {
  return read_typed<bool>(env, name, parse_bool);
}

Result<bool> get_bool(const EnvLookup& env, std::string_view name, bool def) {
  auto r = get_bool(env, name);
  if (!r) return make_error(r.error());
  return r->value_or(def);
}

Result<std::optional<uint64_t>> get_unsigned(const EnvLookup& env, std::string_view name) {
  return read_typed<uint64_t>(env, name, parse_unsigned);
}

Result<uint64_t> get_unsigned(const EnvLookup& env, std::string_view name, uint64_t def) {
  auto r = get_unsigned(env, name);
  if (!r) return make_error(r.error());
  return r->value_or(def);
}

Result<uint64_t> get_unsigned_max(const EnvLookup& env, std::string_view name, uint64_t def, uint64_t max) {
  auto r = get_unsigned(env, name, def);
  if (!r) return r;
  if (*r > max) {
    return make_error(invalid_var(name, std::to_string(*r), "must be at most " + std::to_string(max)));
  }
  return r;
}

Result<std::optional<std::chrono::milliseconds>> get_duration(const EnvLookup& env, std::string_view name) {
  return read_typed<std::chrono::milliseconds>(env, name, parse_duration);
}

Result<std::chrono::milliseconds> get_duration(const EnvLookup& env, std::string_view name,
                                               std::chrono::milliseconds def) {
  auto r = get_duration(env, name);
  if (!r) return make_error(r.error());
  return r->value_or(def);
}

}  // namespace common::env
