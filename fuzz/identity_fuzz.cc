// libFuzzer target: SPIFFE identity parsing and URI SAN extraction from DER certificates, the
// two parsers that turn peer-controlled bytes into an Identity.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/identity/certs.h"
#include "common/identity/identity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // Whatever parses must round-trip exactly: no two spellings of one identity.
  if (auto id = common::Identity::parse(input)) {
    if (id->uri() != input) std::abort();
    auto again = common::Identity::parse(id->uri());
    if (!again || !(*again == *id)) std::abort();
    if (id->principal() != input.substr(9)) std::abort();
  }

  // The same bytes as a DER certificate: SAN extraction must never yield a NUL-carrying URI.
  for (const auto& uri : common::certs::uri_sans_from_der(input)) {
    if (uri.find('\0') != std::string::npos) std::abort();
    (void)common::Identity::parse(uri);
  }
  return 0;
}
