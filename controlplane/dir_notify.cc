#include "controlplane/dir_notify.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstdint>

namespace controlplane {
namespace {

// Everything that can change what fingerprint() sees in a flat directory.
constexpr uint32_t kEvents =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

}  // namespace

DirNotifier::DirNotifier(std::string dir) : dir_(std::move(dir)) {
  inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  rearm();
}

DirNotifier::~DirNotifier() {
  if (inotify_ >= 0) ::close(inotify_);
  if (wake_ >= 0) ::close(wake_);
}

void DirNotifier::rearm() {
  if (inotify_ < 0) return;
  // Adding an existing watch returns the same descriptor, so this is cheap when nothing was lost.
  watch_ = ::inotify_add_watch(inotify_, dir_.c_str(), kEvents);
}

void DirNotifier::drain() {
  alignas(struct inotify_event) char buf[4096];
  for (;;) {
    const ssize_t n = ::read(inotify_, buf, sizeof(buf));
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
      // The directory went away (or was replaced): the watch is gone; rearm() on the next poll.
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) watch_ = -1;
      off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
    }
  }
}

void DirNotifier::wake() {
  if (wake_ < 0) return;
  const uint64_t one = 1;
  (void)!::write(wake_, &one, sizeof(one));
}

void DirNotifier::wait(std::chrono::milliseconds timeout, std::chrono::milliseconds settle) {
  struct pollfd fds[2] = {{wake_, POLLIN, 0}, {inotify_, POLLIN, 0}};
  const nfds_t n = inotify_ >= 0 ? 2 : 1;
  if (::poll(fds, n, static_cast<int>(timeout.count())) <= 0) return;
  if (fds[0].revents & POLLIN) {
    uint64_t v = 0;
    (void)!::read(wake_, &v, sizeof(v));
    return;
  }
  if (n == 2 && (fds[1].revents & POLLIN)) {
    // Let the burst finish, then swallow it; a later event re-wakes the next wait().
    struct pollfd w = {wake_, POLLIN, 0};
    if (::poll(&w, 1, static_cast<int>(settle.count())) > 0) return;  // woken meanwhile: stop
    drain();
  }
}

}  // namespace controlplane
