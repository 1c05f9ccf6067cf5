// DeltaAdsClient: a generic delta xDS client over one gRPC stream,
// envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources (the only xDS
// flavour istiod serves to ztunnel, ztunnel-facts §4.1). Used by ztunnel (Address,
// Authorization) and reusable by the waypoint with other type URLs.
//
// Protocol, per subscribed type URL:
//  * Initial request on every stream: node, type_url, empty subscribe list (wildcard) and
//    initial_resource_versions = every resource this client has accepted so far (reconnects
//    resume instead of re-sending the world). An on-demand type (XDS_ON_DEMAND) instead
//    subscribes ["*"] and unsubscribes ["*"] in that request (the server sends nothing in bulk)
//    plus every name subscribe() asked for so far; later subscribe() calls send a request with
//    just the new names on the live stream.
//  * Each response is turned into plain Resources and handed to that type's handler, which
//    returns the resources it rejected. Rejected resources are NACKed with their reasons
//    (error_detail = google.rpc.Status{code 3 INVALID_ARGUMENT, "name: reason; ..."}) while
//    the rest applies; with no rejection the response is ACKed. Both echo the nonce.
//  * Accepted versions are tracked per type; removals drop them; a rejected resource keeps
//    whatever version was accepted before (the handler keeps the old value too).
//  * Resources whose Any type differs from the response's type URL, or that carry no body, are
//    rejected by the client itself and never reach the handler.
//
// Connection: a dedicated thread connects (common/grpc make_channel + add_call_metadata on
// every attempt, so rotated tokens and roots are picked up), writes the initial requests and
// reads until the stream ends, then reconnects with exponential backoff with jitter (10 ms
// doubling to 15 s, reset after a stream that delivered at least one response). Nothing is
// cleared while disconnected: the handlers keep serving the last good config.
//
// Threading: handlers, on_synced and on_connection run on the client's own thread, one at a
// time (never concurrently with each other). start()/stop()/status()/subscribe() may be called
// from any thread (writes to the stream are serialized by a mutex; subscribe() may wait for one
// small write, so call it from a control thread, never a data-path worker). stop() cancels the
// stream (TryCancel) and joins; it is idempotent and the destructor calls it. Handlers must
// outlive the client (or at least stop()). Never call stop() or the destructor from a handler
// or callback (it would wait for its own thread).
//
// Metrics (upstream names): istio_xds_connection_terminations_total{reason} with reason one of
// ConnectionError (no stream could be established), Error (stream failed with a non-transient
// gRPC status), Reconnect (transient UNAVAILABLE after the stream was up, e.g. server restart
// or max connection age), Complete (the server ended the stream with OK);
// istio_xds_message_total{url} and istio_xds_message_bytes_total{url} per processed response.
// A stream cancelled by stop() is not counted.
//
// This header includes neither gRPC nor protobuf (pimpl).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/grpc/channel.h"
#include "common/xds/node.h"

namespace common::metrics {
class Registry;
}

namespace common::xds {

// Views into the response being applied: valid only during TypeHandler::apply (the response
// is freed right after, so a 50k-resource sync is never held twice).
struct Resource {
  std::string_view name;
  std::string_view version;
  std::string_view type_url;  // the Any's type URL
  std::string_view value;     // the Any's serialized message bytes
};

struct ResourceError {
  std::string name;
  std::string message;
};

// One per subscribed type URL.
class TypeHandler {
 public:
  virtual ~TypeHandler() = default;
  // Applies one response: `updated` are added or changed resources, `removed` are names to
  // drop. Returns the rejected resources with reasons; everything else must be applied.
  // Called on the client thread.
  virtual std::vector<ResourceError> apply(const std::vector<Resource>& updated,
                                           const std::vector<std::string>& removed) = 0;
};

struct DeltaAdsOptions {
  common::grpcx::GrpcEndpoint endpoint;
  Node node;
  // Subscribed types in the order their initial requests are written. Not owned.
  std::vector<std::pair<std::string, TypeHandler*>> types;
  // Once per client lifetime, after the first response of every subscribed type has been
  // processed (readiness). Client thread.
  std::function<void()> on_synced;
  // Stream established (true, "") or ended (false, reason). Client thread; for logs/status.
  std::function<void(bool connected, const std::string& reason)> on_connection;
  // Type URLs (among `types`) subscribed on demand: see the protocol notes above.
  std::vector<std::string> on_demand_types;
  std::chrono::milliseconds initial_backoff{10};
  std::chrono::milliseconds max_backoff{15'000};
};

struct DeltaAdsStatus {
  std::string address;
  bool connected = false;
  uint64_t connects = 0;                       // streams established so far
  uint64_t responses = 0;                      // responses processed so far
  bool synced = false;
  std::map<std::string, size_t> resources;     // type URL -> accepted resource count
  std::string last_nack;                       // "" if none yet
  std::string last_disconnect;                 // reason of the last stream end
};

class DeltaAdsClient {
 public:
  // Registers the metric families on `registry` (which must outlive the client).
  DeltaAdsClient(DeltaAdsOptions options, common::metrics::Registry& registry);
  ~DeltaAdsClient();
  DeltaAdsClient(const DeltaAdsClient&) = delete;
  DeltaAdsClient& operator=(const DeltaAdsClient&) = delete;

  // Starts the client thread. Calling it again (or after stop()) does nothing.
  void start();
  // Cancels the stream, stops reconnecting and joins the thread. Idempotent.
  void stop();

  DeltaAdsStatus status() const;

  // On-demand types: adds `names` to the type's subscription (kept across reconnects) and, if
  // a stream is up, sends them now. Names already subscribed are not sent again.
  void subscribe(const std::string& type_url, const std::vector<std::string>& names);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace common::xds
