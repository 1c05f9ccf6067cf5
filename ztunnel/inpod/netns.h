// Netns: a network namespace handle (an owned fd to a netns) and the way ztunnel creates
// sockets inside a pod's namespace without moving the process there: the calling thread
// setns()es into the pod, creates the socket, and setns()es back to the thread's home
// namespace. A socket stays bound to the namespace it was created in, so all I/O afterwards
// runs normally on any worker. Failing to return home is fatal (abort): a worker stranded in a
// pod's namespace would silently misroute every later connection.
// Threading: any thread; the handle is immutable after creation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "hbone/socket_options.h"

namespace ztunnel {

class Netns {
 public:
  // Takes ownership of `fd`; checks that it is a network namespace.
  static common::Result<std::shared_ptr<Netns>> from_fd(int fd);
  static common::Result<std::shared_ptr<Netns>> open(const std::string& path);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  int fd() const { return fd_; }
  uint64_t inode() const { return inode_; }
  uint64_t dev() const { return dev_; }

  // Creates a socket(domain, type|SOCK_CLOEXEC, 0) inside this namespace; returns the fd.
  common::Result<int> socket(int domain, int type) const;
  // Runs `fn` with the calling thread inside this namespace.
  common::Status run(const std::function<void()>& fn) const;

 private:
  Netns(int fd, uint64_t inode, uint64_t dev) : fd_(fd), inode_(inode), dev_(dev) {}
  int fd_;
  uint64_t inode_, dev_;
};

// A socket factory for a namespace (nullptr = the current one): what hbone's connect uses.
// Every socket it makes carries `opts` (TCP_NODELAY, keepalive, user timeout).
std::function<int(int family)> socket_factory(std::shared_ptr<const Netns> ns, const hbone::sockopt::SocketConfig& opts);

}  // namespace ztunnel
