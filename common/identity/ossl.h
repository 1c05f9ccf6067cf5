// OpenSSL glue shared by the certificate code (certs.cc, local_ca.cc, tls.cc): owning smart
// pointers for the libcrypto types and PEM/X509 helpers that take raw OpenSSL types.
// Internal to common/: include it only from .cc files that already speak OpenSSL, so the
// OpenSSL headers stay out of widely included headers. All functions are thread-safe (they
// only touch their arguments).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace common::ossl {

template <auto Fn>
struct Free {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};

using X509Ptr = std::unique_ptr<X509, Free<X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, Free<X509_REQ_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Free<BIO_free_all>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Free<GENERAL_NAMES_free>>;
using Asn1IntPtr = std::unique_ptr<ASN1_INTEGER, Free<ASN1_INTEGER_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Free<BN_free>>;

// Drains the thread's OpenSSL error queue into one line ("" when empty). Call right after a
// failing OpenSSL function so unrelated errors do not pile up on the thread.
std::string drain_errors();
// Error with `what` plus the drained OpenSSL error queue.
Error error(std::string_view what);

// Every CERTIFICATE block of a PEM bundle, in order. Fails on an empty bundle or a block that
// does not parse.
Result<std::vector<X509Ptr>> parse_pem_certs(std::string_view pem);
Result<PkeyPtr> parse_pem_key(std::string_view pem);
Result<X509ReqPtr> parse_pem_csr(std::string_view pem);
// SAN of a CSR's requested extensions (null when absent); *critical set when present.
GeneralNamesPtr csr_san(X509_REQ* req, bool* critical);
std::string to_pem(X509* cert);
std::string key_to_pkcs8_pem(EVP_PKEY* key);

// URI entries of the subjectAltName extension, in certificate order. Only GEN_URI entries are
// returned; an entry with an embedded NUL or that is not an IA5String is skipped (never
// truncated), so a forged "spiffe://a\0..." cannot pass as "spiffe://a".
std::vector<std::string> uri_sans(const X509* cert);
std::vector<std::string> uri_sans(const GENERAL_NAMES* names);

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t);
// Uppercase hex of the serial number (no separators), "" on failure.
std::string serial_hex(const X509* cert);

// A SAN extension holding exactly one URI.
GeneralNamesPtr uri_general_names(std::string_view uri);

// Fresh ECDSA P-256 key.
Result<PkeyPtr> generate_p256();

// What issue_cert() puts into a certificate. Subject is empty when `subject` is null.
struct CertSpec {
  EVP_PKEY* public_key = nullptr;   // the subject's key
  const X509_NAME* subject = nullptr;
  X509* issuer = nullptr;           // null: self-signed (issuer_key must be the subject's key)
  EVP_PKEY* issuer_key = nullptr;
  std::chrono::seconds backdate{0};  // notBefore = now - backdate
  std::chrono::seconds ttl{0};       // notAfter = now + ttl
  bool ca = false;                   // CA: basicConstraints CA:TRUE, keyCertSign+cRLSign
  // Leaf only: SAN (added critical), keyUsage digitalSignature+keyEncipherment,
  // EKU serverAuth+clientAuth.
  const GENERAL_NAMES* san = nullptr;
  const char* eku = "serverAuth,clientAuth";  // leaf only; tests narrow it
};
// Builds and signs (SHA-256) a v3 certificate with a random positive 127-bit serial, SKI/AKI.
Result<X509Ptr> issue_cert(const CertSpec& spec);

}  // namespace common::ossl
