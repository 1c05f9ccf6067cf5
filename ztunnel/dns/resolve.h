// Local name resolution for the DNS proxy: which queries ztunnel answers itself from the mesh
// config, and with what. Pure functions over a Snapshot; no I/O (dns_proxy.h does the I/O).
//
// Semantics (upstream ztunnel's DNS server):
//  * Only class IN, type A/AAAA queries are answered locally; everything else is forwarded.
//  * Aliases of the requested name N, tried in order: N itself; N expanded to a Kubernetes
//    FQDN from the client's namespace (1 label `svc` -> svc.<ns>.svc.<domain>; 2 labels
//    `svc.ns` -> svc.ns.svc.<domain> (and, as pod host, +<client-ns>.svc.<domain>); 3 labels
//    ending in `svc` -> +.<domain>); then N with one of the client's search domains
//    (<ns>.svc.<domain>, svc.<domain>, <domain>) stripped, and that stripped name's expansions.
//  * For each alias, the exact hostname and then its wildcards (*.rest, *.shorter...) are looked
//    up among all Services. Services without a VIP are skipped (so the name is forwarded) unless
//    they are Kubernetes headless services (hostname under .svc.<domain>). Among several
//    services with the hostname, the client's namespace wins, then the preferred namespace,
//    then the first one.
//  * Pod hosts of headless services: <pod>.<subdomain>.<ns>.svc.<domain> -> the IPs of the
//    endpoint workload of headless service <subdomain>.<ns>.svc.<domain> whose name or
//    hostname is <pod>.
//  * Addresses: VIPs of the query's family on the client's network; headless services return
//    each endpoint workload's first address of that family. The family also has to be allowed
//    by the service's ip_families. Order is shuffled. A matched name with no address of that
//    family is NOERROR with no answers (not NXDOMAIN: the name exists).
//  * If the match came from a stripped search domain (and not via a wildcard), the answer is a
//    CNAME from the requested name to the stripped name, followed by the addresses under the
//    stripped name; otherwise addresses are owned by the requested name. TTL 30 s.
//
// Threading: HostnameIndex is immutable after build and may be shared by any number of threads.
// shared_index() keeps one process-wide index for the newest snapshot (atomic shared_ptr), so
// per-pod proxies do not each build their own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ztunnel/dns/message.h"
#include "common/state/snapshot.h"

namespace ztunnel::dns {

// hostname -> services with that hostname (any namespace), for one snapshot.
class HostnameIndex {
 public:
  explicit HostnameIndex(SnapshotConstSharedPtr snapshot);
  const Snapshot& snapshot() const { return *snapshot_; }
  const SnapshotConstSharedPtr& snapshot_ptr() const { return snapshot_; }
  // Services whose hostname is exactly `host` (lower-case compare), in snapshot order.
  const std::vector<const Service*>* find(std::string_view host) const;

  // The process-wide index for `snapshot`, built on first use after a config change. Old
  // indexes (and their snapshots) are freed once no proxy holds them.
  static std::shared_ptr<const HostnameIndex> shared_index(const SnapshotConstSharedPtr& snapshot);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  SnapshotConstSharedPtr snapshot_;  // keeps the Service pointers valid
  std::unordered_map<std::string, std::vector<const Service*>, Hash, std::equal_to<>> by_host_;
};

// Who is asking: fixed per pod.
struct ResolveContext {
  std::string client_ns;       // search domains and same-namespace preference
  std::string client_network;  // VIPs of other networks are not returned
  std::string cluster_domain = "cluster.local";
  std::string preferred_namespace;  // PREFERED_SERVICE_NAMESPACE; "" = none
};

struct LocalAnswer {
  std::vector<Answer> answers;  // may be empty: NOERROR/NODATA
};

// nullopt = not a name ztunnel owns: forward it upstream. `random` seeds the address shuffle.
std::optional<LocalAnswer> resolve_local(const HostnameIndex& index, const ResolveContext& ctx,
                                         const Question& question, uint64_t random);

}  // namespace ztunnel::dns
