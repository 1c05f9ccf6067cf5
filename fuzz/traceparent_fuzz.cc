// libFuzzer target: W3C `traceparent` parsing; accepted values must print back byte-identical.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hbone/headers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto t = hbone::parse_traceparent(input);
  if (t && t->to_string() != input) std::abort();
  return 0;
}
