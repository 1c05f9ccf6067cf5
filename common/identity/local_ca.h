// LocalCa: an in-process certificate authority over Istio's "plugged-in CA" directory layout,
// for single-host meshes and tests (the Istio CA over gRPC is the production source):
//   ca-cert.pem     the signing (intermediate) CA certificate
//   ca-key.pem      its private key
//   root-cert.pem   the root of trust
//   cert-chain.pem  ca-cert followed by its parents up to and including the root
// It signs workload CSRs into leaves that carry exactly the requested SPIFFE identity.
//
// Threading: immutable after load/create; sign() is const and may run on any thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/identity/identity.h"
#include "common/result.h"

namespace common {

class LocalCa {
 public:
  // Reads the four files of `dir` and checks they are consistent (key matches ca-cert, the
  // chain verifies up to root-cert).
  static Result<LocalCa> load(const std::filesystem::path& dir);
  // Loads `dir` if ca-cert.pem exists there; otherwise writes a fresh root + intermediate
  // (EC P-256; root 10 years, intermediate 5 years; O=<trust_domain>) and loads that.
  static Result<LocalCa> create(const std::filesystem::path& dir, std::string_view trust_domain);
  // The same fresh hierarchy as create(), kept in memory only (tests).
  static Result<LocalCa> generate(std::string_view trust_domain);

  // Signs a PEM CSR for `id`. The CSR's signature must verify and its subjectAltName must hold
  // exactly one URI equal to id.uri(); anything else is refused. The leaf: random serial,
  // notBefore = now - min(60 s, ttl/4) (clock skew), notAfter = now + ttl, critical SAN = id,
  // keyUsage digitalSignature+keyEncipherment, EKU serverAuth+clientAuth, CA:FALSE.
  // Returns PEMs, leaf first, then cert-chain.pem's certificates (root last), like the Istio CA.
  Result<std::vector<std::string>> sign(std::string_view csr_pem, const Identity& id,
                                        std::chrono::seconds ttl) const;

  // root-cert.pem content.
  const std::string& roots_pem() const;
  // cert-chain.pem content (signing CA first, root last).
  const std::string& cert_chain_pem() const;

 private:
  struct State;
  explicit LocalCa(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  static Result<LocalCa> from_pems(std::string ca_cert, std::string ca_key, std::string root,
                                   std::string chain);
  std::shared_ptr<const State> state_;
};

}  // namespace common
