// Config model: the plain C++ types ztunnel routes and authorizes with. They mirror upstream
// ztunnel's internal model (istio.workload.Workload / Service, istio.security.Authorization)
// after conversion: defaults are applied (service account "default", trust domain
// "cluster.local", capacity 1, HBONE port 15008), enums are closed C++ enums, addresses are
// parsed. Both config sources (delta xDS and the LOCAL_XDS_PATH YAML) produce these types and
// nothing on the data path ever sees protobuf or YAML.
//
// Threading: plain value types. Once placed in a Snapshot (state.h) they are immutable and read
// concurrently by every worker without locks.
// Invariants: IPs are stored canonical (an IPv4-mapped IPv6 address is stored as IPv4) so index
// lookups by address are exact-match; PortMap keys are unique.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/identity/identity.h"

namespace ztunnel {

using IpAddr = boost::asio::ip::address;

// Parses a literal IPv4/IPv6 address (no brackets, no zone id, no surrounding spaces) and
// returns it canonicalised. nullopt for anything else.
std::optional<IpAddr> parse_ip(std::string_view text);
// Converts 4 or 16 raw network-order bytes (the xDS `bytes` encoding) into an address.
std::optional<IpAddr> ip_from_bytes(std::string_view raw);
// IPv4-mapped IPv6 (::ffff:a.b.c.d, what a dual-stack socket reports) -> plain IPv4.
IpAddr canonical_ip(const IpAddr& ip);

// "ip:port", IPv6 in brackets: the form of an HBONE :authority and of upstream's logs.
std::string format_socket_addr(const IpAddr& ip, uint16_t port);

struct SocketAddr {
  IpAddr ip;
  uint16_t port = 0;
  std::string to_string() const { return format_socket_addr(ip, port); }
  bool operator==(const SocketAddr&) const = default;
};

// An IP prefix as used by authorization policies (source_ips / destination_ips).
struct Cidr {
  IpAddr addr;          // network address, host bits cleared
  uint8_t prefix_len = 0;

  // "10.0.0.0/8", "fd00::/64"; a bare address means a host prefix (/32 or /128).
  static std::optional<Cidr> parse(std::string_view text);
  // Address families never match each other (as upstream's ipnet).
  bool contains(const IpAddr& ip) const;
  std::string to_string() const;
  bool operator==(const Cidr&) const = default;
};

// (network, ip): the key of workloads and service VIPs. Network "" is the default network.
struct NetworkAddress {
  std::string network;
  IpAddr ip;

  // "network/ip" (network may be empty: "/10.0.0.1"). A string with no '/' is rejected.
  static std::optional<NetworkAddress> parse(std::string_view text);
  std::string to_string() const { return network + "/" + ip.to_string(); }
  bool operator==(const NetworkAddress&) const = default;
};

// (network, prefix): a service's CIDR VIP (xDS NetworkAddress whose `length` is shorter than the
// address width). Text form "network/ip/len", as NetworkAddress's "network/ip" plus the length.
struct NetworkCidr {
  std::string network;
  Cidr cidr;

  // "network/10.1.0.0/16" (network may be empty); the length is required, host bits are cleared.
  static std::optional<NetworkCidr> parse(std::string_view text);
  std::string to_string() const { return network + "/" + cidr.to_string(); }
  bool operator==(const NetworkCidr&) const = default;
};

// "namespace/hostname", the key of a Service.
struct NamespacedHostname {
  std::string ns;
  std::string hostname;

  static std::optional<NamespacedHostname> parse(std::string_view text);
  std::string to_string() const { return ns + "/" + hostname; }
  bool operator==(const NamespacedHostname&) const = default;
};

inline constexpr uint16_t kDefaultHboneMtlsPort = 15008;

// Where a waypoint or E/W gateway lives: an address or a service hostname.
struct GatewayAddress {
  std::variant<NetworkAddress, NamespacedHostname> destination;
  uint16_t hbone_mtls_port = kDefaultHboneMtlsPort;

  const NetworkAddress* address() const { return std::get_if<NetworkAddress>(&destination); }
  const NamespacedHostname* hostname() const {
    return std::get_if<NamespacedHostname>(&destination);
  }
  std::string to_string() const;  // same text form as its YAML "destination"
  bool operator==(const GatewayAddress&) const = default;
};

// Service port -> target port. Small (a handful of entries), so a sorted vector beats a map on
// the per-connection lookup path.
class PortMap {
 public:
  // Inserts or replaces.
  void set(uint16_t service_port, uint16_t target_port);
  std::optional<uint16_t> find(uint16_t service_port) const;
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  bool operator==(const PortMap&) const = default;

 private:
  std::vector<std::pair<uint16_t, uint16_t>> entries_;  // sorted by service port
};

enum class TunnelProtocol : uint8_t { None, Hbone };
enum class NetworkMode : uint8_t { Standard, HostNetwork };
enum class HealthStatus : uint8_t { Healthy, Unhealthy };

struct Locality {
  std::string region;
  std::string zone;
  std::string subzone;
  bool empty() const { return region.empty() && zone.empty() && subzone.empty(); }
  bool operator==(const Locality&) const = default;
};

// Destination-side tunnel into the app (waypoint "sandwich"): PROXY protocol v2 to `port`.
struct ApplicationTunnel {
  enum class Protocol : uint8_t { None, Proxy };
  Protocol protocol = Protocol::None;
  uint16_t port = 0;  // 0 = the original destination port
  bool operator==(const ApplicationTunnel&) const = default;
};

inline constexpr std::string_view kDefaultTrustDomain = "cluster.local";
inline constexpr std::string_view kDefaultServiceAccount = "default";

struct Workload {
  std::string uid;  // primary key, e.g. "cluster1//v1/Pod/ns/name"
  std::string name;
  std::string ns;
  std::string service_account{kDefaultServiceAccount};
  std::string trust_domain{kDefaultTrustDomain};
  std::vector<IpAddr> addresses;
  std::string hostname;  // DNS-resolved workloads only
  std::string network;
  TunnelProtocol tunnel_protocol = TunnelProtocol::None;
  NetworkMode network_mode = NetworkMode::Standard;
  std::string node;
  std::string canonical_name;
  std::string canonical_revision;
  std::string workload_type;  // lower-case: deployment | cronjob | pod | job
  std::string workload_name;
  HealthStatus status = HealthStatus::Healthy;
  std::string cluster_id;
  Locality locality;
  uint32_t capacity = 1;  // LB weight
  bool native_tunnel = false;
  std::optional<GatewayAddress> waypoint;
  std::optional<GatewayAddress> network_gateway;
  std::optional<ApplicationTunnel> application_tunnel;
  // "ns/hostname" of each service this workload backs -> per-endpoint port overrides.
  std::map<std::string, PortMap> services;
  // Keys ("ns/name") of selector-scoped policies that apply to this workload.
  std::vector<std::string> authorization_policies;

  common::Identity identity() const { return common::Identity(trust_domain, ns, service_account); }
  bool has_address(const IpAddr& ip) const {
    return std::find(addresses.begin(), addresses.end(), ip) != addresses.end();
  }
  // Field by field (defaulted, so a new field is never forgotten): the control plane reuses a
  // resource's serialization when its workload compares equal.
  bool operator==(const Workload&) const = default;
};

enum class LoadBalancerMode : uint8_t { Standard, Strict, Failover, Passthrough };
enum class LoadBalancerScope : uint8_t { Region, Zone, Subzone, Node, Cluster, Network };
enum class LoadBalancerHealthPolicy : uint8_t { OnlyHealthy, AllowAll };
enum class IpFamily : uint8_t { Dual, IPv4, IPv6 };

struct LoadBalancer {
  std::vector<LoadBalancerScope> routing_preferences;
  LoadBalancerMode mode = LoadBalancerMode::Standard;
  LoadBalancerHealthPolicy health_policy = LoadBalancerHealthPolicy::OnlyHealthy;
  bool operator==(const LoadBalancer&) const = default;
};

// One backend of a service (derived from Workload::services, or listed explicitly).
struct Endpoint {
  std::string workload_uid;
  PortMap port;  // per-endpoint override of the service's target port
  HealthStatus status = HealthStatus::Healthy;
  bool operator==(const Endpoint&) const = default;
};

struct Service {
  std::string name;
  std::string ns;
  std::string hostname;
  std::vector<NetworkAddress> vips;  // full-width addresses only
  // Addresses given with a shorter prefix: a destination that is no exact VIP of any service
  // matches the service whose CIDR VIP contains it, longest prefix first (upstream's cidrVips).
  std::vector<NetworkCidr> cidr_vips;
  // Service port -> target port. Target 0 means "named port": only endpoints carrying their
  // own override for that service port can serve it (upstream semantics).
  PortMap ports;
  std::vector<std::string> subject_alt_names;  // extra SPIFFE URIs accepted for the backends
  std::optional<GatewayAddress> waypoint;
  std::optional<LoadBalancer> load_balancer;
  std::optional<IpFamily> ip_families;
  bool canonical = false;
  // Endpoints given explicitly with the service (local config `endpoints`); the snapshot merges
  // them with those derived from workloads.
  std::vector<Endpoint> endpoints;

  std::string key() const { return ns + "/" + hostname; }
  bool operator==(const Service&) const = default;
};

// ---- L4 authorization (istio.security.Authorization) ----

struct StringMatch {
  enum class Kind : uint8_t { Exact, Prefix, Suffix, Presence };
  Kind kind = Kind::Exact;
  std::string value;  // unused for Presence

  // Literal comparison; never a regex or glob.
  bool matches(std::string_view s) const;
  bool operator==(const StringMatch&) const = default;
};

struct ServiceAccountMatch {
  std::string ns;
  std::string service_account;
  bool operator==(const ServiceAccountMatch&) const = default;
};

// Every populated field must pass (AND across fields); within a positive list any entry may
// match, within a not_ list none may.
struct AuthzMatch {
  std::vector<StringMatch> namespaces, not_namespaces;
  std::vector<StringMatch> principals, not_principals;  // identity without "spiffe://"
  std::vector<Cidr> source_ips, not_source_ips;
  std::vector<Cidr> destination_ips, not_destination_ips;
  std::vector<uint16_t> destination_ports, not_destination_ports;
  std::vector<ServiceAccountMatch> service_accounts, not_service_accounts;

  bool empty() const;
};

using AuthzClause = std::vector<AuthzMatch>;  // matches: OR
using AuthzRule = std::vector<AuthzClause>;   // clauses: AND

enum class AuthzScope : uint8_t { Global, Namespace, WorkloadSelector };
enum class AuthzAction : uint8_t { Allow, Deny };

struct Authorization {
  std::string name;
  std::string ns;  // "" for mesh-wide (global) policies
  AuthzScope scope = AuthzScope::Namespace;
  AuthzAction action = AuthzAction::Allow;
  std::vector<AuthzRule> rules;  // rules: OR; no rules = never matches
  bool dry_run = false;

  std::string key() const { return ns + "/" + name; }
};

// Text names used by the YAML format and /config_dump (upstream's serde spellings).
std::string_view to_string(TunnelProtocol p);      // "TCP" | "HBONE"
std::string_view to_string(NetworkMode m);         // "Standard" | "HostNetwork"
std::string_view to_string(HealthStatus s);        // "Healthy" | "Unhealthy"
std::string_view to_string(LoadBalancerMode m);    // "Standard" | "Strict" | "Failover" | "Passthrough"
std::string_view to_string(LoadBalancerScope s);   // "Region" ... "Network"
std::string_view to_string(LoadBalancerHealthPolicy p);  // "OnlyHealthy" | "AllowAll"
std::string_view to_string(IpFamily f);            // "Dual" | "IPv4" | "IPv6"
std::string_view to_string(AuthzScope s);          // "Global" | "Namespace" | "WorkloadSelector"
std::string_view to_string(AuthzAction a);         // "Allow" | "Deny"
std::string_view to_string(ApplicationTunnel::Protocol p);  // "NONE" | "PROXY"

}  // namespace ztunnel
