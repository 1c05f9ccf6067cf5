// OnDemand: the miss path of XDS_ON_DEMAND=true (ztunnel-facts §4.1). A worker whose lookup of
// an address found nothing calls demand() with the key "network/ip"; the first waiter of a key
// makes XdsSource subscribe that alias name (posted to the control thread, which writes it on
// the xDS stream); later waiters of the same key share that one request. When a response has
// been applied and published, XdsSource calls answered(): every pending key the new snapshot
// resolves (a workload or a service VIP at that address) or that the server named in
// removed_resources (nobody owns it) is completed with that snapshot. Keys answered absent are
// remembered, so later misses on them (external destinations) do not wait again; the server
// keeps the alias subscribed and pushes the owner if one appears later (then lookups hit and
// the stale absent entry is never consulted).
//
// Bounding the wait is the caller's job (a timer on its own executor, kWait); a waiter that gave
// up is still called once the key is answered (its callback must tolerate that).
//
// Threading: demand() from any worker, answered() from the xDS client thread; one mutex guards
// the pending and absent sets and is only taken on a miss, never on the hit path. Callbacks
// run on the thread calling answered(), outside the mutex: they must only post.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/state/snapshot.h"

namespace ztunnel {

class OnDemand {
 public:
  // How long a connection waits for the answer to its demand before it is handled as an
  // unknown destination (upstream waits for the response; we bound it).
  static constexpr std::chrono::seconds kWait{5};

  using Done = std::function<void(SnapshotConstSharedPtr)>;

  // `subscribe` sends one alias name to the control plane; called under no lock, from the
  // thread calling demand().
  explicit OnDemand(std::function<void(const std::string& key)> subscribe);

  static std::string key(std::string_view network, const IpAddr& ip);

  // Registers `done` for `key`. False (done not kept) when the key was already answered as
  // absent: handle the miss now.
  bool demand(std::string_view network, const IpAddr& ip, Done done);

  // After a response was applied: `snap` is the snapshot just published, `removed` the names
  // of that response's removed_resources.
  void answered(const SnapshotConstSharedPtr& snap, const std::vector<std::string>& removed);

  size_t pending() const;
  size_t absent() const;

 private:
  struct Pending {
    std::string network;
    IpAddr ip;
    std::vector<Done> waiters;
  };
  std::function<void(const std::string&)> subscribe_;
  mutable std::mutex mu_;
  std::map<std::string, Pending, std::less<>> pending_;
  std::set<std::string, std::less<>> absent_;
};

}  // namespace ztunnel
