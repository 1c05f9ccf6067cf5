// libFuzzer target: the rate limit service response decoder (waypoint/ratelimit/rls_codec.h),
// which reads a peer's bytes on the waypoint's data path. It must never crash or read out of
// bounds, and a response it accepts must survive re-encoding: encode(decode(x)) decodes to the
// same values. The gRPC unframing runs on the same input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "waypoint/ratelimit/rls_codec.h"

using namespace waypoint::ratelimit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)grpc_unframe(in);
  auto r = decode_response(in);
  if (!r) return 0;
  auto again = decode_response(encode_response(*r));
  if (!again) std::abort();
  if (again->overall_code != r->overall_code || again->statuses.size() != r->statuses.size() ||
      again->response_headers_to_add != r->response_headers_to_add ||
      again->request_headers_to_add != r->request_headers_to_add)
    std::abort();
  for (size_t i = 0; i < r->statuses.size(); ++i) {
    const auto& a = r->statuses[i];
    const auto& b = again->statuses[i];
    if (a.code != b.code || a.limit_remaining != b.limit_remaining || a.requests_per_unit != b.requests_per_unit ||
        a.unit != b.unit || (a.reset_seconds > 0 && a.reset_seconds != b.reset_seconds))
      std::abort();
  }
  return 0;
}
