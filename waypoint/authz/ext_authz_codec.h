// A small protobuf wire codec for the external authorization protocol
// (envoy.service.auth.v3.Authorization/Check), so the waypoint's data path calls an ext_authz
// service without protobuf or the gRPC library (as rls_codec.h does for rate limiting). Field
// numbers from data-plane-api (proto/envoy/service/auth/v3/external_auth.proto holds the same
// messages for the tests):
//   CheckRequest  { attributes 1: AttributeContext { source 1, destination 2: Peer {
//                   address 1: Address { socket_address 1: { address 2, port_value 3 } },
//                   principal 4 }, request 4: Request { http 2: HttpRequest { id 1, method 2,
//                   headers 3 (map<string,string>), path 4, host 5, scheme 6, protocol 10 } } } }
//   CheckResponse { status 1: google.rpc.Status { code 1, message 2 }, denied_response 2:
//                   { status 1: HttpStatus { code 1 }, headers 2, body 3 }, ok_response 3:
//                   { headers 2, headers_to_remove 5, response_headers_to_add 6 } }
//   HeaderValueOption { header 1: HeaderValue { key 1, value 2, raw_value 3 },
//                   append 2: BoolValue { value 1 }, append_action 3 }
// Other response fields (dynamic_metadata, query parameters) are skipped as unknown fields are.
//
// Threading: pure functions. decode_check_response() takes untrusted bytes (a peer's answer):
// it never reads out of bounds, rejects truncated or malformed input with an error naming what
// was wrong, and is fuzzed (fuzz/waypoint_ext_authz_codec_fuzz.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace waypoint::authz {

struct CheckPeer {
  std::string address;  // IP literal; empty = no address sent
  uint32_t port = 0;
  std::string principal;  // "spiffe://..." or empty
};

struct CheckRequest {
  CheckPeer source, destination;
  std::string id, method, path, host, scheme, protocol;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower case, each name once
};

// One header mutation of the service's answer.
struct CheckHeader {
  enum class Mode : uint8_t { Set, Append, AddIfAbsent };
  std::string key, value;
  Mode mode = Mode::Set;
};

struct CheckResponse {
  int32_t grpc_code = 0;  // status.code: 0 = OK (allow), anything else = deny
  std::string grpc_message;
  enum class Http : uint8_t { None, Denied, Ok };
  Http http = Http::None;
  uint32_t denied_status = 0;                        // denied_response.status.code; 0 = not set (403)
  std::string denied_body;                           // denied_response.body
  std::vector<CheckHeader> headers;                  // denied: to the client; ok: to the upstream request
  std::vector<std::string> headers_to_remove;        // ok
  std::vector<CheckHeader> response_headers_to_add;  // ok: to the client's response
};

std::string encode_check_request(const CheckRequest& r);
// The serialized CheckResponse (what a service sends; tests and the fuzzer seed).
std::string encode_check_response(const CheckResponse& r);

common::Result<CheckResponse> decode_check_response(std::string_view bytes);

}  // namespace waypoint::authz
