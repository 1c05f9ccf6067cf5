#include "hbone/overload.h"

#include <charconv>
#include <string>

namespace hbone {

Overload& overload() {
  static Overload o;
  return o;
}

common::Result<uint64_t> parse_buffer_budget(std::string_view text) {
  auto bad = [&] {
    return common::Result<uint64_t>(common::make_error("HBONE_BUFFER_BUDGET: '" + std::string(text) +
                                                       "' is not a byte count (e.g. 268435456, 256Mi, 1Gi)"));
  };
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data()) return bad();
  std::string_view unit(p, static_cast<size_t>(text.data() + text.size() - p));
  uint64_t mult = 1;
  if (unit.empty())
    mult = 1;
  else if (unit == "Ki" || unit == "KiB")
    mult = 1ull << 10;
  else if (unit == "Mi" || unit == "MiB")
    mult = 1ull << 20;
  else if (unit == "Gi" || unit == "GiB")
    mult = 1ull << 30;
  else
    return bad();
  if (n > UINT64_MAX / mult) return bad();
  return n * mult;
}

}  // namespace hbone
