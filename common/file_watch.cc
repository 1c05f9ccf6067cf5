#include "common/file_watch.h"

#include <sys/stat.h>

namespace common {

int64_t file_mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

FileWatch::FileWatch(boost::asio::io_context& ctx, std::string path, std::chrono::milliseconds period,
                     std::function<void()> on_change)
    : timer_(ctx), path_(std::move(path)), period_(period), on_change_(std::move(on_change)) {}

void FileWatch::start() {
  last_mtime_ = file_mtime_ns(path_);
  running_ = true;
  arm();
}

void FileWatch::stop() {
  running_ = false;
  timer_.cancel();
}

void FileWatch::arm() {
  timer_.expires_after(period_);
  // `ec` is checked before `this` is touched: a cancelled wait may complete after destruction.
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || !running_) return;
    const int64_t m = file_mtime_ns(path_);
    if (m >= 0 && m != last_mtime_) {
      last_mtime_ = m;
      on_change_();
      if (!running_) return;  // the callback stopped the watch
    }
    arm();
  });
}

}  // namespace common
