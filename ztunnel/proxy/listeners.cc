// The proxy's listeners: binding 15001/15006/15008 on every worker (in the target's network
// namespace, with port reuse for a pod's handover), each worker's accept loop handing a
// connection to its path (outbound.cc, inbound.cc, serve_hbone), and the DNS proxy's sockets.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/admin/http_admin.h"
#include "hbone/socket_options.h"
#include "ztunnel/dns/proxy.h"
#include "ztunnel/dns/resolv_conf.h"
#include "ztunnel/inpod/netns.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/proxy/proxy_internal.h"

namespace ztunnel {
namespace asio = boost::asio;
using asio::ip::tcp;

asio::awaitable<void> Proxy::Worker::accept_loop(tcp::acceptor& acc, uint16_t port) {
  auto self = shared_from_this();
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(io, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
      // EMFILE and friends: log and keep serving what we can.
      spdlog::warn("accept on {}: {}", port, ec.message());
      continue;
    }
    // A connection accepted while draining began is still served: the kernel completed its
    // handshake, so dropping it would reset a client that did nothing wrong.
    (void)hbone::sockopt::apply_socket_config(sock.native_handle(), shared->cfg.socket_config());
    const auto& failures = shared->task_failures;
    if (port == kOutboundPort) {
      asio::co_spawn(io, handle_outbound(std::move(sock)), failures.handler(Task::Outbound));
    } else if (port == kInboundPlaintextPort) {
      asio::co_spawn(io, handle_inbound_plain(std::move(sock)), failures.handler(Task::InboundPlaintext));
    } else {
      asio::co_spawn(io, serve_hbone(std::move(sock)), failures.handler(Task::InboundHbone));
    }
  }
}

namespace {
// IP_TRANSPARENT needs CAP_NET_ADMIN; without it we cannot preserve the client's source IP.
bool transparent_supported() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  bool ok = hbone::sockopt::set_transparent(fd, false).ok();
  ::close(fd);
  return ok;
}

// Port reuse hands a pod's ports from one ztunnel to its replacement. When the old one closes
// its listeners, connections already in their accept queues would be reset; with
// net.ipv4.tcp_migrate_req (Linux 5.14+, per network namespace) the kernel moves them to the
// other listener of the reuseport group instead. Best effort: without it a handover can reset
// the few connections that arrive in that instant.
void enable_listener_migration(const Netns& netns) {
  int err = 0;
  auto st = netns.run([&err] {
    int fd = ::open("/proc/sys/net/ipv4/tcp_migrate_req", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "1", 1) != 1) err = errno;
    if (fd >= 0) ::close(fd);
  });
  if (!st || err != 0) {
    spdlog::info("net.ipv4.tcp_migrate_req not set ({}); a handover may reset queued connections",
                 st ? std::strerror(err) : st.error());
  }
}
}  // namespace

uint16_t Proxy::bound_port(uint16_t port) const {
  switch (port) {
    case kOutboundPort:
      return bound_ports_[0];
    case kInboundPlaintextPort:
      return bound_ports_[1];
    case kInboundHbonePort:
      return bound_ports_[2];
    default:
      return 0;
  }
}

common::Status Proxy::start() {
  const auto& cfg = shared_->cfg;
  // Only in a pod's netns: dedicated mode shares a namespace ztunnel does not own (the host's).
  if (cfg.inpod_port_reuse && shared_->target.netns) enable_listener_migration(*shared_->target.netns);
  shared_->orig_src = cfg.enable_orig_src.value_or(transparent_supported());
  const uint16_t ports[] = {kOutboundPort, kInboundPlaintextPort, kInboundHbonePort};
  const auto& seams = shared_->seams;
  uint16_t bind_ports[] = {seams.outbound_port, seams.inbound_plaintext_port, seams.inbound_hbone_port};
  for (auto& w : workers_) {
    for (size_t i = 0; i < std::size(ports); ++i) {
      const uint16_t port = ports[i];
      auto acc = std::make_unique<tcp::acceptor>(w->io);
      boost::system::error_code ec;
      asio::ip::address any = cfg.ipv6_enabled ? asio::ip::address(asio::ip::address_v6::any())
                                               : asio::ip::address(asio::ip::address_v4::any());
      tcp::endpoint ep(seams.listen_ip.value_or(any), bind_ports[i]);
      const bool dual_stack = cfg.ipv6_enabled && !seams.listen_ip;
      if (shared_->target.netns) {
        auto fd = shared_->target.netns->socket(cfg.ipv6_enabled ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
        if (!fd) return common::make_error("listener " + std::to_string(port) + ": " + fd.error());
        acc->assign(ep.protocol(), fd.value(), ec);
      } else {
        acc->open(ep.protocol(), ec);
      }
      if (!ec && dual_stack) acc->set_option(asio::ip::v6_only(false), ec);
      if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec && cfg.inpod_port_reuse) {
        if (auto st = hbone::sockopt::set_reuseport(acc->native_handle()); !st) {
          return common::make_error("listener " + std::to_string(port) + ": " + st.error());
        }
      }
      if (!ec && cfg.packet_mark != 0) {
        if (auto st = hbone::sockopt::set_mark(acc->native_handle(), cfg.packet_mark); !st) {
          return common::make_error("listener " + std::to_string(port) + ": " + st.error() +
                                    " (PACKET_MARK needs CAP_NET_ADMIN)");
        }
      }
      if (!ec) acc->bind(ep, ec);
      if (!ec) acc->listen(1024, ec);
      if (ec) return common::make_error("listener " + std::to_string(port) + ": " + ec.message());
      // An ephemeral port (test seam) is picked by the first worker; the others join it.
      if (bind_ports[i] == 0) bind_ports[i] = acc->local_endpoint(ec).port();
      bound_ports_[i] = bind_ports[i];
      w->acceptors.push_back(std::move(acc));
    }
  }
  for (auto& w : workers_) {
    for (size_t i = 0; i < w->acceptors.size(); ++i) {
      asio::co_spawn(w->io, w->accept_loop(*w->acceptors[i], ports[i]), shared_->task_failures.handler(Task::Accept));
    }
  }
  if (cfg.dns_proxy) {
    if (auto st = start_dns(); !st) spdlog::warn("DNS proxy not started: {}", st.error());
  }
  spdlog::info(
      "proxy listening on 15001 (outbound), 15006 (inbound plaintext), 15008 (inbound HBONE); "
      "{} workers, original source {}",
      workers_.size(), shared_->orig_src ? "preserved" : "not preserved");
  return common::ok_status();
}

namespace {
// One set of DNS metric families per process (proxies come and go with pods; their DNS
// coroutines may outlive them, so the families must not).
dns::DnsMetrics& dns_metrics(common::metrics::Registry& registry) {
  static dns::DnsMetrics* metrics = new dns::DnsMetrics(registry);
  return *metrics;
}
}  // namespace

common::Status Proxy::start_dns() {
  const auto& cfg = shared_->cfg;
  auto rc = dns::load_resolv_conf("/etc/resolv.conf");
  if (!rc) return common::make_error("/etc/resolv.conf: " + rc.error());
  auto& io = workers_.front()->io;  // the DNS proxy is single-threaded by design
  // DNS_PROXY_ADDR (proxy metadata, validated at config load): "localhost" means 127.0.0.1.
  auto hp = common::http::split_host_port(cfg.dns_proxy_addr);
  if (!hp) return common::make_error("DNS_PROXY_ADDR " + cfg.dns_proxy_addr + ": " + hp.error());
  boost::system::error_code aec;
  std::string host(hp->first);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const asio::ip::address addr = host == "localhost" ? asio::ip::address(asio::ip::make_address_v4("127.0.0.1"))
                                                     : asio::ip::make_address(host, aec);
  if (aec) return common::make_error("DNS_PROXY_ADDR " + cfg.dns_proxy_addr + ": the host must be an IP or localhost");
  const uint16_t dns_port = hp->second;
  const std::string where = cfg.dns_proxy_addr;
  const int family = addr.is_v6() ? AF_INET6 : AF_INET;
  auto make_fd = [&](int type) -> common::Result<int> {
    if (shared_->target.netns) return shared_->target.netns->socket(family, type | SOCK_NONBLOCK);
    int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return common::make_error(std::string("socket: ") + std::strerror(errno));
    return fd;
  };
  auto prepare = [&](int fd) -> common::Status {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (cfg.inpod_port_reuse) {
      if (auto st = hbone::sockopt::set_reuseport(fd); !st) return st;
    }
    if (cfg.packet_mark != 0) return hbone::sockopt::set_mark(fd, cfg.packet_mark);
    return common::ok_status();
  };
  dns::DnsProxyInputs in{asio::ip::udp::socket(io), asio::ip::tcp::acceptor(io)};
  boost::system::error_code ec;
  auto ufd = make_fd(SOCK_DGRAM);
  if (!ufd) return common::make_error(ufd.error());
  in.udp.assign(addr.is_v6() ? asio::ip::udp::v6() : asio::ip::udp::v4(), ufd.value(), ec);
  if (auto st = prepare(ufd.value()); !st) return st;
  if (!ec) in.udp.bind(asio::ip::udp::endpoint(addr, dns_port), ec);
  if (ec) return common::make_error("DNS UDP " + where + ": " + ec.message());
  auto tfd = make_fd(SOCK_STREAM);
  if (!tfd) return common::make_error(tfd.error());
  in.tcp.assign(addr.is_v6() ? tcp::v6() : tcp::v4(), tfd.value(), ec);
  if (auto st = prepare(tfd.value()); !st) return st;
  if (!ec) in.tcp.bind(tcp::endpoint(addr, dns_port), ec);
  if (!ec) in.tcp.listen(128, ec);
  if (ec) return common::make_error("DNS TCP " + where + ": " + ec.message());

  auto shared = shared_;
  in.snapshot = [shared] { return shared->snapshot.load(); };
  in.client.ns = shared_->target.workload.ns;
  in.client.network = cfg.network;
  if (const Workload* w = shared_->local_workload(*shared_->snapshot.load())) {
    in.client.canonical_service = w->canonical_name;
    in.client.canonical_revision = w->canonical_revision;
  }
  in.cluster_domain = cfg.cluster_domain;
  in.preferred_namespace = cfg.prefered_service_namespace;
  in.upstreams = rc->nameservers;
  in.upstream_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(rc->timeout);
  if (cfg.packet_mark != 0) in.mark = cfg.packet_mark;
  in.metrics = &dns_metrics(shared_->registry);
  auto proxy = dns::DnsProxy::create(std::move(in));
  if (!proxy) return common::make_error(proxy.error());
  dns_ = std::move(proxy.value());
  dns_->start();
  return common::ok_status();
}

}  // namespace ztunnel
