// Per-identity TLS contexts for HBONE: common::tls's OpenSSL setup (TLS 1.3, ALPN h2, Istio's
// SPIFFE checks) held in an asio::ssl::context, of which only the SSL_CTX is used — the
// transport is TlsSocket (OpenSSL on the socket itself). A TlsContext is immutable once
// built and shared by every worker; certificate rotation builds a new one and new
// connections pick it up.
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
