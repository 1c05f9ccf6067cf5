#include "cni/control.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "proto/zds_wire.h"

namespace cni {

common::Result<nlohmann::json> ctl_call(const std::string& ctl_path, const nlohmann::json& request,
                                        int fd, std::chrono::milliseconds timeout) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (ctl_path.size() >= sizeof(sa.sun_path)) return common::make_error("control socket path too long: " + ctl_path);
  std::memcpy(sa.sun_path, ctl_path.c_str(), ctl_path.size() + 1);
  zds::UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock) return common::make_error(std::string("socket: ") + std::strerror(errno));
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    const int e = errno;
    std::string msg = "cannot reach the ambient-cni agent at " + ctl_path + ": " + std::strerror(e);
    if (e == ENOENT || e == ECONNREFUSED) msg += " (is `ambient-cni serve` running?)";
    return common::make_error(msg);
  }
  std::vector<int> fds;
  if (fd >= 0) fds.push_back(fd);
  const std::string body = request.dump();
  if (body.size() > kMaxCtlMessage) return common::make_error("request too large");
  // A fresh connection's send buffer always has room for one request; wait briefly otherwise.
  for (int i = 0;; ++i) {
    auto sent = zds::send_packet(sock.get(), body, fds);
    if (!sent.ok()) return common::make_error("sending to the agent: " + sent.error());
    if (*sent) break;
    pollfd p{sock.get(), POLLOUT, 0};
    if (i > 10 || ::poll(&p, 1, 1000) <= 0) return common::make_error("agent is not reading requests");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return common::make_error("timed out waiting for the agent's reply");
    pollfd p{sock.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return common::make_error("timed out waiting for the agent's reply");
    auto r = zds::recv_packet(sock.get(), kMaxCtlMessage);
    if (!r.ok()) return common::make_error("reading the agent's reply: " + r.error());
    if (r->outcome == zds::RecvOutcome::WouldBlock) continue;
    if (r->outcome == zds::RecvOutcome::Closed) return common::make_error("the agent closed the connection without replying");
    auto j = nlohmann::json::parse(r->packet.bytes, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return common::make_error("malformed reply from the agent");
    return j;
  }
}

}  // namespace cni
