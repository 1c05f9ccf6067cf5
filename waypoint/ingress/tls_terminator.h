// TLS termination for the ingress gateway's HTTPS listeners (docs/ingress.md).
//   ServerTls: the certificates of one listener's TLS filter chains, each read from a mounted
//     Kubernetes TLS Secret `<credential_dir>/<credentialName>/tls.crt|tls.key`, and Envoy's
//     filter-chain choice by SNI: exact server name, then the longest `*.suffix`, then a chain
//     without server_names; no match = the connection is closed (as Envoy does).
//   MUTUAL chains also verify client certificates against their CA (`<dir>/<x>-cacert/ca.crt`, else
//     `<dir>/<x>/ca.crt`, or a file-root: path) and the server's exact subjectAltNames, in the handshake.
//   serve_tls(): the handshake (TLS 1.2+, ALPN h2 then http/1.1; the SNI callback swaps in the chosen
//     chain's certificate), then the decrypted bytes are relayed over a local socket pair whose
//     other end is handed to Proxy::serve_gateway, so the request flow is the plaintext one,
//     unchanged, HTTP/2 included (it sniffs the preface; costs one local copy per byte; see
//     docs/ingress.md).
// Threading: ServerTls is immutable after make_server_tls() (control thread) and shared by the
// workers; serve_tls() runs on the accepting worker.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "waypoint/ingress/listener_model.h"
namespace waypoint {
class Proxy;
}

namespace waypoint::ingress {

struct ServerTls;

// Reads every chain's certificate; an unreadable or mismatched pair fails naming the files.
common::Result<std::shared_ptr<const ServerTls>> make_server_tls(const GatewayListener& listener,
                                                                 const std::string& credential_dir);

// Index into listener.chains for an SNI name ("" = none sent); -1 = no chain matches.
int choose_chain(const GatewayListener& listener, const std::string& sni);

boost::asio::awaitable<void> serve_tls(boost::asio::ip::tcp::socket sock, std::shared_ptr<const ServerTls> tls,
                                       Proxy* proxy, size_t worker);

}  // namespace waypoint::ingress
