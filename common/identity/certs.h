// Certificate material as PEM strings: workload key and CSR generation (the Istio CA request
// shape), PEM chain parsing, and small builders for CA certificates used by the local CA, the
// cacerts tooling and tests. No OpenSSL types leak from this header (see common/identity/ossl.h for the
// internal OpenSSL-level helpers).
//
// Workload keys are ECDSA P-256 in PKCS#8 PEM; CSRs are signed with SHA-256, have an empty
// subject and exactly one critical URI SAN = the SPIFFE identity (as upstream ztunnel sends).
// All functions are pure and thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/identity/identity.h"
#include "common/result.h"

namespace common::certs {

// A fresh ECDSA P-256 private key, PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----").
Result<std::string> generate_key_pem();

// CSR for `id` signed by `key_pem`: SHA-256, empty subject, one critical URI SAN.
Result<std::string> make_csr(std::string_view key_pem, const Identity& id);

struct KeyAndCsr {
  std::string key_pem;
  std::string csr_pem;
};
// Both in one go: what a CA client sends per fetch (a new key each time; keys are never reused).
Result<KeyAndCsr> generate_key_and_csr(const Identity& id);

// What a CA checks in a CSR (and what tests assert about ours).
struct CsrSummary {
  std::vector<std::string> uri_sans;  // from the requested subjectAltName extension
  bool san_critical = false;
  bool subject_empty = false;
  bool signature_ok = false;          // self-signature verifies with the CSR's own key
  std::string key_type;               // "EC" or OpenSSL's key type name
  std::string curve;                  // EC group, e.g. "prime256v1"; "" otherwise
  std::string signature_algorithm;    // e.g. "ecdsa-with-SHA256"
};
Result<CsrSummary> inspect_csr(std::string_view csr_pem);

// What the rest of the program needs to know about one certificate.
struct CertSummary {
  std::string pem;            // the certificate alone, re-encoded as PEM
  std::string serial_hex;     // uppercase hex, no separators
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  std::vector<std::string> uri_sans;  // GEN_URI entries only, NUL-free, in order
  bool self_signed = false;           // issuer == subject and the signature verifies
};

// Splits a PEM bundle into its certificates (each re-encoded as PEM), in order. Fails on an
// empty bundle or on a block that does not parse.
Result<std::vector<std::string>> split_pem_chain(std::string_view pem);
// Summaries of every certificate of a PEM bundle, in order.
Result<std::vector<CertSummary>> inspect_pem_chain(std::string_view pem);
// Summary of the first certificate of a PEM bundle (the leaf of a chain).
Result<CertSummary> inspect_pem(std::string_view pem);

// URI SANs of a DER certificate; empty when it does not parse. Input may be hostile (fuzzed).
std::vector<std::string> uri_sans_from_der(std::string_view der);

// RFC 3339 UTC timestamp with second precision, e.g. "2026-08-01T12:00:00Z".
std::string to_rfc3339(std::chrono::system_clock::time_point t);

// A CA certificate and its key (PKCS#8 PEM).
struct CaMaterial {
  std::string cert_pem;
  std::string key_pem;
};
// Self-signed root CA (EC P-256, SHA-256, basicConstraints CA:TRUE critical, keyUsage
// keyCertSign+cRLSign critical). Subject: O=<organization>, CN=<common_name>.
Result<CaMaterial> make_root_ca(std::string_view organization, std::string_view common_name,
                                std::chrono::seconds ttl);
// Intermediate CA signed by `parent`; it must not outlive its parent.
Result<CaMaterial> make_intermediate_ca(const CaMaterial& parent, std::string_view organization,
                                        std::string_view common_name, std::chrono::seconds ttl);

// A TLS serving leaf (a control plane's own certificate, test servers) signed by `ca`: a fresh
// EC P-256 key, empty subject, a critical subjectAltName holding every `dns_names` entry (DNS)
// and every `ip_addresses` entry (IPv4 or IPv6 literal, IP), keyUsage digitalSignature+
// keyEncipherment, EKU serverAuth+clientAuth, CA:FALSE, notBefore = now - 60 s,
// notAfter = now + ttl. At least one name is required; a malformed IP or an empty/space-holding
// DNS name fails naming it. cert_pem is the leaf alone: a server whose `ca` is an intermediate
// appends the CA chain (ca.cert_pem and its parents) when serving. key_pem is PKCS#8.
struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};
Result<CertAndKey> issue_server_cert(const CaMaterial& ca, const std::vector<std::string>& dns_names,
                                     const std::vector<std::string>& ip_addresses,
                                     std::chrono::seconds ttl);

}  // namespace common::certs
