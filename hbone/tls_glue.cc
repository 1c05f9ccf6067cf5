#include "hbone/tls_glue.h"

namespace hbone {

common::Result<TlsContexts> make_tls_contexts(std::shared_ptr<const common::tls::Credentials> creds) {
  auto server = common::tls::make_server_ctx(*creds);
  if (!server) return common::make_error("server TLS context: " + server.error());
  auto client = common::tls::make_client_ctx(*creds);
  if (!client) return common::make_error("client TLS context: " + client.error());
  TlsContexts out;
  // asio::ssl::context takes ownership of the native handle.
  out.server = std::make_shared<boost::asio::ssl::context>(server.value().release());
  out.client = std::make_shared<boost::asio::ssl::context>(client.value().release());
  out.credentials = std::move(creds);
  return out;
}

}  // namespace hbone
