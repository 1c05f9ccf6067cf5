// libFuzzer target: CONNECT `:authority` parsing, the first thing inbound HBONE does with a
// peer's request. IP results must re-format to something that parses to the same target.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hbone/headers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (bool allow_hostname : {false, true}) {
    auto a = hbone::parse_authority(input, allow_hostname);
    if (!a) continue;
    if (a->port == 0) std::abort();
    if (a->is_ip()) {
      if (!a->hostname.empty()) std::abort();
      auto again = hbone::parse_authority(hbone::format_authority(*a->ip, a->port));
      if (!again || !again->ip || *again->ip != *a->ip || again->port != a->port) std::abort();
    } else {
      if (!allow_hostname || a->hostname.empty() || a->hostname.size() > 253) std::abort();
    }
  }
  return 0;
}
