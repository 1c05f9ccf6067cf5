// make_cert_provider(): where the waypoint's own certificate comes from — the Istio CA
// (CA_ADDRESS, gRPC, token auth, never impersonating: the waypoint asks only for itself) or a
// local CA directory (LOCAL_CA_DIR, Istio's cacerts layout), chosen by common/ca/cert_source.h.
// Errors name both settings.
// Threading: call on the control thread; the provider is used there.
#pragma once

#include <memory>

#include "common/identity/cert_provider.h"
#include "common/result.h"
#include "waypoint/config.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace waypoint {

common::Result<std::unique_ptr<common::CertProvider>> make_cert_provider(const Config& cfg,
                                                                         boost::asio::io_context& control);

}  // namespace waypoint
