#include "waypoint/upstream/connector.h"

#include "hbone/client.h"
#include "hbone/socket_options.h"
#include "waypoint/http/h2_session.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace waypoint::upstream {

namespace asio = boost::asio;

Connector::Connector(asio::any_io_executor exec, Options opts)
    : exec_(exec), opts_(opts), pool_(std::make_shared<hbone::Pool>(exec, opts.pool_max_streams, opts.pool_idle)) {}

std::unique_ptr<Conn> Connector::take_idle(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = std::chrono::steady_clock::now();
  while (!list.empty()) {
    auto c = std::move(list.back());
    list.pop_back();
    const bool stale = c->idle_timeout.count() > 0 && now - c->idle_since >= c->idle_timeout;
    if (c->stream.usable() && !stale) {
      c->reused = true;
      return c;
    }
    c->stream.abort();
  }
  return nullptr;
}

asio::awaitable<common::Result<std::unique_ptr<Conn>>> Connector::connect(const Target& target, hbone::TlsContext tls,
                                                                          const std::string& self,
                                                                          std::chrono::milliseconds connect_timeout) {
  auto s = co_await open(target, std::move(tls), self, connect_timeout);
  if (!s) co_return common::make_error(s.error());
  co_return std::make_unique<Conn>(std::move(s.value()), target.key);
}

asio::awaitable<void> Connector::wait_release(std::chrono::milliseconds at_most) {
  auto t = std::make_shared<asio::steady_timer>(exec_, at_most);
  waiters_.push_back(t);
  co_await t->async_wait(asio::as_tuple(asio::use_awaitable));
}

bool Connector::close_idle_except(const std::string& key) {
  for (auto& [k, list] : idle_) {
    if (k == key || list.empty()) continue;
    list.back()->stream.abort();
    list.pop_back();
    return true;
  }
  return false;
}

asio::awaitable<common::Result<std::unique_ptr<Conn>>> Connector::acquire(const Target& target, hbone::TlsContext tls,
                                                                          const std::string& self,
                                                                          std::chrono::milliseconds connect_timeout) {
  if (auto c = take_idle(target.key)) co_return std::move(c);
  auto s = co_await open(target, std::move(tls), self, connect_timeout);
  if (!s) co_return common::make_error(s.error());
  co_return std::make_unique<Conn>(std::move(s.value()), target.key);
}

asio::awaitable<common::Result<http::AnyStream>> Connector::open(const Target& target, hbone::TlsContext tls,
                                                                 const std::string& self,
                                                                 std::chrono::milliseconds connect_timeout) {
  if (target.hbone) {
    if (!tls) co_return common::make_error("no certificate yet for the upstream HBONE connection");
    if (!target.identity) co_return common::make_error("HBONE endpoint without an identity");
    hbone::PoolKey key;
    key.src_identity = self;
    key.dst_identities = {target.identity->uri()};
    key.dst = asio::ip::tcp::endpoint(target.address.address(), opts_.hbone_port).address().to_string() + ":" +
              std::to_string(opts_.hbone_port);
    hbone::DialOptions dial;
    dial.target = asio::ip::tcp::endpoint(target.address.address(), opts_.hbone_port);
    dial.expected = {*target.identity};
    dial.mark = opts_.mark;
    dial.connect_timeout = connect_timeout;
    hbone::ConnectRequest req;
    req.method = "CONNECT";
    req.authority = target.key;
    auto s = co_await pool_->connect(key, tls, std::move(dial), std::move(req));
    if (!s) co_return common::make_error("HBONE to " + target.key + ": " + s.error());
    co_return http::AnyStream(std::move(s.value()));
  }
  auto sock = co_await hbone::connect_tcp(exec_, target.address, opts_.mark, connect_timeout);
  if (!sock) co_return common::make_error("TCP to " + target.key + ": " + sock.error());
  (void)hbone::sockopt::set_nodelay(sock.value().native_handle());
  co_return http::AnyStream(std::move(sock.value()));
}

asio::awaitable<common::Result<std::shared_ptr<http::H2Session>>> Connector::acquire_h2(
    const Target& target, hbone::TlsContext tls, const std::string& self, std::chrono::milliseconds connect_timeout,
    std::chrono::milliseconds idle_timeout) {
  if (auto it = h2_.find(target.key); it != h2_.end() && it->second->usable()) {
    const bool stale = idle_timeout.count() > 0 && it->second->open_streams() == 0 &&
                       std::chrono::steady_clock::now() - it->second->idle_since() >= idle_timeout;
    if (!stale) co_return it->second;
    it->second->retire();
    h2_.erase(it);
  }
  auto s = co_await open(target, std::move(tls), self, connect_timeout);
  if (!s) co_return common::make_error(s.error());
  if (draining_) {
    s.value().abort();
    co_return common::make_error("draining");
  }
  http::H2Session::Options o;
  o.max_body = opts_.max_body;
  auto session = http::H2Session::client(std::move(s.value()), o);
  asio::co_spawn(exec_, session->run(), asio::detached);
  // Another request may have opened one meanwhile: the newest serves new streams, the older
  // one finishes what it carries.
  auto& slot = h2_[target.key];
  if (slot && slot != session) slot->retire();
  slot = session;
  if (idle_timeout.count() > 0) {
    auto timer = std::make_shared<asio::steady_timer>(exec_);
    std::erase_if(idle_watchers_, [](const auto& w) { return w.expired(); });
    idle_watchers_.push_back(timer);
    asio::co_spawn(exec_, watch_idle(session, target.key, idle_timeout, timer), asio::detached);
  }
  co_return session;
}

// Closes the pooled HTTP/2 connection once it had no stream for idle_timeout (Envoy's cluster
// idle_timeout), so an endpoint that is no longer called does not keep a connection for ever.
asio::awaitable<void> Connector::watch_idle(std::weak_ptr<http::H2Session> w, std::string key,
                                            std::chrono::milliseconds idle_timeout,
                                            std::shared_ptr<asio::steady_timer> timer) {
  for (;;) {
    auto s = w.lock();
    if (!s || s->closed() || draining_) co_return;
    const auto now = std::chrono::steady_clock::now();
    const auto due = s->idle_since() + idle_timeout;
    if (s->open_streams() == 0 && now >= due) {
      if (auto it = h2_.find(key); it != h2_.end() && it->second == s) h2_.erase(it);
      s->retire();
      co_return;
    }
    timer->expires_at(s->open_streams() == 0 ? due : now + idle_timeout);
    s.reset();
    auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;  // drain / shutdown
  }
}

void Connector::release(std::unique_ptr<Conn> conn) {
  if (!conn) return;
  // Whatever happens to this connection, a pending request may now proceed (reuse it, or
  // open one in the capacity it frees).
  for (auto& w : waiters_) {
    if (auto t = w.lock()) t->cancel();
  }
  waiters_.clear();
  if (conn->max_uses > 0 && conn->uses >= conn->max_uses) {
    conn->stream.abort();
    return;
  }
  conn->idle_since = std::chrono::steady_clock::now();
  // A connection that is not kept is ended (RST_STREAM / close): dropped silently, its tunnel
  // would stay open on the pooled HBONE connection, and the app's keep-alive with it.
  if (draining_ || !conn->stream.usable()) {
    conn->stream.abort();
    return;
  }
  auto& list = idle_[conn->key];
  if (list.size() >= opts_.max_idle_per_endpoint) {
    conn->stream.abort();
    return;
  }
  list.push_back(std::move(conn));
}

void Connector::drain() {
  draining_ = true;
  for (auto& w : idle_watchers_) {
    if (auto t = w.lock()) t->cancel();
  }
  idle_watchers_.clear();
  for (auto& [k, list] : idle_) {
    for (auto& c : list) c->stream.abort();
  }
  idle_.clear();
  for (auto& [k, s] : h2_) s->retire();
  h2_.clear();
  pool_->drain();
}

void Connector::force_close() {
  draining_ = true;
  for (auto& w : idle_watchers_) {
    if (auto t = w.lock()) t->cancel();
  }
  idle_watchers_.clear();
  for (auto& [k, list] : idle_) {
    for (auto& c : list) c->stream.abort();
  }
  idle_.clear();
  for (auto& [k, s] : h2_) s->close();
  h2_.clear();
  pool_->close_all("shutdown");
}

size_t Connector::idle() const {
  size_t n = 0;
  for (auto& [k, list] : idle_) n += list.size();
  return n;
}

}  // namespace waypoint::upstream

namespace waypoint::upstream {

size_t Connector::h2_connections() const {
  size_t n = 0;
  for (auto& [k, s] : h2_) n += s->closed() ? 0 : 1;
  return n;
}

}  // namespace waypoint::upstream
