// KubeMetadataSource: pod metadata from the Kubernetes API (`ambient-cni serve
// --metadata-source=kube`), as istio-cni's node agent learns it: two informers
// (common/kube/informer.h), one on Namespaces (labels) and one on the Pods of this node only
// (fieldSelector=spec.nodeName=<node>: labels, spec.serviceAccountName, spec.hostNetwork,
// metadata.uid).
//
// lookup() answers from the informers' caches. A pod (or namespace) not yet in the cache — the
// kubelet can run the CNI ADD before our watch delivered the pod — is fetched with one GET; a
// 404 there is an error (the plugin fails the ADD and the kubelet retries), as a pod the API
// does not know cannot be classified. Any change seen by either informer calls the on_change
// callback (set_on_change), which the agent turns into a reconcile on its io thread.
//
// Threading: the informer threads call on_change (under cb_mu_, so set_on_change(nullptr)
// waits for a call in progress); lookup/known_pods may run on any thread (the caches copy
// under their own locks; the fallback GET blocks the caller for at most 10 s).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "cni/pod_metadata.h"
#include "common/kube/informer.h"
#include "common/kube/kube_client.h"
#include "common/result.h"

namespace cni {

struct KubeMetadataOptions {
  common::kube::KubeConfig config;
  std::string node_name;  // required: only this node's pods are watched
  std::chrono::seconds initial_sync_timeout{60};
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{30000};
  int watch_timeout_seconds = 300;
};

class KubeMetadataSource final : public MetadataSource {
 public:
  // Starts both informers and waits until each has listed once (at most
  // initial_sync_timeout); errors name what is missing.
  static common::Result<std::shared_ptr<KubeMetadataSource>> start(KubeMetadataOptions options);
  ~KubeMetadataSource() override;

  common::Result<PodMetadata> lookup(const std::string& ns, const std::string& name) override;
  std::string describe() const override;
  void set_on_change(std::function<void()> cb) override;
  std::map<std::string, PodMetadata> known_pods() override;
  void stop();

  // The metadata of one Pod object as the API returns it (namespace labels not filled in);
  // errors name the field.
  static common::Result<PodMetadata> parse_pod(const std::string& json);
  // The labels of one Namespace object.
  static common::Result<Labels> parse_namespace_labels(const std::string& json);

 private:
  explicit KubeMetadataSource(KubeMetadataOptions options);
  void changed();
  common::Result<Labels> namespace_labels(const std::string& ns);

  KubeMetadataOptions opt_;
  common::kube::KubeClient client_;
  std::unique_ptr<common::kube::Informer> namespaces_;
  std::unique_ptr<common::kube::Informer> pods_;
  std::mutex cb_mu_;
  std::function<void()> on_change_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
};

}  // namespace cni
