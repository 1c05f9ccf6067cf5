// Informer: one Kubernetes resource kind kept in memory by list+watch on its own thread, as
// client-go's reflector does: list (paged: `limit` + `continue`) -> watch from the list's
// resourceVersion (allowWatchBookmarks, server-side timeoutSeconds) -> watch again from the
// last version seen. A 410 Gone (on the request or as an ERROR event) re-lists, so deletions
// missed meanwhile are not lost; any other failure retries after an exponential backoff
// (backoff_initial doubling to backoff_max, reset by a watch that delivered). A kind the
// server does not serve (404: CRD not installed) counts as empty and is retried every 30 s.
// The state machine itself is WatchState (watch_state.h); this adds the I/O and the thread.
//
// Used by the controlplane's --kube source (every kind it compiles) and the cni node agent's
// metadata source (namespaces, and the pods of its node through a field selector).
//
// Threading: start() spawns the thread; objects()/synced() may be called from any thread (they
// copy under the informer's mutex, held only to apply one event or copy). Callbacks run on
// the informer thread without that lock held. stop() cancels the blocked call and joins; it
// must not be called from a callback.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/kube/kube_client.h"
#include "common/kube/watch_state.h"

namespace common::kube {

struct InformerOptions {
  ResourceKind kind;
  // Narrows list and watch (not URL-encoded here), e.g. "spec.nodeName=node-1"; "" = all.
  std::string field_selector;
  // Only this namespace ("" = all): list and watch /namespaces/<ns>/<plural>.
  std::string ns;
  int watch_timeout_seconds = 300;  // asked of the server; it may end sooner
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{30000};
  size_t list_page_size = 500;  // client-go's default; 0 lists in one request
};

class Informer {
 public:
  struct Callbacks {
    std::function<void()> changed;  // objects() differs from before
    std::function<void()> synced;   // a list completed (or the kind is not served)
  };
  // `client` must outlive the informer.
  Informer(const KubeClient& client, InformerOptions options, Callbacks callbacks);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void start();
  void stop();  // idempotent

  const ResourceKind& kind() const;
  bool synced() const;  // listed at least once (or found not served)
  // "ns/name" (cluster-scoped: "name") -> object.
  std::map<std::string, StoredObject> objects() const;
  // One object by that key (a copy); nullopt when absent.
  std::optional<StoredObject> get(const std::string& key) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The message of a Status body ("HTTP 403: ..."), for logs.
std::string status_message(const KubeResponse& r);

}  // namespace common::kube
