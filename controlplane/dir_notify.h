// DirNotifier: wakes the directory watcher as soon as something in the manifest directory
// changes (inotify), so an edit reaches clients without waiting for the next poll tick.
//
// It is only a hint. The periodic fingerprint poll (dir_watch.h) stays the source of truth and
// the fallback: inotify misses edits made through some bind mounts, and it loses its watch
// when the directory itself is removed and recreated (rearm() puts it back). When inotify is
// unavailable (no instances or watches left), wait() degrades to a plain timed sleep.
//
// Threading: wait() and rearm() from the one watcher thread; wake() from any thread (it is how
// stop() interrupts a wait). Owns two file descriptors, closed by the destructor.
#pragma once

#include <chrono>
#include <string>

namespace controlplane {

class DirNotifier {
 public:
  explicit DirNotifier(std::string dir);
  ~DirNotifier();
  DirNotifier(const DirNotifier&) = delete;
  DirNotifier& operator=(const DirNotifier&) = delete;

  // Blocks until the directory changes, wake() is called, or `timeout` passes. After a change
  // it waits `settle` more (and drains what arrives meanwhile) so a burst of writes, as an
  // editor or `cp -r` makes them, costs one recompile rather than one per event.
  void wait(std::chrono::milliseconds timeout, std::chrono::milliseconds settle = std::chrono::milliseconds(5));

  // Interrupts a wait() in progress (or the next one).
  void wake();

  // Re-adds the directory watch if it was lost (directory removed or not there yet).
  void rearm();

  bool active() const { return watch_ >= 0; }

 private:
  void drain();

  std::string dir_;
  int inotify_ = -1;
  int watch_ = -1;
  int wake_ = -1;  // eventfd
};

}  // namespace controlplane
