// Pod metadata for the CNI plugin's capture decision, and the decision itself.
//
// A container runtime tells a CNI plugin only the pod's namespace, name, uid and sandbox id
// (CNI_ARGS K8S_POD_*); whether the pod is ambient depends on labels it does not pass. The node
// agent therefore owns a MetadataSource that the plugin's ADD/CHECK consult (through the
// agent's control socket):
//   * StaticMetadataSource: a JSON file (the cni chart renders it into a ConfigMap) —
//       {"namespaces": {"demo": {"istio.io/dataplane-mode": "ambient"}},
//        "pods": {"demo/web-0": {"labels": {...}, "serviceAccountName": "web",
//                                "hostNetwork": false, "uid": "..."}}}
//     re-read whenever its mtime/size changes, so a kubelet ConfigMap refresh (or an edit on a
//     single host) takes effect without a restart. A pod absent from "pods" has no labels and
//     the service account "default"; a namespace absent from "namespaces" has no labels.
//   * KubeMetadataSource (kube_metadata.h): informers on Namespaces and on the Pods of this
//     node; it also tells the agent when labels change, so the agent reconciles pods it holds
//     or left alone (agent.h).
// decide_capture is pure: ambient when the pod label or (absent that) the namespace label
// istio.io/dataplane-mode is "ambient"; never for the opt-out value "none", host-network pods
// or waypoints (label gateway.networking.k8s.io/gateway-name), as istio-cni decides.
// Threading: lookup/known_pods are called from the agent's io thread only; a source may call
// the on_change callback from any thread.
#pragma once

#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"

namespace cni {

using Labels = std::map<std::string, std::string>;

struct PodMetadata {
  std::string ns;
  std::string name;
  std::string uid;  // "" when the source does not know it
  std::string service_account = "default";
  bool host_network = false;
  Labels pod_labels;
  Labels namespace_labels;
};

class MetadataSource {
 public:
  virtual ~MetadataSource() = default;
  // Errors mean "cannot know" (unreadable source); callers fail closed.
  virtual common::Result<PodMetadata> lookup(const std::string& ns, const std::string& name) = 0;
  virtual std::string describe() const = 0;
  // `cb` is called (from any thread) whenever metadata may have changed; null unsets it, and
  // once that returns no call is in progress. Sources that cannot tell (static file) never call.
  virtual void set_on_change(std::function<void()> cb) {}
  // Every pod the source knows on this node ("ns/name" -> metadata); empty when it cannot
  // list them. The agent logs the ambient ones it never saw a CNI ADD for.
  virtual std::map<std::string, PodMetadata> known_pods() { return {}; }
};

class StaticMetadataSource : public MetadataSource {
 public:
  explicit StaticMetadataSource(std::string path) : path_(std::move(path)) {}
  common::Result<PodMetadata> lookup(const std::string& ns, const std::string& name) override;
  std::string describe() const override { return "static metadata file " + path_; }

  // Parses the file format above; errors name the offending field.
  struct Data {
    std::map<std::string, Labels> namespaces;
    std::map<std::string, PodMetadata> pods;  // key "ns/name"
  };
  static common::Result<Data> parse(const std::string& text);

 private:
  common::Status refresh();
  std::string path_;
  Data data_;
  bool loaded_ = false;
  struct timespec mtime_ {};
  long long size_ = -1;
};

// A source that knows no labels: nothing is captured (an agent started without --metadata).
class EmptyMetadataSource : public MetadataSource {
 public:
  common::Result<PodMetadata> lookup(const std::string& ns, const std::string& name) override {
    PodMetadata m;
    m.ns = ns;
    m.name = name;
    return m;
  }
  std::string describe() const override { return "no metadata (nothing is ambient)"; }
};

struct CaptureDecision {
  bool capture = false;
  std::string reason;  // why (not): for logs and the plugin's stderr
};

CaptureDecision decide_capture(const PodMetadata& m);

}  // namespace cni
