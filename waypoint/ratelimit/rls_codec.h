// A tiny protobuf wire codec for the rate limit service protocol
// (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit), so the data path calls the RLS
// without protobuf or the gRPC library. Field numbers from data-plane-api:
//   RateLimitRequest  { domain 1, descriptors 2 (RateLimitDescriptor{entries 1 {key 1, value 2}}),
//                       hits_addend 3 }
//   RateLimitResponse { overall_code 1 (UNKNOWN 0, OK 1, OVER_LIMIT 2), statuses 2
//                       (DescriptorStatus{code 1, current_limit 2, limit_remaining 3,
//                       duration_until_reset 4}), response_headers_to_add 3 and
//                       request_headers_to_add 4 (HeaderValue{key 1, value 2, raw_value 3}) }
// Other response fields (raw_body, dynamic_metadata, quota) are skipped as unknown fields are.
// Plus the gRPC length-prefixed message framing (1 flag byte, 4 length bytes, big endian).
//
// Threading: pure functions. The decoder takes untrusted bytes (a peer's response): it never
// reads out of bounds, rejects truncated or malformed input with an error naming what was wrong,
// and is fuzzed (fuzz/waypoint_rls_codec_fuzz.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace waypoint::ratelimit {

struct RlsRequest {
  std::string domain;
  std::vector<std::vector<std::pair<std::string, std::string>>> descriptors;
  uint32_t hits_addend = 0;  // 0 = not sent (the service counts 1)
};

struct RlsDescriptorStatus {
  uint32_t code = 0;
  uint32_t requests_per_unit = 0;  // current_limit, when the service sent one
  uint32_t unit = 0;               // SECOND 1, MINUTE 2, HOUR 3, DAY 4
  uint32_t limit_remaining = 0;
  int64_t reset_seconds = 0;  // duration_until_reset
};

struct RlsResponse {
  enum Code : uint32_t { Unknown = 0, Ok = 1, OverLimit = 2 };
  uint32_t overall_code = Unknown;
  std::vector<RlsDescriptorStatus> statuses;
  std::vector<std::pair<std::string, std::string>> response_headers_to_add;
  std::vector<std::pair<std::string, std::string>> request_headers_to_add;
};

// The serialized RateLimitRequest.
std::string encode_request(const RlsRequest& r);
// The serialized RateLimitResponse (what a service sends; used by tests and the fuzzer seed).
std::string encode_response(const RlsResponse& r);

common::Result<RlsResponse> decode_response(std::string_view bytes);

// gRPC message framing: one uncompressed message.
std::string grpc_frame(std::string_view message);
// The single message of a unary gRPC response body; an error for a compressed, truncated or
// trailing-garbage body.
common::Result<std::string_view> grpc_unframe(std::string_view body);

}  // namespace waypoint::ratelimit
