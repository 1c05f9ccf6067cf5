// libFuzzer target: `baggage` header parsing. Whatever parses must survive a format/parse round
// trip unchanged (the fields we re-emit are exactly the fields we understood).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hbone/headers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto b = hbone::parse_baggage(input);
  if (!b) return 0;
  // Values containing separators cannot round-trip by design (they were split on input, so
  // they can only contain them if trimming/splitting is broken): check they never do.
  for (const std::string* v : {&b->cluster_id, &b->ns, &b->workload_name, &b->service_name,
                               &b->service_version, &b->region, &b->zone, &b->workload_type}) {
    if (v->find(',') != std::string::npos || v->find(';') != std::string::npos) std::abort();
  }
  hbone::Baggage canon = *b;
  if (canon.workload_type.empty() || canon.workload_name.empty()) {
    canon.workload_type.clear();
    canon.workload_name.clear();
  }
  auto again = hbone::parse_baggage(hbone::format_baggage(canon));
  if (!again) std::abort();
  // Values with '=' or surrounding whitespace are legal but are re-split differently; only
  // compare the simple case.
  auto simple = [](const std::string& s) {
    return s.find('=') == std::string::npos && (s.empty() || (s.front() != ' ' && s.back() != ' ' &&
                                                              s.front() != '\t' && s.back() != '\t'));
  };
  if (simple(canon.ns) && again->ns != canon.ns) std::abort();
  if (simple(canon.cluster_id) && again->cluster_id != canon.cluster_id) std::abort();
  return 0;
}
