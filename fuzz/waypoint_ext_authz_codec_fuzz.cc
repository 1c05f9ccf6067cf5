// libFuzzer target: the ext_authz CheckResponse decoder (waypoint/authz/ext_authz_codec.h),
// which reads a peer's bytes on the waypoint's data path. It must never crash or read out of
// bounds, and a response it accepts must survive re-encoding: encode(decode(x)) decodes to the
// same values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "waypoint/authz/ext_authz_codec.h"

using namespace waypoint::authz;

namespace {

bool same(const std::vector<CheckHeader>& a, const std::vector<CheckHeader>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].key != b[i].key || a[i].value != b[i].value || a[i].mode != b[i].mode) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = decode_check_response(in);
  if (!r) return 0;
  auto again = decode_check_response(encode_check_response(*r));
  if (!again) std::abort();
  if (again->grpc_code != r->grpc_code || again->grpc_message != r->grpc_message || again->http != r->http ||
      again->denied_status != r->denied_status || again->denied_body != r->denied_body ||
      !same(again->headers, r->headers) || again->headers_to_remove != r->headers_to_remove ||
      !same(again->response_headers_to_add, r->response_headers_to_add))
    std::abort();
  return 0;
}
