// IncrementalCompiler: compile() kept per namespace, so an edit recompiles only the namespaces
// whose files changed (CachedLoader::refresh) instead of the mesh.
//
// Why a namespace is a sound unit: everything compile() derives for a namespace's objects
// reads only (a) objects of that namespace (its Namespace, pods, WorkloadEntries, Services,
// policies: Services and non-root policies select within their own namespace) and (b) the
// "context": Gateways and the pods labelled gateway-name (waypoint addresses, which any
// namespace may use) and policies of the root namespace (which select mesh-wide). So a
// namespace's partition is compile(its objects + the context) restricted to that namespace's
// outputs. When the context itself changes, everything is recompiled (the fallback, and the
// reference the unit test compares the incremental result with).
//
// Outputs per namespace: the workloads, services and policies whose namespace it is, in
// compile()'s order, and the compiler's findings about its objects (and duplicates among
// them). Known difference from one full compile: a duplicate address between workloads of two
// namespaces is only reported by a full recompile.
//
// Threading: not thread-safe; one owner (the watcher thread). Partitions are immutable once
// published (shared_ptr<const>), so a publisher may keep the previous ones to diff against.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "controlplane/cached_loader.h"
#include "controlplane/compiler.h"

namespace controlplane {

struct Partition {
  ztunnel::LocalConfig config;  // sorted as compile() sorts
  Diagnostics diagnostics;      // compiler and duplicate findings about this namespace's objects
};

class IncrementalCompiler {
 public:
  explicit IncrementalCompiler(CompileOptions options) : opt_(std::move(options)) {}

  struct Update {
    bool full = false;                 // every partition was recompiled (first run, context changed)
    std::vector<std::string> touched;  // partitions recompiled, added or removed (when !full)
  };

  // Brings the partitions up to date with `loader` after it reported `change`.
  Update update(const CachedLoader& loader, const CachedLoader::Change& change);
  // Recompiles everything from `loader`.
  void full(const CachedLoader& loader);
  // Replaces everything with an already compiled state (e.g. from a Kubernetes source).
  void assign(CompiledState state);

  const std::map<std::string, std::shared_ptr<const Partition>>& partitions() const { return parts_; }
  // All partitions joined as one compile() would return them. O(mesh): for the file output and
  // tests.
  ztunnel::LocalConfig merged() const;
  // Every partition's findings plus those without a namespace (partition order).
  Diagnostics diagnostics() const;

  // Partition of a finding: the namespace in its object ("Pod ns/name", "Namespace ns").
  static std::string partition_of(const Diagnostic& d);

 private:
  std::shared_ptr<const Partition> compile_partition(const CachedLoader& loader, const std::string& ns) const;

  CompileOptions opt_;
  bool compiled_ = false;
  std::map<std::string, std::shared_ptr<const Partition>> parts_;
  Diagnostics unowned_;  // findings of the last full compile that name no namespace
};

}  // namespace controlplane
