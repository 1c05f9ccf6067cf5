// libFuzzer target: certificate material that crosses a trust boundary — CSRs a CA receives
// from callers (controlplane's CA service runs inspect_csr on every request) and PEM chains a
// ztunnel receives from the CA (IstioCaClient splits and inspects them), plus raw DER SANs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/identity/certs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)common::certs::inspect_csr(in);
  (void)common::certs::split_pem_chain(in);
  (void)common::certs::inspect_pem_chain(in);
  (void)common::certs::inspect_pem(in);
  (void)common::certs::uri_sans_from_der(in);
  return 0;
}
