// Glue between common::tls (OpenSSL contexts with Istio's SPIFFE checks) and Asio's TLS
// stream. A TlsContext is immutable once built and shared by every worker; certificate
// rotation builds a new one and new connections pick it up.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "common/result.h"
#include "common/identity/tls.h"

namespace hbone {

using TlsContext = std::shared_ptr<boost::asio::ssl::context>;

// Server and client contexts for one workload identity.
struct TlsContexts {
  TlsContext server;
  TlsContext client;
  std::shared_ptr<const common::tls::Credentials> credentials;
};

common::Result<TlsContexts> make_tls_contexts(std::shared_ptr<const common::tls::Credentials> creds);

}  // namespace hbone
