#include "controlplane/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

namespace controlplane {

common::Status write_file_atomically(const std::string& path, std::string_view content) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  // Hidden and in the same directory: rename() is atomic only within one filesystem, and a
  // directory scanner (ours included) skips dot files.
  const fs::path tmp = dir / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()));
  auto fail = [&](const std::string& what) {
    const std::string msg = path + ": " + what + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return common::make_error(msg);
  };

  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("cannot create temporary file");
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      errno = saved;
      return fail("write failed");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return fail("fsync failed");
  }
  if (::close(fd) != 0) return fail("close failed");
  if (::rename(tmp.c_str(), target.c_str()) != 0) return fail("rename failed");
  // Durability of the rename itself; failure here does not undo a completed publish.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return common::ok_status();
}

}  // namespace controlplane
