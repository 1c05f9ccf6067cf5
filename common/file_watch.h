// FileWatch: calls back when a file's modification time changes, by polling it on one
// io_context (the control thread). Used for files a ConfigMap update swaps under a running
// process (LOCAL_XDS_PATH, CRL_PATH): polling the mtime works through the symlink swap a
// kubelet does, where an inotify watch on the old inode would go quiet.
//
// Threading: construct, start(), stop() and the callback all run on the io_context's thread.
// Invariants: the callback runs only after start() and never after stop(); a file that cannot
// be stat'ed (mid-swap, deleted) is not a change, so the last good content keeps serving until
// the file reappears with a new mtime. Destroying the watch cancels it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace common {

// Modification time in nanoseconds; -1 when the file cannot be stat'ed.
int64_t file_mtime_ns(const std::string& path);

class FileWatch {
 public:
  FileWatch(boost::asio::io_context& ctx, std::string path, std::chrono::milliseconds period,
            std::function<void()> on_change);
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  // Takes the current mtime as the baseline and polls every `period`.
  void start();
  void stop();
  const std::string& path() const { return path_; }

 private:
  void arm();

  boost::asio::steady_timer timer_;
  std::string path_;
  std::chrono::milliseconds period_;
  std::function<void()> on_change_;
  int64_t last_mtime_ = -1;
  bool running_ = false;
};

}  // namespace common
