// libFuzzer target: ZDS message decoding (proto/zds_wire.h), the bytes a node agent sends
// ztunnel. Whatever decodes must re-encode to something that decodes to the same request
// (the struct holds every field we act on), and no input may crash the decoders.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/zds_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)zds::decode_hello(input);
  (void)zds::decode_ack(input);
  auto r = zds::decode_request(input);
  if (!r) return 0;
  auto again = zds::decode_request(zds::encode_request(*r));
  if (!again || !(*again == *r)) std::abort();
  return 0;
}
