// Internal state shared by the proxy's listener code (proxy.cc, outbound.cc, inbound.cc).
// Not part of the public API. Threading as described in proxy.h.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <optional>

#include "hbone/connection.h"
#include "hbone/pool.h"
#include "hbone/server.h"
#include "hbone/settings.h"
#include "common/rbac/authz.h"
#include "ztunnel/state/route.h"
#include "ztunnel/proxy/proxy.h"

namespace ztunnel {

struct Proxy::Shared {
  Config cfg;
  ProxyTarget target;
  std::function<int(int)> socket_factory;  // sockets in the workload's namespace
  TrafficMetrics metrics;
  hbone::Settings server_settings;
  hbone::Settings client_settings;
  std::atomic<std::shared_ptr<const Snapshot>> snapshot;
  std::atomic<std::shared_ptr<const hbone::TlsContexts>> tls;
  std::atomic<std::shared_ptr<const std::string>> tls_error;  // set while fetches fail with no certificate
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active{0};
  bool orig_src = false;  // connect to local apps from the client's own IP

  Shared(const Config& c, common::metrics::Registry& r, ProxyTarget t);
  common::metrics::Registry& registry;

  // The workload this proxy serves, looked up in `snap`.
  const Workload* local_workload(const Snapshot& snap) const;
};

struct Proxy::Worker : std::enable_shared_from_this<Proxy::Worker> {
  boost::asio::io_context& io;
  std::shared_ptr<Proxy::Shared> shared;
  std::shared_ptr<hbone::Pool> pool;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors;
  std::list<std::weak_ptr<hbone::Connection>> inbound;  // for drain
  std::list<std::weak_ptr<boost::asio::ip::tcp::socket>> sockets;  // every proxied client socket
  size_t prune_sockets_at = 64;
  size_t prune_inbound_at = 64;

  // Live inbound connections and what they were authorized as, so a policy change can close
  // the ones it now denies (upstream's late rejection).
  struct Authorized {
    ConnectionInfo info;
    std::weak_ptr<hbone::Stream> stream;          // HBONE inbound
    std::weak_ptr<boost::asio::ip::tcp::socket> client;  // plaintext inbound
    std::weak_ptr<boost::asio::ip::tcp::socket> app;
    std::string* late_rejection = nullptr;  // set when a policy change closes it (owner's frame)
  };
  std::list<Authorized> authorized;
  std::list<Authorized>::iterator remember(Authorized a) { return authorized.insert(authorized.end(), std::move(a)); }
  void recheck_policies(const std::shared_ptr<const Snapshot>& snap);

  Worker(boost::asio::io_context& io_, std::shared_ptr<Proxy::Shared> s);

  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acc, uint16_t port);
  boost::asio::awaitable<void> handle_outbound(boost::asio::ip::tcp::socket sock);
  boost::asio::awaitable<void> handle_inbound_plain(boost::asio::ip::tcp::socket sock);
  // Inbound HBONE (15008): TLS + HTTP/2 once a certificate is there (await_tls).
  boost::asio::awaitable<void> serve_hbone(boost::asio::ip::tcp::socket sock);
  // The proxy's TLS contexts; before the first certificate, waits for it up to
  // kCertificateWait. Null after that, when draining, or at once when the fetch failed; the
  // reason is then in `why`.
  boost::asio::awaitable<std::shared_ptr<const hbone::TlsContexts>> await_tls(std::string& why);
  void handle_hbone_stream(std::shared_ptr<hbone::Stream> stream, std::shared_ptr<const hbone::PeerInfo> peer);
  boost::asio::awaitable<void> inbound_tunnel(std::shared_ptr<hbone::Stream> stream,
                                              std::shared_ptr<const hbone::PeerInfo> peer);
  void track(const std::shared_ptr<boost::asio::ip::tcp::socket>& s);
  void drain();
  void force_close();
};

// How long a connection that arrives before the proxy's first certificate waits for it.
inline constexpr std::chrono::seconds kCertificateWait{10};

// ip of an endpoint with v4-mapped v6 turned back into v4.
IpAddr endpoint_ip(const boost::asio::ip::tcp::endpoint& ep);
bool is_illegal_port(uint16_t port);

// Counts a live proxied connection for drain (RAII).
struct ActiveGuard {
  std::atomic<int64_t>& n;
  explicit ActiveGuard(std::atomic<int64_t>& c) : n(c) { n.fetch_add(1, std::memory_order_relaxed); }
  ~ActiveGuard() { n.fetch_sub(1, std::memory_order_relaxed); }
  ActiveGuard(const ActiveGuard&) = delete;
  ActiveGuard& operator=(const ActiveGuard&) = delete;
};

// A connection the in-pod rules REDIRECTed to one of our listeners: who called, and where it
// was going (SO_ORIGINAL_DST). nullopt (logged, naming `listener`) when that cannot be read.
struct Captured {
  boost::asio::ip::tcp::endpoint local;
  IpAddr client_ip;
  std::string src_addr;
  IpAddr dst_ip;
  uint16_t dst_port = 0;
  std::string dst_addr;
};
std::optional<Captured> captured(boost::asio::ip::tcp::socket& sock, const char* listener);

// The `baggage` value describing workload `w` (CONNECT requests and responses).
std::string baggage_of(const Workload& w);

}  // namespace ztunnel
