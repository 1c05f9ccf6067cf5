// CachedLoader: load_directory() for a long-running server. It keeps each manifest file's
// parsed objects and findings keyed by its stamp (size, mtime, inode; dir_watch.h) and
// re-reads only files whose stamp changed, so an edit to one file of a 50k-pod directory
// costs one file's parse plus the merge, not a full re-parse.
//
// Results are the same as load_directory(): objects in file order, each file's findings
// replayed in order, then duplicates removed (first wins, the others reported).
//
// Threading: not thread-safe; one owner (the watcher thread) calls load().
#pragma once

#include <map>
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

 private:
  struct Entry {
    FileStamp stamp;
    ResourceSet objects;
    Diagnostics diags;
  };
  std::map<std::string, Entry> cache_;  // by path
  size_t parsed_last_ = 0;
};

}  // namespace controlplane
