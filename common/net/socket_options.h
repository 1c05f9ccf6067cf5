// Socket option helpers for every plain socket the proxies open: packet mark (so the in-pod
// iptables rules skip our own traffic; the one SO_MARK helper, also used by the DNS proxy and
// the gRPC socket mutator), TCP_NODELAY, keepalive, original destination of a REDIRECTed
// connection, transparent/freebind for original-source connects.
// Stateless functions on raw fds; any thread. Errors are returned, never thrown.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"

struct sockaddr_storage;

namespace common::net::sockopt {

common::Status set_mark(int fd, uint32_t mark);
common::Status set_nodelay(int fd);
common::Status set_keepalive(int fd, int idle_s, int interval_s, int count);

// TCP options every proxied connection gets (upstream's SocketConfig: KEEPALIVE_ENABLED,
// KEEPALIVE_TIME, KEEPALIVE_INTERVAL, KEEPALIVE_RETRIES, USER_TIMEOUT_ENABLED). The defaults
// are upstream's, so code without a ztunnel Config (tools, the waypoint) behaves the same.
struct SocketConfig {
  bool keepalive_enabled = true;
  std::chrono::milliseconds keepalive_time{std::chrono::seconds(180)};
  std::chrono::milliseconds keepalive_interval{std::chrono::seconds(180)};
  uint32_t keepalive_retries = 9;
  // TCP_USER_TIMEOUT = time + retries x interval: unacknowledged data fails the connection
  // after as long as keepalive would take to declare the peer dead.
  bool user_timeout_enabled = false;
};
// TCP_NODELAY plus `cfg`'s keepalive and user timeout. Works before connect() (options carry
// over to the connection) and on accepted sockets.
common::Status apply_socket_config(int fd, const SocketConfig& cfg);

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
