// Socket options read back from the kernel (getsockopt): KEEPALIVE_* and USER_TIMEOUT_ENABLED
// reach every socket ztunnel connects or accepts, with upstream's defaults when unset.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <optional>

#include "hbone/client.h"
#include "common/net/socket_options.h"
#include "ztunnel/config.h"
#include "ztunnel/inpod/netns.h"

namespace asio = boost::asio;
using asio::ip::tcp;
using hbone::sockopt::SocketConfig;
using namespace std::chrono_literals;

namespace {

int get_int(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof(v);
  REQUIRE(::getsockopt(fd, level, name, &v, &len) == 0);
  return v;
}

struct Read {
  int nodelay, keepalive, idle, interval, count, user_timeout;
};
Read read_back(int fd) {
  return {get_int(fd, IPPROTO_TCP, TCP_NODELAY),  get_int(fd, SOL_SOCKET, SO_KEEPALIVE),
          get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL),
          get_int(fd, IPPROTO_TCP, TCP_KEEPCNT),  get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT)};
}

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

ztunnel::Config config_from(std::map<std::string, std::string> vars) {
  auto r = ztunnel::load_config(
      [vars = std::move(vars)](std::string_view n) -> std::optional<std::string> {
        auto it = vars.find(std::string(n));
        if (it == vars.end()) return std::nullopt;
        return it->second;
      },
      4);
  INFO((r.ok() ? std::string("ok") : r.error()));
  REQUIRE(r.ok());
  return r.value();
}

}  // namespace

TEST_CASE("apply_socket_config: upstream's defaults are 180 s / 180 s / 9, no user timeout", "[sockopt]") {
  Fd s(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(s.fd >= 0);
  REQUIRE(hbone::sockopt::apply_socket_config(s.fd, SocketConfig{}).ok());
  const auto r = read_back(s.fd);
  CHECK(r.nodelay == 1);
  CHECK(r.keepalive == 1);
  CHECK(r.idle == 180);
  CHECK(r.interval == 180);
  CHECK(r.count == 9);
  CHECK(r.user_timeout == 0);
}

TEST_CASE("apply_socket_config: custom values, user timeout = time + retries x interval", "[sockopt]") {
  Fd s(::socket(AF_INET6, SOCK_STREAM, 0));
  REQUIRE(s.fd >= 0);
  SocketConfig c;
  c.keepalive_time = 60s;
  c.keepalive_interval = 10s;
  c.keepalive_retries = 3;
  c.user_timeout_enabled = true;
  REQUIRE(hbone::sockopt::apply_socket_config(s.fd, c).ok());
  const auto r = read_back(s.fd);
  CHECK(r.keepalive == 1);
  CHECK(r.idle == 60);
  CHECK(r.interval == 10);
  CHECK(r.count == 3);
  CHECK(r.user_timeout == 90'000);
}

TEST_CASE("apply_socket_config: KEEPALIVE_ENABLED=false leaves keepalive off; errors are values", "[sockopt]") {
  Fd s(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(s.fd >= 0);
  SocketConfig c;
  c.keepalive_enabled = false;
  REQUIRE(hbone::sockopt::apply_socket_config(s.fd, c).ok());
  CHECK(read_back(s.fd).keepalive == 0);
  CHECK(read_back(s.fd).nodelay == 1);
  CHECK_FALSE(hbone::sockopt::apply_socket_config(-1, c).ok());
}

TEST_CASE("ztunnel's socket factory applies the environment's KEEPALIVE_* and USER_TIMEOUT_ENABLED",
          "[sockopt][ztunnel]") {
  const auto cfg = config_from({{"KEEPALIVE_TIME", "45s"},
                                {"KEEPALIVE_INTERVAL", "5s"},
                                {"KEEPALIVE_RETRIES", "4"},
                                {"USER_TIMEOUT_ENABLED", "true"}});
  auto factory = ztunnel::socket_factory(nullptr, cfg.socket_config());
  REQUIRE(factory);
  for (int family : {AF_INET, AF_INET6}) {
    Fd s(factory(family));
    REQUIRE(s.fd >= 0);
    const auto r = read_back(s.fd);
    CHECK(r.nodelay == 1);
    CHECK(r.keepalive == 1);
    CHECK(r.idle == 45);
    CHECK(r.interval == 5);
    CHECK(r.count == 4);
    CHECK(r.user_timeout == 65'000);
  }
  const auto off = config_from({{"KEEPALIVE_ENABLED", "false"}});
  Fd s(ztunnel::socket_factory(nullptr, off.socket_config())(AF_INET));
  REQUIRE(s.fd >= 0);
  CHECK(read_back(s.fd).keepalive == 0);
}

TEST_CASE("connect_tcp: the connected socket carries the factory's options, or the defaults without one",
          "[sockopt][hbone]") {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  SocketConfig c;
  c.keepalive_time = 30s;
  c.keepalive_interval = 7s;
  c.keepalive_retries = 2;
  c.user_timeout_enabled = true;
  auto factory = ztunnel::socket_factory(nullptr, c);

  std::optional<common::Result<tcp::socket>> a, b;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        a.emplace(co_await hbone::connect_tcp(io.get_executor(), acc.local_endpoint(), 0, 5s, std::nullopt, factory));
        b.emplace(co_await hbone::connect_tcp(io.get_executor(), acc.local_endpoint(), 0, 5s));
      },
      asio::detached);
  io.run();
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  REQUIRE(a->ok());
  REQUIRE(b->ok());
  const auto ra = read_back((*a)->native_handle());
  CHECK(ra.keepalive == 1);
  CHECK(ra.idle == 30);
  CHECK(ra.interval == 7);
  CHECK(ra.count == 2);
  CHECK(ra.user_timeout == 44'000);
  const auto rb = read_back((*b)->native_handle());
  CHECK(rb.keepalive == 1);
  CHECK(rb.idle == 180);
  CHECK(rb.count == 9);
  CHECK(rb.user_timeout == 0);
}
