// Hex digit decoding shared by every parser of hex text (URL percent-escapes, trace ids).
// Header-only and constexpr; no state, safe from any thread.
#pragma once

namespace common {

// The value of one hex digit (either case), or -1 when `c` is not a hex digit.
constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace common
