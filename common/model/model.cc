#include "common/model/model.h"

#include <array>
#include <charconv>
#include <cstring>

namespace ztunnel {

std::optional<IpAddr> parse_ip(std::string_view text) {
  // Longest textual IPv6 form is 45 chars; anything longer cannot be an address. Zone ids
  // ("fe80::1%eth0") are rejected: they have no meaning across hosts.
  if (text.empty() || text.size() > 45) return std::nullopt;
  for (char c : text) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                    c == '.' || c == ':';
    if (!ok) return std::nullopt;
  }
  boost::system::error_code ec;
  const std::string s(text);
  IpAddr ip = boost::asio::ip::make_address(s, ec);
  if (ec) return std::nullopt;
  return canonical_ip(ip);
}

std::optional<IpAddr> ip_from_bytes(std::string_view raw) {
  if (raw.size() == 4) {
    boost::asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), raw.data(), 4);
    return IpAddr(boost::asio::ip::address_v4(b));
  }
  if (raw.size() == 16) {
    boost::asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), raw.data(), 16);
    return canonical_ip(IpAddr(boost::asio::ip::address_v6(b)));
  }
  return std::nullopt;
}

IpAddr canonical_ip(const IpAddr& ip) {
  if (ip.is_v6()) {
    const auto v6 = ip.to_v6();
    if (v6.is_v4_mapped()) {
      return IpAddr(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6));
    }
  }
  return ip;
}

std::string format_socket_addr(const IpAddr& ip, uint16_t port) {
  std::string out;
  if (ip.is_v6()) {
    out.reserve(48);
    out.append("[").append(ip.to_string()).append("]:");
  } else {
    out.reserve(22);
    out.append(ip.to_string()).append(":");
  }
  out.append(std::to_string(port));
  return out;
}

namespace {

std::array<uint8_t, 16> ip_bytes(const IpAddr& ip, size_t* len) {
  std::array<uint8_t, 16> out{};
  if (ip.is_v4()) {
    const auto b = ip.to_v4().to_bytes();
    std::memcpy(out.data(), b.data(), 4);
    *len = 4;
  } else {
    const auto b = ip.to_v6().to_bytes();
    std::memcpy(out.data(), b.data(), 16);
    *len = 16;
  }
  return out;
}

IpAddr ip_from_array(const std::array<uint8_t, 16>& b, size_t len) {
  return *ip_from_bytes(std::string_view(reinterpret_cast<const char*>(b.data()), len));
}

// True when the first `bits` bits of a and b agree.
bool prefix_equal(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b,
                  unsigned bits) {
  const unsigned full = bits / 8;
  if (std::memcmp(a.data(), b.data(), full) != 0) return false;
  const unsigned rest = bits % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  const auto ip = parse_ip(text.substr(0, slash));
  if (!ip) return std::nullopt;
  const unsigned max_len = ip->is_v4() ? 32 : 128;
  unsigned len = max_len;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc() || p != digits.data() + digits.size() || len > max_len) {
      return std::nullopt;
    }
  }
  // Clear host bits so equal networks compare equal and to_string() is canonical.
  size_t n = 0;
  auto b = ip_bytes(*ip, &n);
  for (size_t i = 0; i < n; ++i) {
    const unsigned bit0 = static_cast<unsigned>(i) * 8;
    if (bit0 >= len) {
      b[i] = 0;
    } else if (bit0 + 8 > len) {
      b[i] &= static_cast<uint8_t>(0xFF << (8 - (len - bit0)));
    }
  }
  return Cidr{ip_from_array(b, n), static_cast<uint8_t>(len)};
}

bool Cidr::contains(const IpAddr& ip) const {
  if (ip.is_v4() != addr.is_v4()) return false;
  size_t n1 = 0, n2 = 0;
  return prefix_equal(ip_bytes(addr, &n1), ip_bytes(ip, &n2), prefix_len);
}

std::string Cidr::to_string() const {
  return addr.to_string() + "/" + std::to_string(prefix_len);
}

std::optional<NetworkAddress> NetworkAddress::parse(std::string_view text) {
  // Split at the first '/', like upstream: networks never contain '/', IPs never do.
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = parse_ip(text.substr(slash + 1));
  if (!ip) return std::nullopt;
  return NetworkAddress{std::string(text.substr(0, slash)), *ip};
}

std::optional<NetworkCidr> NetworkCidr::parse(std::string_view text) {
  // network never contains '/', so the first one ends it; the rest must carry its own length.
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto rest = text.substr(slash + 1);
  if (rest.find('/') == std::string_view::npos) return std::nullopt;
  auto cidr = Cidr::parse(rest);
  if (!cidr) return std::nullopt;
  return NetworkCidr{std::string(text.substr(0, slash)), *cidr};
}

std::optional<NamespacedHostname> NamespacedHostname::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  return NamespacedHostname{std::string(text.substr(0, slash)),
                            std::string(text.substr(slash + 1))};
}

std::string GatewayAddress::to_string() const {
  if (const auto* a = address()) return a->to_string();
  return hostname()->to_string();
}

void PortMap::set(uint16_t service_port, uint16_t target_port) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), service_port,
                             [](const auto& e, uint16_t p) { return e.first < p; });
  if (it != entries_.end() && it->first == service_port) {
    it->second = target_port;
  } else {
    entries_.insert(it, {service_port, target_port});
  }
}

std::optional<uint16_t> PortMap::find(uint16_t service_port) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), service_port,
                             [](const auto& e, uint16_t p) { return e.first < p; });
  if (it != entries_.end() && it->first == service_port) return it->second;
  return std::nullopt;
}

bool StringMatch::matches(std::string_view s) const {
  switch (kind) {
    case Kind::Exact:
      return s == value;
    case Kind::Prefix:
      return s.starts_with(value);
    case Kind::Suffix:
      return s.ends_with(value);
    case Kind::Presence:
      return !s.empty();
  }
  return false;
}

bool AuthzMatch::empty() const {
  return namespaces.empty() && not_namespaces.empty() && principals.empty() &&
         not_principals.empty() && source_ips.empty() && not_source_ips.empty() &&
         destination_ips.empty() && not_destination_ips.empty() && destination_ports.empty() &&
         not_destination_ports.empty() && service_accounts.empty() &&
         not_service_accounts.empty();
}

std::string_view to_string(TunnelProtocol p) { return p == TunnelProtocol::Hbone ? "HBONE" : "TCP"; }
std::string_view to_string(NetworkMode m) {
  return m == NetworkMode::HostNetwork ? "HostNetwork" : "Standard";
}
std::string_view to_string(HealthStatus s) {
  return s == HealthStatus::Unhealthy ? "Unhealthy" : "Healthy";
}
std::string_view to_string(LoadBalancerMode m) {
  switch (m) {
    case LoadBalancerMode::Standard: return "Standard";
    case LoadBalancerMode::Strict: return "Strict";
    case LoadBalancerMode::Failover: return "Failover";
    case LoadBalancerMode::Passthrough: return "Passthrough";
  }
  return "Standard";
}
std::string_view to_string(LoadBalancerScope s) {
  switch (s) {
    case LoadBalancerScope::Region: return "Region";
    case LoadBalancerScope::Zone: return "Zone";
    case LoadBalancerScope::Subzone: return "Subzone";
    case LoadBalancerScope::Node: return "Node";
    case LoadBalancerScope::Cluster: return "Cluster";
    case LoadBalancerScope::Network: return "Network";
  }
  return "Region";
}
std::string_view to_string(LoadBalancerHealthPolicy p) {
  return p == LoadBalancerHealthPolicy::AllowAll ? "AllowAll" : "OnlyHealthy";
}
std::string_view to_string(IpFamily f) {
  switch (f) {
    case IpFamily::Dual: return "Dual";
    case IpFamily::IPv4: return "IPv4";
    case IpFamily::IPv6: return "IPv6";
  }
  return "Dual";
}
std::string_view to_string(AuthzScope s) {
  switch (s) {
    case AuthzScope::Global: return "Global";
    case AuthzScope::Namespace: return "Namespace";
    case AuthzScope::WorkloadSelector: return "WorkloadSelector";
  }
  return "Namespace";
}
std::string_view to_string(AuthzAction a) { return a == AuthzAction::Deny ? "Deny" : "Allow"; }
std::string_view to_string(ApplicationTunnel::Protocol p) {
  return p == ApplicationTunnel::Protocol::Proxy ? "PROXY" : "NONE";
}

}  // namespace ztunnel
