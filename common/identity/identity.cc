#include "common/identity/identity.h"

#include <array>

namespace common {
namespace {

constexpr std::string_view kScheme = "spiffe://";
// SPIFFE IDs are capped at 2048 bytes by the spec; anything longer is hostile or broken.
constexpr size_t kMaxUriLength = 2048;

// The SPIFFE character set for trust domains and path segments (letters, digits, '.', '-',
// '_'). Excluding everything else rules out percent-escapes, whitespace, NUL, '?', '#', ':'
// and '@' in one place, so two different strings can never name the same identity.
bool valid_part(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Identity::Identity(std::string trust_domain, std::string ns, std::string sa)
    : td_(std::move(trust_domain)), ns_(std::move(ns)), sa_(std::move(sa)) {
  uri_.reserve(kScheme.size() + td_.size() + ns_.size() + sa_.size() + 8);
  uri_.append(kScheme).append(td_).append("/ns/").append(ns_).append("/sa/").append(sa_);
}

std::optional<Identity> Identity::parse(std::string_view uri) {
  if (uri.size() > kMaxUriLength || !uri.starts_with(kScheme)) return std::nullopt;
  std::string_view rest = uri.substr(kScheme.size());

  // Exactly five '/'-separated parts: td, "ns", namespace, "sa", service account.
  std::array<std::string_view, 5> parts;
  size_t n = 0;
  while (true) {
    const size_t slash = rest.find('/');
    if (n == parts.size()) return std::nullopt;  // a sixth part (also catches a trailing '/')
    parts[n++] = rest.substr(0, slash);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (n != parts.size()) return std::nullopt;
  if (parts[1] != "ns" || parts[3] != "sa") return std::nullopt;
  if (!valid_part(parts[0]) || !valid_part(parts[2]) || !valid_part(parts[4])) return std::nullopt;
  return Identity(std::string(parts[0]), std::string(parts[2]), std::string(parts[4]));
}

}  // namespace common
