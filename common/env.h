// Environment-variable helpers with upstream ztunnel's parsing rules. Every error message
// names the variable and the offending value ("invalid env var SECRET_TTL=\"abc\": ..."),
// because a misconfigured DaemonSet must fail fast with a message an operator can act on.
//
// All readers go through an `EnvLookup` callback instead of getenv(), so configuration code
// can be tested with injected values and getenv() stays in one place (process_env()).
// Threading: the parse_* functions are pure; process_env() reads the process environment,
// which is only safe while no other thread calls setenv() (config load happens at startup).
//
// An empty value is treated as unset for typed readers (bool, numbers, durations): Kubernetes
// manifests often render `value: ""` for "use the default". get_string() keeps "" as a value,
// since some variables give it a meaning (XDS_ADDRESS="" disables xDS).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace common::env {

// Returns the value of a variable, or nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Reads the real process environment (the only getenv() in the project).
EnvLookup process_env();

// Pure parsers. Errors describe the expected form but do not name a variable.
// Booleans: "true"/"false" (any case), "1"/"0".
Result<bool> parse_bool(std::string_view s);
// Unsigned decimal integers, no sign, no whitespace, overflow-checked.
Result<uint64_t> parse_unsigned(std::string_view s);
// Durations: one or more <number><unit> groups, unit in ns, us, µs, ms, s, m, h, d;
// numbers may have a fraction ("1.5s"); "1h30m" sums groups. A bare number is seconds.
// Result is truncated to whole milliseconds; negative values are rejected.
Result<std::chrono::milliseconds> parse_duration(std::string_view s);

// Readers: nullopt (or the default) when unset/empty, an error naming `name` when malformed.
std::optional<std::string> get_string(const EnvLookup& env, std::string_view name);
std::string get_string(const EnvLookup& env, std::string_view name, std::string_view def);
Result<std::optional<bool>> get_bool(const EnvLookup& env, std::string_view name);
Result<bool> get_bool(const EnvLookup& env, std::string_view name, bool def);
Result<std::optional<uint64_t>> get_unsigned(const EnvLookup& env, std::string_view name);
Result<uint64_t> get_unsigned(const EnvLookup& env, std::string_view name, uint64_t def);
// Like get_unsigned but also rejects values above `max` (e.g. u32 fields, window sizes).
Result<uint64_t> get_unsigned_max(const EnvLookup& env, std::string_view name, uint64_t def, uint64_t max);
Result<std::optional<std::chrono::milliseconds>> get_duration(const EnvLookup& env, std::string_view name);
Result<std::chrono::milliseconds> get_duration(const EnvLookup& env, std::string_view name,
                                               std::chrono::milliseconds def);

// The message format used by all readers, exposed for callers doing their own validation:
// "invalid env var NAME=\"value\": why".
std::string invalid_var(std::string_view name, std::string_view value, std::string_view why);

}  // namespace common::env
