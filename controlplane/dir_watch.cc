#include "controlplane/dir_watch.h"

#include <sys/stat.h>

#include "controlplane/k8s_loader.h"

namespace controlplane {

common::Result<DirFingerprint> fingerprint(const std::string& dir, const std::vector<std::string>& exclude) {
  auto files = manifest_files(dir, exclude);
  if (!files) return common::make_error(files.error());
  DirFingerprint out;
  out.reserve(files->size());
  for (const auto& f : *files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) continue;
    out.push_back(FileStamp{f, static_cast<uint64_t>(st.st_size),
                            static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                            static_cast<uint64_t>(st.st_ino)});
  }
  return out;
}

}  // namespace controlplane
