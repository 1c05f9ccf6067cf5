// TLS contexts for HBONE (mutual TLS 1.3, ALPN h2) and the SPIFFE checks Istio applies.
//
// Server side: a client certificate is required, its chain must verify against the roots, and
// the leaf must carry a SPIFFE URI SAN whose trust domain equals the server's own; otherwise the
// handshake fails (alert), before any HTTP/2 byte.
// Client side: the server chain must verify against the roots and at least one URI SAN of the
// leaf must equal one of the expected identities set on that SSL* with
// set_expected_identities(); otherwise the handshake fails. No hostname check, no SNI, no
// session resumption.
//
// Contexts are built once per credential set (rotation builds new ones) and are read-only
// afterwards, so one SSL_CTX is shared by all worker threads.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/identity/identity.h"
#include "common/result.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace common::tls {

// A workload's certificate material. cert_chain_pem: leaf first, then intermediates (no root).
struct Credentials {
  Identity identity;
  std::string cert_chain_pem;
  std::string key_pem;
  std::string roots_pem;
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

struct CtxDeleter {
  void operator()(SSL_CTX* ctx) const;
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

Result<CtxPtr> make_server_ctx(const Credentials& creds);
Result<CtxPtr> make_client_ctx(const Credentials& creds);

// Client connections: the identities the server may present. The vector must outlive the
// handshake of `ssl`. An empty list (or none set) makes the handshake fail.
void set_expected_identities(SSL* ssl, const std::vector<Identity>* expected);

// After the handshake: the peer's identity (first parseable SPIFFE URI SAN of the leaf).
std::optional<Identity> peer_identity(SSL* ssl);

// The reason the last handshake on `ssl` failed our SPIFFE checks, if it did ("" otherwise).
std::string verify_failure(SSL* ssl);

// (added by the TLS owner) The calling thread's OpenSSL error queue as one line, emptied; ""
// when empty. Use after a failed SSL_* call so stale errors do not leak into later calls.
std::string drain_openssl_errors();

}  // namespace common::tls
