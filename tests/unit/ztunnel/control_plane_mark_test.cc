// ztunnel's own control-plane sockets (the xDS stream and the Istio CA client) carry
// PACKET_MARK, read back from the kernel on the live sockets: in a captured pod (dedicated
// mode) an unmarked control-plane socket is redirected to ztunnel's own 15001 and never
// reaches istiod. The marks travel Config -> XdsSource / make_cert_provider -> GrpcEndpoint ->
// gRPC's socket mutator; this test links those objects exactly as the binary does, so an
// object that disagrees with the others about Config's layout (a stale build; issue 13's
// reverted 94a6eb7 was blamed for one) fails here instead of in 70-xds-e2e's ded pod.
//
// Root only (SO_MARK needs CAP_NET_ADMIN; CI runs as root): fails, not skips, elsewhere.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/identity/identity.h"
#include "common/admin/metrics.h"
#include "ztunnel/cert_source.h"
#include "ztunnel/config.h"
#include "ztunnel/inpod/netns.h"
#include "ztunnel/state/xds_source.h"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

// Not the default 1337: a path that ignored Config and used a default would pass with that.
constexpr uint32_t kMark = 4242;

// A TCP listener on 127.0.0.1 that accepts and then says nothing: a gRPC client's connection
// stays open (waiting for the server's HTTP/2 preface) long enough to read its options.
class SilentServer {
 public:
  SilentServer() : acc_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~SilentServer() {
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acc_.local_endpoint().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }

 private:
  void accept() {
    acc_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      held_.push_back(std::move(s));
      accept();
    });
  }
  asio::io_context io_;
  tcp::acceptor acc_;
  std::vector<tcp::socket> held_;  // only touched on thread_
  std::thread thread_;
};

// SO_MARK of every socket of this process connected to 127.0.0.1:port (gRPC uses dual-stack
// sockets, so also ::ffff:127.0.0.1). A concurrently closed or reused fd is simply skipped.
std::vector<uint32_t> marks_of_sockets_to(uint16_t port) {
  std::vector<uint32_t> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (auto* e = ::readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == ::dirfd(d)) continue;
    struct stat st {};
    if (::fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
    bool match = false;
    if (peer.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
      match = ntohs(a->sin_port) == port && ntohl(a->sin_addr.s_addr) == INADDR_LOOPBACK;
    } else if (peer.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
      const in6_addr mapped_lo = {{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}}};
      match = ntohs(a->sin6_port) == port && std::memcmp(&a->sin6_addr, &mapped_lo, sizeof(in6_addr)) == 0;
    }
    if (!match) continue;
    uint32_t mark = 0;
    socklen_t mlen = sizeof(mark);
    if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_MARK, &mark, &mlen) == 0) out.push_back(mark);
  }
  ::closedir(d);
  return out;
}

// Waits (bounded: a liveness limit, not a timing assertion) until some socket to `port`
// exists, and returns the marks seen then; empty if none ever appeared.
std::vector<uint32_t> wait_for_marks(uint16_t port) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = marks_of_sockets_to(port);
    if (!m.empty()) return m;
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

}  // namespace

TEST_CASE("xDS and CA sockets carry PACKET_MARK, also after the proxy's factory made sockets", "[grpc][mark][root]") {
  INFO("SO_MARK needs root (CAP_NET_ADMIN): run the unit tests as root");
  REQUIRE(::geteuid() == 0);

  SilentServer xds, ca;
  ztunnel::Config cfg;
  cfg.packet_mark = kMark;
  cfg.xds_address = xds.url();
  cfg.ca_address = ca.url();
  cfg.auth_token = "";
  cfg.pod_name = "zt";
  cfg.pod_namespace = "istio-system";

  // What a dedicated-mode proxy holds while the control plane connects: sockets from its
  // factory (here still open, so their fd numbers cannot be handed to gRPC).
  auto factory = ztunnel::socket_factory(nullptr, cfg.socket_config());
  std::vector<int> proxy_fds;
  for (int i = 0; i < 8; ++i) proxy_fds.push_back(factory(i % 2 ? AF_INET6 : AF_INET));

  common::metrics::Registry reg;
  asio::io_context control;  // never run: the results of these calls do not matter here
  ztunnel::XdsSource source(
      cfg, reg, control, [](ztunnel::SnapshotConstSharedPtr) {}, [] {});
  source.start();
  auto provider = ztunnel::make_cert_provider(cfg, control);
  REQUIRE(provider.ok());
  provider.value()->fetch(common::Identity("cluster.local", "e2e", "ded"), [](auto) {});

  const auto xds_marks = wait_for_marks(xds.port());
  const auto ca_marks = wait_for_marks(ca.port());
  INFO("PACKET_MARK " << kMark << "; xDS sockets " << xds_marks.size() << ", CA sockets " << ca_marks.size());
  REQUIRE_FALSE(xds_marks.empty());
  REQUIRE_FALSE(ca_marks.empty());
  for (uint32_t m : xds_marks) CHECK(m == kMark);
  for (uint32_t m : ca_marks) CHECK(m == kMark);

  // The factory's sockets are the proxy's, with its options, and unconnected.
  for (int fd : proxy_fds) {
    REQUIRE(fd >= 0);
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    CHECK(::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0);
    ::close(fd);
  }
  source.stop();
}
