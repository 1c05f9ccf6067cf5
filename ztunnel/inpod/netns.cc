#include "ztunnel/inpod/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ztunnel {
namespace {

// The namespace this thread started in, opened once per thread.
int home_netns() {
  thread_local int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  return fd;
}

class ScopedNetns {
 public:
  explicit ScopedNetns(int target) {
    home_ = home_netns();
    if (home_ < 0) {
      error_ = std::string("open own netns: ") + std::strerror(errno);
      return;
    }
    if (::setns(target, CLONE_NEWNET) != 0) {
      error_ = std::string("setns into pod netns: ") + std::strerror(errno);
      return;
    }
    entered_ = true;
  }
  ~ScopedNetns() {
    if (entered_ && ::setns(home_, CLONE_NEWNET) != 0) {
      std::fprintf(stderr, "ztunnel: FATAL: cannot return to own network namespace: %s\n", std::strerror(errno));
      std::abort();
    }
  }
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  const std::string& error() const { return error_; }

 private:
  int home_ = -1;
  bool entered_ = false;
  std::string error_;
};

}  // namespace

common::Result<std::shared_ptr<Netns>> Netns::from_fd(int fd) {
  if (fd < 0) return common::make_error("invalid netns fd");
  int type = ::ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    ::close(fd);
    return common::make_error(type < 0 ? std::string("not a namespace fd: ") + std::strerror(errno)
                                       : "fd is a namespace, but not a network namespace");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return common::make_error(std::string("fstat netns: ") + std::strerror(errno));
  }
  return std::shared_ptr<Netns>(new Netns(fd, st.st_ino, st.st_dev));
}

common::Result<std::shared_ptr<Netns>> Netns::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return common::make_error("open " + path + ": " + std::strerror(errno));
  return from_fd(fd);
}

Netns::~Netns() { ::close(fd_); }

common::Result<int> Netns::socket(int domain, int type) const {
  ScopedNetns in(fd_);
  if (!in.error().empty()) return common::make_error(in.error());
  int s = ::socket(domain, type | SOCK_CLOEXEC, 0);
  if (s < 0) return common::make_error(std::string("socket in pod netns: ") + std::strerror(errno));
  return s;
}

common::Status Netns::run(const std::function<void()>& fn) const {
  ScopedNetns in(fd_);
  if (!in.error().empty()) return common::make_error(in.error());
  fn();
  return common::ok_status();
}

std::function<int(int)> socket_factory(std::shared_ptr<const Netns> ns, const hbone::sockopt::SocketConfig& opts) {
  return [ns, opts](int family) -> int {
    int fd = -1;
    if (ns) {
      auto s = ns->socket(family, SOCK_STREAM | SOCK_NONBLOCK);
      fd = s ? s.value() : -1;
    } else {
      fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) return -1;
    if (!hbone::sockopt::apply_socket_config(fd, opts)) {
      ::close(fd);
      return -1;
    }
    return fd;
  };
}

}  // namespace ztunnel
