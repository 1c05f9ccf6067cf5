#include "cni/plugin_ctl.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace cni {

namespace {

constexpr std::size_t kMaxReply = 256 * 1024;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

common::Result<nlohmann::json> plugin_ctl_call(const std::string& ctl_path, const nlohmann::json& request, int fd,
                                               std::chrono::milliseconds timeout) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (ctl_path.size() >= sizeof(sa.sun_path)) return common::make_error("control socket path too long: " + ctl_path);
  std::memcpy(sa.sun_path, ctl_path.c_str(), ctl_path.size() + 1);
  Fd sock{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) return common::make_error(std::string("socket: ") + std::strerror(errno));
  if (::connect(sock.fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return common::make_error("cannot reach the ambient-cni agent at " + ctl_path + ": " + std::strerror(errno));
  }
  const std::string body = request.dump();
  iovec iov{const_cast<char*>(body.data()), body.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock.fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 || static_cast<std::size_t>(n) != body.size()) {
    return common::make_error(std::string("sending to the agent: ") + std::strerror(errno));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<char> buf(kMaxReply);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return common::make_error("timed out waiting for the agent's reply");
    pollfd p{sock.fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return common::make_error("timed out waiting for the agent's reply");
    n = ::recv(sock.fd, buf.data(), buf.size(), MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return common::make_error(std::string("reading the agent's reply: ") + std::strerror(errno));
    if (n == 0) return common::make_error("the agent closed the connection without replying");
    if (static_cast<std::size_t>(n) > buf.size()) return common::make_error("the agent's reply is too large");
    auto j = nlohmann::json::parse(buf.data(), buf.data() + n, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return common::make_error("malformed reply from the agent");
    return j;
  }
}

}  // namespace cni
