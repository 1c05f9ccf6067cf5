// make_cert_provider(): picks where ztunnel's workload certificates come from (the choice
// itself is common/ca/cert_source.h, shared with the waypoint).
//   CA_ADDRESS set (the default unless LOCAL_CA_DIR or FAKE_CA)  -> the Istio CA over gRPC
//       (common/ca/istio_ca_client.h), impersonating workloads in shared (node) mode;
//   else LOCAL_CA_DIR                                             -> an in-process LocalCa;
//   else an error naming both settings.
// Threading: call on the control thread; the provider is used there (CertProvider contract).
#pragma once

#include <memory>

#include "common/identity/cert_provider.h"
#include "common/result.h"
#include "ztunnel/config.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace ztunnel {

// `control` must outlive the provider.
common::Result<std::unique_ptr<common::CertProvider>> make_cert_provider(const Config& cfg,
                                                                         boost::asio::io_context& control);

}  // namespace ztunnel
