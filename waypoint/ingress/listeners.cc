#include "waypoint/ingress/listeners.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "hbone/socket_options.h"
#include "waypoint/ingress/tls_terminator.h"

namespace waypoint::ingress {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
// What one port serves now: the listener and, for TLS, its certificates.
struct Serving {
  std::shared_ptr<const GatewayListener> listener;
  std::shared_ptr<const ServerTls> tls;  // null = plaintext
};
}  // namespace

struct GatewayListeners::Port {
  std::atomic<std::shared_ptr<const Serving>> serving;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;  // acceptors[i] on worker i
};

namespace {

asio::awaitable<void> accept_loop(std::shared_ptr<GatewayListeners::Port> port, size_t worker, Proxy* proxy) {
  auto acc = port->acceptors[worker];
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      boost::system::error_code ignored;
      spdlog::warn("gateway accept on port {}: {}", acc->local_endpoint(ignored).port(), ec.message());
      continue;
    }
    auto s = port->serving.load();
    if (s->tls) {
      asio::co_spawn(acc->get_executor(), serve_tls(std::move(sock), s->tls, proxy, worker), asio::detached);
    } else {
      proxy->serve_gateway(worker, std::move(sock), s->listener->chains.front().route_name);
    }
  }
}

void close_port(common::Runtime& rt, GatewayListeners::Port& p) {
  for (size_t i = 0; i < p.acceptors.size(); ++i) {
    asio::post(rt.worker(i), [acc = p.acceptors[i]] {
      boost::system::error_code ignored;
      acc->close(ignored);
    });
  }
}

}  // namespace

GatewayListeners::GatewayListeners(common::Runtime& rt, Proxy& proxy, std::string listen_address, uint32_t mark,
                                   std::string credential_dir)
    : rt_(rt),
      proxy_(proxy),
      listen_address_(std::move(listen_address)),
      mark_(mark),
      credential_dir_(std::move(credential_dir)) {}

GatewayListeners::~GatewayListeners() {
  close_all();
}

void GatewayListeners::reconcile(const ConfigSnapshot& config) {
  // What each port should serve (a port named twice: the first listener by name wins).
  std::map<uint16_t, std::shared_ptr<const Serving>> wanted;
  for (const auto& [name, l] : config.listeners) {
    if (wanted.count(l->port)) {
      spdlog::error("gateway listener {}: port {} is already served by another listener; ignored", name, l->port);
      continue;
    }
    auto s = std::make_shared<Serving>();
    s->listener = l;
    if (l->tls()) {
      auto tls = make_server_tls(*l, credential_dir_);
      if (!tls) {
        spdlog::error("gateway listener {} (port {}) not served: {}", name, l->port, tls.error());
        continue;
      }
      s->tls = std::move(tls.value());
    }
    wanted[l->port] = std::move(s);
  }
  for (auto it = open_.begin(); it != open_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    spdlog::info("gateway listener on port {} closed: no longer configured", it->first);
    close_port(rt_, *it->second);
    it = open_.erase(it);
  }
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(listen_address_, ec);
  if (ec) {
    spdlog::error("gateway listen address {}: {}", listen_address_, ec.message());
    return;
  }
  for (auto& [port, serving] : wanted) {
    if (auto it = open_.find(port); it != open_.end()) {
      it->second->serving.store(serving);  // the next connection uses it
      continue;
    }
    auto p = std::make_shared<Port>();
    p->serving.store(serving);
    std::string failure;
    for (size_t i = 0; i < proxy_.workers() && failure.empty(); ++i) {
      auto acc = std::make_shared<tcp::acceptor>(rt_.worker(i));
      const tcp::endpoint ep(addr, port);
      acc->open(ep.protocol(), ec);
      if (!ec && addr.is_v6()) acc->set_option(asio::ip::v6_only(false), ec);
      if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) {
        if (auto st = hbone::sockopt::set_reuseport(acc->native_handle()); !st) failure = st.error();
      }
      if (!ec && failure.empty() && mark_ != 0) {
        if (auto st = hbone::sockopt::set_mark(acc->native_handle(), mark_); !st) failure = st.error();
      }
      if (!ec && failure.empty()) acc->bind(ep, ec);
      if (!ec && failure.empty()) acc->listen(1024, ec);
      if (ec && failure.empty()) failure = ec.message();
      p->acceptors.push_back(std::move(acc));
    }
    if (!failure.empty()) {
      spdlog::error("gateway listener {}:{} ({}): {} (retried at the next configuration)", listen_address_, port,
                    serving->listener->name, failure);
      for (auto& acc : p->acceptors) {
        boost::system::error_code ignored;
        acc->close(ignored);
      }
      continue;
    }
    for (size_t i = 0; i < p->acceptors.size(); ++i) {
      asio::co_spawn(rt_.worker(i), accept_loop(p, i, &proxy_), asio::detached);
    }
    spdlog::info("gateway listener {} on {}:{} ({})", serving->listener->name, listen_address_, port,
                 serving->tls ? "TLS" : "plaintext");
    open_[port] = std::move(p);
  }
}

void GatewayListeners::close_all() {
  for (auto& [port, p] : open_) close_port(rt_, *p);
  open_.clear();
}

std::vector<uint16_t> GatewayListeners::ports() const {
  std::vector<uint16_t> out;
  for (const auto& [port, p] : open_) out.push_back(port);
  return out;
}

}  // namespace waypoint::ingress
