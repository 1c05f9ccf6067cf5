// CachedLoader: load_directory() for a long-running server. It keeps each manifest file's
// parsed objects and findings keyed by its stamp (size, mtime, inode; dir_watch.h) and
// re-reads only files whose stamp changed, so an edit to one file of a 50k-pod directory
// costs one file's parse plus the merge, not a full re-parse.
//
// Results are the same as load_directory(): objects in file order, each file's findings
// replayed in order, then duplicates removed (first wins, the others reported).
//
// For the incremental compile (incremental_compiler.h) it also answers, per refresh, which
// namespaces had an object in a changed file, and hands out the objects of one namespace plus
// the cross-namespace "context" (Gateways, waypoint pods, root-namespace policies) without
// merging the whole directory: an edit then costs the changed file plus its namespaces.
//
// Threading: not thread-safe; one owner (the watcher thread) calls load() / refresh().
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "controlplane/diagnostics.h"
#include "controlplane/dir_watch.h"
#include "controlplane/k8s_resources.h"

namespace controlplane {

class CachedLoader {
 public:
  // Loads the files listed in `files` (a fingerprint of the directory, taken by the caller so
  // the same listing decides "changed?" and what is read). Fails never: unreadable files are
  // Error findings.
  ResourceSet load(const DirFingerprint& files, Diagnostics& diags);

  // Lists `dir` (minus `exclude`) and loads it. Fails only when `dir` cannot be listed.
  common::Result<ResourceSet> load_directory(const std::string& dir, Diagnostics& diags,
                                             const std::vector<std::string>& exclude = {});

  // Files parsed (not served from the cache) by the last load.
  size_t parsed_last() const { return parsed_last_; }

  // What a refresh() changed, judged by file: every object of a file that was added, changed
  // or removed counts as changed (old and new contents both).
  struct Change {
    std::set<std::string> namespaces;  // partition keys (partition_of()) of those objects
    bool context = false;              // a context object (see is_context()) among them
    bool l7 = false;                   // an L7 routing object (waypoint compile input) among them
    bool files = false;                // any file added, changed or removed
  };

  // Re-reads the files of `files` whose stamp changed and forgets those gone; O(changed
  // files + listed files). `root_namespace` decides which policies are context.
  Change refresh(const DirFingerprint& files, const std::string& root_namespace);

  // Everything, as load() returns it (file order, duplicates removed); findings of the
  // duplicate removal only go to `dedupe_diags`. O(mesh).
  ResourceSet all(Diagnostics& dedupe_diags) const;
  // The parse findings of every file, file order.
  void file_diagnostics(Diagnostics& out) const;
  // The objects whose partition is `ns` (namespaced kinds in it, the Namespace named so),
  // file order, duplicates removed (their findings to `dedupe_diags`). O(files of ns).
  ResourceSet partition(const std::string& ns, Diagnostics& dedupe_diags) const;
  // The context objects of every other partition: Gateways, pods labelled
  // gateway-name, policies of the root namespace, deduplicated as all() would (a labelled pod
  // that loses to an unlabelled namesake in an earlier file is not there).
  // O(files holding context objects or namesakes of context pods).
  ResourceSet context_except(const std::string& ns) const;
  // Some Gateway of class istio-waypoint exists.
  bool has_waypoint_gateways() const;

  // Partition key: the namespace, or a Namespace's own name.
  template <typename T>
  static const std::string& partition_of(const T& o) {
    return o.meta.ns;
  }
  // Objects other namespaces' compiles read: Gateways and their pods decide waypoint
  // addresses for everyone; a root-namespace policy selects workloads mesh-wide. A file is
  // also context when it holds a pod named like a labelled one (it may win the duplicate).
  static bool is_context(const ResourceSet& r, const std::string& root_namespace);

 private:
  struct Entry {
    FileStamp stamp;
    ResourceSet objects;
    Diagnostics diags;
    std::set<std::string> partitions;  // partition_of() of every object
    bool context = false;              // is_context(objects)
    bool l7 = false;
  };
  using PodKey = std::pair<std::string, std::string>;  // namespace, name
  void index(const std::string& path, const Entry& e, bool add);
  bool holds_context(const Entry& e) const;  // own context objects or a context pod's namesake

  std::map<std::string, Entry> cache_;  // by path
  std::vector<std::string> order_;      // paths in fingerprint order
  std::map<std::string, std::set<std::string>> partition_files_;  // partition -> paths
  std::set<std::string> context_files_;                           // files with is_context()
  std::map<PodKey, std::set<std::string>> pod_files_;             // every pod -> the files naming it
  std::map<PodKey, size_t> labelled_pods_;                        // pods labelled gateway-name -> count
  std::string root_namespace_;
  size_t parsed_last_ = 0;
};

template <>
inline const std::string& CachedLoader::partition_of(const NamespaceObject& o) {
  return o.meta.name;
}

}  // namespace controlplane
