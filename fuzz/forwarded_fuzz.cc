// libFuzzer target: RFC 7239 `forwarded` parsing, plus a round trip of what we format.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hbone/headers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto f = hbone::parse_forwarded(input);
  if (f) {
    if (f->empty()) std::abort();  // a successful parse has at least one element
    for (const auto& e : *f) {
      // Re-format the first element's for/host and parse again: must give the same values.
      auto again = hbone::parse_forwarded(hbone::format_forwarded(e.for_node, e.host));
      if (e.for_node.find('"') == std::string::npos && e.for_node.find('\\') == std::string::npos) {
        if (!again || (*again)[0].for_node != e.for_node || (*again)[0].host != e.host) std::abort();
      }
    }
  }
  return 0;
}
