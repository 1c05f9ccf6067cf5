// The HBONE listener (proxy_worker.h): acceptors, TLS + HTTP/2 termination, drain.
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>

#include "hbone/socket_options.h"
#include "waypoint/http/h2_session.h"
#include "waypoint/proxy_worker.h"

namespace waypoint {

namespace asio = boost::asio;
using asio::ip::tcp;

common::Status Proxy::start() {
  const auto& o = shared_->opts;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(o.listen_address, ec);
  if (ec) return common::make_error("listen address " + o.listen_address + ": " + ec.message());
  uint16_t port = o.port;
  for (auto& w : workers_) {
    if (o.gateway) break;  // the ingress role's listeners are waypoint/ingress's
    auto acc = std::make_unique<tcp::acceptor>(w->io);
    tcp::endpoint ep(addr, port);
    acc->open(ep.protocol(), ec);
    if (!ec && addr.is_v6()) acc->set_option(asio::ip::v6_only(false), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      if (auto st = hbone::sockopt::set_reuseport(acc->native_handle()); !st) {
        return common::make_error("listener " + std::to_string(port) + ": " + st.error());
      }
    }
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(1024, ec);
    if (ec)
      return common::make_error("HBONE listener " + addr.to_string() + ":" + std::to_string(port) + ": " +
                                ec.message());
    // Port 0: the first worker's bind picks the port, the others join it (SO_REUSEPORT).
    port = acc->local_endpoint().port();
    w->acceptor = std::move(acc);
  }
  bound_port_ = o.gateway ? 0 : port;
  for (auto& w : workers_) {
    if (w->acceptor) asio::co_spawn(w->io, w->accept_loop(), asio::detached);
  }
  if (!workers_.empty() && !shared_->sweep_timer) {
    shared_->sweep_timer = std::make_shared<asio::steady_timer>(workers_.front()->io);
    asio::co_spawn(workers_.front()->io, sweep_loop(shared_, shared_->sweep_timer), asio::detached);
  }
  return common::ok_status();
}

void Proxy::serve_gateway(size_t worker, tcp::socket sock, std::string route_name,
                          std::optional<tcp::endpoint> remote) {
  auto w = workers_.at(worker);
  asio::co_spawn(w->io, w->serve_gateway(std::move(sock), std::move(route_name), remote), asio::detached);
}

asio::awaitable<void> Proxy::Worker::accept_loop() {
  auto self = shared_from_this();
  for (;;) {
    auto [ec, sock] = co_await acceptor->async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      spdlog::warn("accept on {}: {}", shared->opts.port, ec.message());
      continue;
    }
    (void)hbone::sockopt::set_nodelay(sock.native_handle());
    asio::co_spawn(io, serve(std::move(sock)), asio::detached);
  }
}

asio::awaitable<void> Proxy::Worker::serve(tcp::socket sock) {
  auto tls = shared->tls.load();
  if (!tls) {
    spdlog::warn("inbound HBONE connection closed: no certificate yet");
    co_return;
  }
  hbone::ServeHooks hooks;
  hooks.on_connection = [w = weak_from_this()](const std::shared_ptr<hbone::Connection>& c) {
    auto self = w.lock();
    if (!self) return;
    std::erase_if(self->inbound, [](const auto& x) { return x.expired(); });
    self->inbound.push_back(c);
    if (self->shared->draining.load(std::memory_order_relaxed)) c->drain();
  };
  hooks.on_handshake_error = [](const std::string& why, const tcp::endpoint& remote) {
    spdlog::warn("inbound HBONE handshake from {} failed: {}", remote.address().to_string(), why);
  };
  auto handler = [w = weak_from_this()](std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> p) {
    if (auto self = w.lock()) asio::co_spawn(self->io, self->handle(std::move(s), std::move(p)), asio::detached);
  };
  hbone::Settings settings;
  settings.max_concurrent_streams = 100;  // istiod's connect_terminate listener
  co_await hbone::serve_connection(std::move(sock), tls->server, settings, std::move(handler), std::move(hooks));
}

void Proxy::Worker::drain() {
  boost::system::error_code ignored;
  if (acceptor) acceptor->close(ignored);
  for (auto& w : inbound) {
    if (auto c = w.lock()) c->drain();
  }
  for (auto& w : inbound_h2) {
    if (auto sess = w.lock()) sess->retire();
  }
  connector.drain();
}

void Proxy::Worker::force_close() {
  for (auto& w : inbound) {
    if (auto c = w.lock()) c->close("termination deadline");
  }
  connector.force_close();
}

}  // namespace waypoint
