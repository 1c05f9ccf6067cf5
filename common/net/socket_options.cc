#include "common/net/socket_options.h"

#include <arpa/inet.h>
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <limits>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace common::net::sockopt {
namespace {
common::Status errno_status(const char* what) {
  return common::make_error(std::string(what) + ": " + std::strerror(errno));
}
template <typename T>
common::Status setopt(int fd, int level, int name, T value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) return errno_status(what);
  return common::ok_status();
}
// <linux/netfilter_ipv6/ip6_tables.h> pulls kernel headers that clash with glibc; the value is ABI.
constexpr int kIp6tSoOriginalDst = 80;
}  // namespace

common::Status set_mark(int fd, uint32_t mark) { return setopt(fd, SOL_SOCKET, SO_MARK, mark, "SO_MARK"); }
common::Status set_nodelay(int fd) { return setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"); }
common::Status set_reuseport(int fd) { return setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"); }

common::Status set_keepalive(int fd, int idle_s, int interval_s, int count) {
  if (auto s = setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"); !s) return s;
  if (auto s = setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s, "TCP_KEEPIDLE"); !s) return s;
  if (auto s = setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s, "TCP_KEEPINTVL"); !s) return s;
  return setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, count, "TCP_KEEPCNT");
}

common::Status apply_socket_config(int fd, const SocketConfig& cfg) {
  if (auto s = set_nodelay(fd); !s) return s;
  // The kernel takes whole seconds; a sub-second value must not become 0 (= EINVAL).
  auto secs = [](std::chrono::milliseconds d) {
    return static_cast<int>(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(d).count()));
  };
  if (cfg.keepalive_enabled) {
    if (auto s = set_keepalive(fd, secs(cfg.keepalive_time), secs(cfg.keepalive_interval),
                               static_cast<int>(cfg.keepalive_retries));
        !s) {
      return s;
    }
  }
  if (cfg.user_timeout_enabled) {
    const auto total = cfg.keepalive_time + cfg.keepalive_interval * cfg.keepalive_retries;
    const auto ms = static_cast<unsigned>(std::min<int64_t>(total.count(), std::numeric_limits<int>::max()));
    if (auto s = setopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, ms, "TCP_USER_TIMEOUT"); !s) return s;
  }
  return common::ok_status();
}

common::Status set_transparent(int fd, bool v6) {
  if (v6) {
    if (auto s = setopt(fd, SOL_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT"); !s) return s;
    return setopt(fd, SOL_IP, IP_FREEBIND, 1, "IP_FREEBIND");
  }
  if (auto s = setopt(fd, SOL_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT"); !s) return s;
  return setopt(fd, SOL_IP, IP_FREEBIND, 1, "IP_FREEBIND");
}

common::Result<Endpoint> original_dst(int fd, bool v6) {
  char text[INET6_ADDRSTRLEN] = {};
  Endpoint ep;
  if (v6) {
    sockaddr_in6 sa{};
    socklen_t len = sizeof(sa);
    if (::getsockopt(fd, SOL_IPV6, kIp6tSoOriginalDst, &sa, &len) != 0) {
      return common::make_error(std::string("IP6T_SO_ORIGINAL_DST: ") + std::strerror(errno));
    }
    // A v4 connection on a dual-stack socket is reported by the v4 option instead.
    ::inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof(text));
    ep.ip = text;
    ep.port = ntohs(sa.sin6_port);
    ep.v6 = true;
    return ep;
  }
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) != 0) {
    return common::make_error(std::string("SO_ORIGINAL_DST: ") + std::strerror(errno));
  }
  ::inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
  ep.ip = text;
  ep.port = ntohs(sa.sin_port);
  return ep;
}

}  // namespace common::net::sockopt
