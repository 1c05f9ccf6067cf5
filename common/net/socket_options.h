// Socket option helpers for every plain socket the proxies open: packet mark (so the in-pod
// iptables rules skip our own traffic; the one SO_MARK helper, also used by the DNS proxy and
// the gRPC socket mutator), TCP_NODELAY, keepalive, original destination of a REDIRECTed
// connection, transparent/freebind for original-source connects.
// Stateless functions on raw fds; any thread. Errors are returned, never thrown.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"

struct sockaddr_storage;

namespace common::net::sockopt {

common::Status set_mark(int fd, uint32_t mark);
common::Status set_nodelay(int fd);
common::Status set_keepalive(int fd, int idle_s, int interval_s, int count);

common::Status set_reuseport(int fd);
common::Status set_transparent(int fd, bool v6);

// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST; returns "ip:port" parts.
struct Endpoint {
  std::string ip;  // textual, no brackets
  uint16_t port = 0;
  bool v6 = false;
};
common::Result<Endpoint> original_dst(int fd, bool v6);

}  // namespace common::net::sockopt
