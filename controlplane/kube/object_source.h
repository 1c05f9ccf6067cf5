// ObjectSource: where `controlplane serve` gets its objects when they do not come from a
// directory (the Kubernetes API: kube_source.h). The server's watcher thread waits for a
// change, takes a snapshot, compiles it with the same compiler as the directory, and lets the
// source adjust the compiled workloads with what only it knows (Node locality).
//
// Threading: every method may be called from any thread; implementations lock internally.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"
#include "common/model/local_config.h"

namespace controlplane {

class ObjectSource {
 public:
  virtual ~ObjectSource() = default;
  // What to call it in logs ("the Kubernetes API at https://...").
  virtual std::string describe() const = 0;
  // Blocks until the generation differs from `seen`, `timeout` passes or stop(); returns the
  // current generation.
  virtual uint64_t wait_change(uint64_t seen, std::chrono::milliseconds timeout) = 0;
  // Every object now, parsed like the directory's files (findings into `diags`), and the
  // generation it reflects.
  virtual ResourceSet snapshot(Diagnostics& diags, uint64_t& generation) = 0;
  // Fills what the manifests alone cannot give (workload locality from its Node's labels).
  virtual void annotate(ztunnel::LocalConfig& config) const = 0;
  // Ends waits and background work. Idempotent.
  virtual void stop() = 0;
};

}  // namespace controlplane
