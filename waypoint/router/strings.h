// Small ASCII string helpers shared by the router's .cc files (case folding without allocation,
// percent-decoding, strict integer parsing, host/port splitting). Internal to waypoint/router/.
// Threading: pure functions. Invariants: ASCII-only case folding, as HTTP tokens and Envoy's
// ignore_case matching are ASCII.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace waypoint::router {

inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view lower_prefix);
bool iends_with(std::string_view s, std::string_view lower_suffix);
bool icontains(std::string_view s, std::string_view lower_needle);

// %XX decoding; malformed escapes are kept literally (as Envoy's PercentEncoding::decode).
std::string percent_decode(std::string_view s);

// Whole-string decimal parses (an optional leading '-' for int64); nullopt on anything else.
std::optional<int64_t> parse_int64(std::string_view s);
std::optional<uint64_t> parse_uint64(std::string_view s);

// Position of the ':' that starts the port in "host:port" / "[v6]:port"; npos when none.
size_t port_separator(std::string_view authority);

}  // namespace waypoint::router
