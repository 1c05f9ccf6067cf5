// KubeSource: the Kubernetes API as the controlplane's object source (`serve --kube`). One
// thread per watched kind (watch_state.h lists them) runs list -> watch (from the list's
// resourceVersion, allowWatchBookmarks, server-side timeout) -> watch again from the last
// version seen; a 410 Gone (on the request or as an ERROR event) re-lists, any other failure
// retries after an exponential backoff (200 ms doubling to 30 s, reset by a success). A kind
// the server does not serve (404: CRD not installed) counts as empty and is retried every 30 s.
//
// snapshot() turns every object into the same typed objects the YAML directory gives (each
// object's JSON goes through parse_manifests, cached per object until it changes), so one
// compiler serves both sources. Nodes are not compiled; their locality labels
// (topology.kubernetes.io/region, topology.kubernetes.io/zone, topology.istio.io/subzone) are
// copied onto the workloads of their pods by annotate().
//
// Threading: the informer threads own the HTTP calls; each informer's objects live under its
// own mutex (held only to apply a parsed event or copy objects out). All public methods are
// thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/kube/informer.h"
#include "common/kube/kube_client.h"
#include "common/kube/watch_state.h"
#include "common/result.h"
#include "controlplane/kube/object_source.h"

namespace controlplane::kube {

// The generic client pieces live in common/kube (shared with the cni node agent).
using common::kube::Cancel;
using common::kube::in_cluster_config;
using common::kube::KubeClient;
using common::kube::KubeConfig;
using common::kube::KubeResponse;
using common::kube::load_kubeconfig;
using common::kube::ResourceKind;
using common::kube::StoredObject;
using common::kube::url_encode;

// What the controlplane reads (watched_kinds.cc; the chart's ClusterRole must cover it).
const std::vector<ResourceKind>& watched_kinds();
// Kinds read in one namespace only, narrowed by a field selector (watched_kinds.cc; the chart
// grants them with a Role in that namespace): the mesh config ConfigMap istio-system/istio, so
// the controlplane neither reads nor needs the right to read every ConfigMap of the cluster.
struct ScopedKind {
  ResourceKind kind;
  std::string ns;
  std::string field_selector;
};
const std::vector<ScopedKind>& scoped_kinds();

struct KubeSourceOptions {
  KubeConfig config;
  int watch_timeout_seconds = 300;  // asked of the server (timeoutSeconds); it may end sooner
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::seconds initial_sync_timeout{60};
  // Objects per list page (client-go's default 500); 0 lists in one request.
  size_t list_page_size = 500;
};

class KubeSource final : public ObjectSource {
 public:
  // Starts the watchers and waits until every kind has been listed once (or found not
  // served), at most initial_sync_timeout; failing that, the error names the kinds missing.
  static common::Result<std::shared_ptr<KubeSource>> start(KubeSourceOptions options);
  ~KubeSource() override;

  std::string describe() const override;
  uint64_t wait_change(uint64_t seen, std::chrono::milliseconds timeout) override;
  ResourceSet snapshot(Diagnostics& diags, uint64_t& generation) override;
  void annotate(ztunnel::LocalConfig& config) const override;
  void stop() override;

  // A copy of the objects of one kind (by plural, e.g. "pods"; with `group` when two groups share
  // the plural: "gateways" is both Istio's and the Gateway API's).
  std::map<std::string, StoredObject> objects_of(const std::string& plural, const std::string& group = {}) const;
  // Called (on a watcher thread, without the lock) after any change; set before start() work
  // matters to it, e.g. the waypoint deployer. One listener.
  void set_listener(std::function<void()> listener);
  const KubeClient& client() const { return *client_; }

 private:
  struct Impl;
  explicit KubeSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  KubeClient* client_;
};

}  // namespace controlplane::kube
