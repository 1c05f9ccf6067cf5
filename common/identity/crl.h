// Certificate revocation lists (CRL_PATH, upstream's peer CRL checking): one process-wide set
// of CRLs, consulted by every TLS handshake's verify callback (common/identity/tls.cc) on both
// sides, for every certificate of the peer's chain below the trust anchor.
//
// Semantics (as upstream's revocation checking is configured): a certificate is refused when a
// CRL issued by its issuer (same issuer name AND a signature that verifies with the issuer's
// key) lists its serial number. A certificate no CRL speaks about is accepted (unknown status
// allowed), and an expired CRL still counts (nextUpdate is not enforced): a stale CRL must
// not take the mesh down. CRLs that do not verify against the issuer are ignored for it.
//
// A CRL update also reaches connections that are already up: peer_chain_revoked() re-checks a
// live connection's verified chain against the installed set, so a proxy can tear down the
// connections of a peer revoked after its handshake (upstream does the same on reload).
//
// Threading: the set is an immutable value; install() swaps it atomically (any thread), checks
// read it lock-free from the handshake threads. Rejections are reported through a hook set
// once at start (before any handshake).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

typedef struct x509_st X509;
typedef struct ssl_st SSL;

namespace common::tls {

class CrlSet {
 public:
  // Every X509 CRL block of a PEM bundle; fails (naming the block) on a bundle with none or a
  // block that does not parse.
  static Result<std::shared_ptr<const CrlSet>> parse_pem(std::string_view pem);
  ~CrlSet();
  CrlSet(const CrlSet&) = delete;
  CrlSet& operator=(const CrlSet&) = delete;

  size_t size() const;
  // True when a CRL of `issuer` revokes `cert`.
  bool revoked(X509* cert, X509* issuer) const;

 private:
  CrlSet();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The set every handshake consults; nullptr (the default) disables checking.
void install_crls(std::shared_ptr<const CrlSet> crls);
std::shared_ptr<const CrlSet> installed_crls();

// True when the installed CRLs revoke a certificate of `ssl`'s verified peer chain (leaf or
// intermediate, each against its issuer in that chain). False without CRLs, without a verified
// chain, or before the handshake. Call on the connection's thread.
bool peer_chain_revoked(SSL* ssl);

// Called with server=true when a client certificate is refused (we are the destination),
// false when a server certificate is refused (we are the source). Set once before handshakes.
void set_crl_rejection_hook(std::function<void(bool server)> hook);

namespace detail {
// For tls.cc's verify callback: report a rejection through the hook.
void report_crl_rejection(bool server);
}  // namespace detail

}  // namespace common::tls
