// libFuzzer target: what the controlplane's JWKS fetch parses from untrusted input: the
// jwksUri of a RequestAuthentication (parse_http_url) and the body a JWKS server returns
// (check_jwks). Neither may crash; a parsed URL keeps its invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "controlplane/http_fetch.h"
#include "controlplane/jwks_resolver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  controlplane::HttpUrl u;
  std::string why;
  if (controlplane::parse_http_url(in, u, why)) {
    if (u.host.empty() || u.port.empty() || u.target.empty() || u.target[0] != '/') std::abort();
    for (char c : u.target)
      if (c == '#') std::abort();
  } else if (why.empty()) {
    std::abort();
  }
  (void)controlplane::check_jwks(in);
  return 0;
}
