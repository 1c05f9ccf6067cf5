// Snapshot: one immutable, fully indexed view of the mesh config (workloads, services,
// authorization policies) with its lookups and service endpoint selection (upstream's
// load_balance) — shared by ztunnel, the waypoint and the control plane. ztunnel's outbound
// routing decision reads it from ztunnel/state/route.h.
//
// Threading: a Snapshot is built once by the single config writer (control thread), published
// as std::shared_ptr<const Snapshot>, and then only read — concurrently, without locks — by any
// number of workers. A worker loads the current pointer once per connection and keeps it for
// the connection's life. Every pointer returned by a lookup (const Workload*, const Service*,
// ...) points into the snapshot and is valid exactly as long as the caller holds that
// shared_ptr.
// Invariants: indexes are consistent with the stored vectors by construction (no mutation after
// build); the Workload/Service/Authorization objects are shared, immutable and may be held by
// several snapshots at once (a delta rebuild copies pointers, not objects, so two generations
// of a 50k-workload mesh cost one set of objects plus two sets of indexes); endpoints are
// already health-filtered (dropped when Unhealthy unless the service's
// health policy is AllowAll) and always resolve to a workload of the same snapshot.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/identity/identity.h"
#include "common/model/model.h"

namespace ztunnel {

struct LocalConfig;
class WorkloadIndex;

// An endpoint whose workload has been resolved at build time. `port` points into the
// workload's services map (or the service's explicit endpoint): objects of the same snapshot.
struct ServiceEndpoint {
  const Workload* workload = nullptr;
  const PortMap* port = nullptr;  // per-endpoint target port overrides; never null
  HealthStatus status = HealthStatus::Healthy;
};

// Result of choosing a service backend.
struct EndpointChoice {
  const Workload* workload = nullptr;
  uint16_t target_port = 0;
};

// How endpoints are filtered: Standard for user traffic to a service port; Waypoint when the
// "port" is the waypoint's HBONE port (app-tunnel waypoints need no service port mapping).
enum class ResolutionMode : uint8_t { Standard, Waypoint };

class Snapshot;
using SnapshotConstSharedPtr = std::shared_ptr<const Snapshot>;
using WorkloadPtr = std::shared_ptr<const Workload>;
using ServicePtr = std::shared_ptr<const Service>;
using AuthorizationPtr = std::shared_ptr<const Authorization>;

class Snapshot {
 public:
  // Builds and indexes. Later duplicates of a workload uid / service key / policy key replace
  // earlier ones (xDS semantics). `version` is informational (shown in /config_dump).
  static SnapshotConstSharedPtr build(std::vector<Workload> workloads,
                                      std::vector<Service> services,
                                      std::vector<Authorization> policies, uint64_t version = 0);
  static SnapshotConstSharedPtr from_local_config(LocalConfig config, uint64_t version = 0);
  // Same semantics over shared objects (the xDS path: unchanged objects are reused between
  // generations). Addresses that are not canonical are fixed on a private copy.
  // `prepared`: the caller guarantees unique keys and canonical addresses (XdsSource keeps
  // resources by name and normalises at conversion), so both passes are skipped — they were a
  // third of the cost of a 50k-workload rebuild.
  static SnapshotConstSharedPtr build_shared(std::vector<WorkloadPtr> workloads,
                                             std::vector<ServicePtr> services,
                                             std::vector<AuthorizationPtr> policies,
                                             uint64_t version = 0, bool prepared = false);
  // The next generation after `prev` for prepared input (as build_shared with prepared=true),
  // when the caller knows which workloads changed: `workload_changes` are (old, new) pairs
  // (either may be null) that turn prev's workload set into `workloads`. The workload indexes
  // are then derived from prev's copy-on-write (O(change)); the service and policy lookups
  // are shared with prev when `services` / `policies` are prev's objects in prev's order (else
  // rebuilt: O(services), O(policies)); endpoint lists are shared per service and rebuilt
  // only for the services a changed workload joins or leaves (all of them when a service has
  // explicit endpoints, local config only). Same result as build_shared.
  static SnapshotConstSharedPtr update(const Snapshot& prev, std::vector<WorkloadPtr> workloads,
                                       std::vector<ServicePtr> services, std::vector<AuthorizationPtr> policies,
                                       std::span<const std::pair<WorkloadPtr, WorkloadPtr>> workload_changes,
                                       uint64_t version);
  static SnapshotConstSharedPtr empty();

  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  uint64_t version() const { return version_; }
  const std::vector<WorkloadPtr>& workloads() const { return workloads_; }
  const std::vector<ServicePtr>& services() const { return services_; }
  const std::vector<AuthorizationPtr>& policies() const { return policies_; }

  // ---- lookups (no allocation) ----
  const Workload* find_workload_by_uid(std::string_view uid) const;
  // Workload owning (network, ip); HOST_NETWORK workloads are never indexed by IP. If several
  // claim the address, upstream's preference applies (a Pod over others, then HBONE).
  const Workload* find_workload(std::string_view network, const IpAddr& ip) const;
  // The ZDS "which xDS workload is this pod" question, by (namespace, name, service account):
  // a hash lookup by name in this snapshot's index (no allocation), cheap enough for every
  // connection. Several matches (never in a sane mesh) -> the smallest uid.
  const Workload* find_workload_by_info(std::string_view ns, std::string_view name,
                                        std::string_view service_account) const;
  // The service at (network, vip): an exact VIP first; else (upstream's cidrVips) the service
  // whose CIDR VIP on that network contains `vip`, the longest prefix winning. The CIDR scan is
  // linear in the number of CIDR VIPs and skipped entirely when there are none.
  const Service* find_service(std::string_view network, const IpAddr& vip) const;
  const Service* find_service_by_host(std::string_view ns, std::string_view hostname) const;
  const Service* find_service_by_key(std::string_view ns_slash_hostname) const;
  const Authorization* find_policy(std::string_view ns_slash_name) const;
  // Namespace-scoped policies of `ns`. Global-scope policies live under ns "" (upstream).
  std::span<const Authorization* const> namespace_policies(std::string_view ns) const;
  std::span<const Authorization* const> global_policies() const { return namespace_policies(""); }
  std::span<const ServiceEndpoint> endpoints(const Service& service) const;

  // Services this workload backs (allocates; not for the per-byte path).
  std::vector<const Service*> services_of(const Workload& workload) const;

  // Target port of `workload` as a backend of `service` for `service_port`: the endpoint's
  // override, else the service's non-zero mapping, else (application tunnel with a port) the
  // service port itself; nullopt when the workload cannot serve that port.
  std::optional<uint16_t> target_port(const Service& service, uint16_t service_port,
                                      const Workload& workload) const;

  // Upstream's load_balance + target port selection. Candidates: healthy endpoints that have
  // the port; with a non-Standard LoadBalancer, endpoints are ranked by how many leading
  // routing preferences they share with `source` (Strict drops anything not matching all), and
  // only the best rank is kept; the pick is weighted by Workload::capacity (all weights 0 ->
  // nullopt, as upstream). `random` is any uniformly random 64-bit value (see lb_random()).
  std::optional<EndpointChoice> choose_endpoint(const Service& service, uint16_t service_port,
                                                const Workload* source, uint64_t random,
                                                ResolutionMode mode = ResolutionMode::Standard) const;

  // upstream /config_dump shape: {"workloads": [...], "services": [...], "policies": [...]}
  // with upstream's camelCase field names.
  nlohmann::json to_json() const;

 private:
  struct Tag {};

 public:
  explicit Snapshot(Tag) {}

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename T>
  using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;
  // ip -> [(network, index)]; networks per IP are almost always exactly one.
  using AddressIndex = std::unordered_map<IpAddr, std::vector<std::pair<std::string, size_t>>>;

  // Service lookups, immutable and shared by generations with the same service objects.
  struct CidrVip {
    std::string network;
    Cidr cidr;
    size_t index = 0;  // into services_
  };
  struct ServiceLookup {
    AddressIndex by_vip;
    std::vector<CidrVip> by_cidr;  // longest prefix first; one entry per (network, prefix)
    StringMap<size_t> by_key;
    std::unordered_map<const Service*, size_t> position;  // object -> position in services_
    bool explicit_endpoints = false;                       // some service lists endpoints itself
  };
  struct PolicyLookup {
    StringMap<size_t> by_key;
    StringMap<std::vector<const Authorization*>> by_ns;
  };
  using EndpointList = std::shared_ptr<const std::vector<ServiceEndpoint>>;

  void index();
  void index_services();
  void index_policies();
  EndpointList build_endpoints(const Service& s) const;

  uint64_t version_ = 0;
  std::vector<WorkloadPtr> workloads_;
  std::vector<ServicePtr> services_;
  std::vector<AuthorizationPtr> policies_;

  // By uid, by address and service membership; shared with neighbouring generations.
  std::shared_ptr<const WorkloadIndex> workload_index_;
  std::shared_ptr<const ServiceLookup> services_lookup_;
  std::vector<EndpointList> endpoints_;  // parallel to services_; each shared while unchanged
  std::shared_ptr<const PolicyLookup> policies_lookup_;
};

// A fast per-thread PRNG for load balancing (not for anything security related).
uint64_t lb_random();

}  // namespace ztunnel
