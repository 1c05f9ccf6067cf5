// AdsServer: the control plane's delta ADS service
// (envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources), serving
// the compiled mesh to ztunnels as istiod does (ztunnel-facts §4.1).
//
// State: an immutable ServedState (per type URL: resource name -> {version, Any bytes}) that
// the directory watcher replaces with set_state(); streams are woken and each sends its client
// only what differs from what that client has. When the new state lists what changed since
// the previous one (ServedState::changed) and a wildcard stream had caught up with the
// previous one, the stream compares only those names (the last 32 states' lists are kept);
// otherwise it walks the whole type.
//
// Per stream:
// - The `authorization` metadata must be a known bearer token (TokenAuthenticator), else the
//   call ends UNAUTHENTICATED before anything is read.
// - A reader thread reads requests into a queue; the handler thread applies them and writes, so
//   pushes on a state change do not wait for the client to speak.
// - Per type the stream tracks the subscription (wildcard: empty subscribe list on the first
//   request, or "*"; explicit names; unsubscribe) and what the client has (name -> version,
//   seeded from initial_resource_versions on the first request of the type). A response
//   carries the resources whose version differs and, in removed_resources, the names the
//   client has that no longer exist (and explicitly subscribed names that do not exist), so a
//   reconnect is exact: nothing resent, nothing lost. The first request of every type gets a
//   response even when empty (the client's readiness waits for it); unknown type URLs get an
//   empty one and a log line.
// - What was sent counts as what the client has once sent: an ACK changes nothing, and a
//   NACK (response_nonce + error_detail) is logged at warn, counted, and not answered by a
//   resend of the rejected versions (as istiod; a resend would loop).
//
// Threading: set_state(), state(), clients(), stats() and shutdown() are thread-safe and may be
// called from any thread while gRPC runs the streams on its own threads. The object must
// outlive the grpc::Server it is registered with.
// gRPC types stay in the .cc (pimpl); service() hands out the grpc::Service to register.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/model/xds/xds_resources.h"
#include "controlplane/tokens.h"

namespace grpc {
class Service;
}  // namespace grpc

namespace controlplane {

// What the server sends: the shared model's xDS resources (common/model/xds).
using ztunnel::kAddressTypeUrl;
using ztunnel::kAuthorizationTypeUrl;
using ztunnel::to_xds_resources;
using ztunnel::XdsResource;
using ztunnel::XdsResourceMap;
using ztunnel::XdsResources;

// One immutable snapshot of everything served. Types absent from `types` are unknown.
struct ServedState {
  std::string version;  // system_version_info of every response built from it
  std::map<std::string, std::shared_ptr<const XdsResourceMap>, std::less<>> types;  // by type URL
  // More resources of a type, in shards replaced independently (serve keeps one per
  // namespace, so a publish copies only the shards that changed, not the mesh). A type's
  // resources are types[type] plus every shard; a name is in at most one of them.
  std::map<std::string, std::vector<std::shared_ptr<const XdsResourceMap>>, std::less<>> shards;
  // Per type, every name whose resource may differ from the state published just before this
  // one (added, changed or removed). With it, a stream that was up to date with that state
  // looks at these names only: a push costs O(change), not a walk of the mesh. A type absent
  // here is compared in full.
  std::map<std::string, std::vector<std::string>, std::less<>> changed;
  // Per-proxy resources, by proxy key ("<pod>.<namespace>" from a waypoint's node id, see
  // waypoint_compiler.h) then type URL: a stream whose node has an entry here is served that
  // map for the type instead of `types` (which must still list the type URL, as known).
  std::map<std::string, std::map<std::string, std::shared_ptr<const XdsResourceMap>, std::less<>>, std::less<>>
      per_proxy;

  // The two istio types from a conversion.
  static std::shared_ptr<const ServedState> from(XdsResources resources, std::string version);
};

struct ConnectedClient {
  uint64_t stream_id = 0;
  std::string peer;             // gRPC peer, e.g. "ipv4:127.0.0.1:51234"
  std::string caller;           // the token's serviceAccount "ns/name"
  std::string node_id;          // "" until the first request names it
  std::string node_metadata;    // JSON of Node.metadata
  std::vector<std::string> types;  // type URLs subscribed so far
  uint64_t responses = 0;
  uint64_t nacks = 0;
  std::chrono::system_clock::time_point connected_at;
};

struct AdsStats {
  uint64_t streams = 0;          // accepted (authenticated) streams, ever
  uint64_t rejected = 0;         // UNAUTHENTICATED
  uint64_t responses = 0;        // responses written
  uint64_t resources_sent = 0;   // resources in those responses
  uint64_t acks = 0;
  uint64_t nacks = 0;
};

class AdsServer {
 public:
  // `initial` may be null (an empty state with both istio types known).
  AdsServer(std::shared_ptr<const TokenAuthenticator> tokens, std::shared_ptr<const ServedState> initial = nullptr);
  ~AdsServer();
  AdsServer(const AdsServer&) = delete;
  AdsServer& operator=(const AdsServer&) = delete;

  // The service to register on a grpc::ServerBuilder (owned by this object).
  grpc::Service* service();

  // Publishes a new state and wakes every stream. Logs, per type that changed,
  // "push <type>: N updated, M removed to K clients".
  void set_state(std::shared_ptr<const ServedState> state);
  std::shared_ptr<const ServedState> state() const;

  std::vector<ConnectedClient> clients() const;
  AdsStats stats() const;

  // Ends every open stream and refuses new ones (UNAVAILABLE); call before
  // grpc::Server::Shutdown so handlers return at once. Clients see an open stream end with
  // CANCELLED: with the sync API a stream's pending Read() is only released by cancelling the
  // call. Idempotent.
  void shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace controlplane
