// Identity: a SPIFFE workload identity of the exact Istio form
//   spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>
// Parsing is strict (five path segments, literal "ns" and "sa", no empty parts, no
// percent-escapes, no NUL or whitespace), because the identity decides authorization.
// Immutable value type; safe to share between threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace common {

class Identity {
 public:
  Identity(std::string trust_domain, std::string ns, std::string sa);

  // Parses "spiffe://td/ns/x/sa/y". Returns nullopt for anything else.
  static std::optional<Identity> parse(std::string_view uri);

  const std::string& trust_domain() const { return td_; }
  const std::string& ns() const { return ns_; }
  const std::string& sa() const { return sa_; }
  // Full URI with the spiffe:// scheme.
  const std::string& uri() const { return uri_; }
  // The URI without "spiffe://", the form AuthorizationPolicy principals match against.
  std::string_view principal() const { return std::string_view(uri_).substr(9); }

  bool operator==(const Identity& o) const { return uri_ == o.uri_; }
  bool operator<(const Identity& o) const { return uri_ < o.uri_; }

 private:
  std::string td_, ns_, sa_, uri_;
};

}  // namespace common
