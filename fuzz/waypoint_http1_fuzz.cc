// libFuzzer target: the waypoint's inner HTTP/1.1 path as a tunnel delivers it — Beast parsing
// into the router's request type (header lower-casing, Host -> authority, hop-by-hop removal,
// Upgrade detection, bounded body), then the upstream serialization of that request, which
// must parse back to the same request (what the waypoint sends is what it understood).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "waypoint/http/http1.h"

namespace {

bool same(const waypoint::http::Request& a, const waypoint::http::Request& b) {
  if (a.head.method != b.head.method || a.head.path != b.head.path || a.head.authority != b.head.authority ||
      a.body != b.body || a.upgrade != b.upgrade) {
    return false;
  }
  const auto& fa = a.head.headers.fields();
  const auto& fb = b.head.headers.fields();
  if (fa.size() != fb.size()) return false;
  for (size_t i = 0; i < fa.size(); ++i) {
    if (fa[i].name != fb[i].name || fa[i].value != fb[i].value) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto req = waypoint::http::parse_request(input, 64 * 1024);
  if (!req) return 0;
  for (const auto& f : req->head.headers.fields()) {
    for (char c : f.name) {
      if (c >= 'A' && c <= 'Z') std::abort();  // names are lower case (router invariant)
    }
    if (waypoint::http::is_hop_by_hop(f.name) || f.name == "host") std::abort();
  }
  auto wire = waypoint::http::serialize_request(*req);
  auto again = waypoint::http::parse_request(wire, 64 * 1024);
  if (!again || !same(*req, *again)) std::abort();
  return 0;
}
