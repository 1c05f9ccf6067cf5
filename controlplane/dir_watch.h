// Change detection for a manifest directory by polling, the portable and dependable choice for
// a demo control plane: inotify misses edits made through some bind mounts and editors that
// replace files, a short stat() loop over a handful of files does not. inotify (dir_notify.h)
// only makes the next poll come early.
//
// A fingerprint covers exactly the files load_directory() reads (manifest_files()): name,
// size, modification time (ns) and inode, so an edit, an addition, a removal and an atomic
// replace (new inode, same mtime second) all change it.
//
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace controlplane {

struct FileStamp {
  std::string path;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};

using DirFingerprint = std::vector<FileStamp>;

// Fails when the directory cannot be listed. A file that vanishes between listing and stat()
// is left out (the next poll sees the directory settled).
common::Result<DirFingerprint> fingerprint(const std::string& dir, const std::vector<std::string>& exclude = {});

}  // namespace controlplane
