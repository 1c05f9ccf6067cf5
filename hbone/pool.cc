#include "hbone/pool.h"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hbone {
namespace asio = boost::asio;

Pool::Pool(asio::any_io_executor exec, uint32_t max_streams, std::chrono::milliseconds idle_timeout)
    : exec_(exec), max_streams_(max_streams), idle_timeout_(idle_timeout), sweep_timer_(exec) {}

std::shared_ptr<Connection> Pool::pick(Slot& slot) {
  for (auto it = slot.conns.begin(); it != slot.conns.end();) {
    if (!it->conn->is_open()) {
      it = slot.conns.erase(it);
      continue;
    }
    if (it->conn->can_open_stream(max_streams_)) {
      it->last_used = std::chrono::steady_clock::now();
      return it->conn;
    }
    ++it;
  }
  return nullptr;
}

asio::awaitable<ConnectResult<std::shared_ptr<Stream>>> Pool::connect(const PoolKey& key, TlsContext ctx,
                                                                      DialOptions opts, ConnectRequest req) {
  using R = ConnectResult<std::shared_ptr<Stream>>;
  auto self = shared_from_this();
  std::string last_error = "no connection";
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (draining_) co_return co_await connect_unpooled(ctx, std::move(opts), std::move(req));
    Slot& slot = slots_[key];
    std::shared_ptr<Connection> conn = pick(slot);
    if (!conn && slot.dialing) {
      // Someone is dialling this key: wait for that dial rather than storming the peer.
      auto done = slot.dial_done;
      co_await done->async_wait(asio::as_tuple(asio::use_awaitable));
      --attempt;  // waiting is not a failed attempt...
      if (attempt < -8) {  // ...within reason
        co_return R(common::make_error("pool: gave up waiting for dial"), ConnectStage::Connect);
      }
      continue;
    }
    if (!conn) {
      slot.dialing = true;
      slot.dial_done = std::make_shared<asio::steady_timer>(exec_, asio::steady_timer::time_point::max());
      auto done = slot.dial_done;
      dials_++;
      auto dialed = co_await dial(exec_, ctx, opts);
      Slot& s2 = slots_[key];  // the map may have changed while we waited
      s2.dialing = false;
      done->cancel();
      if (!dialed) co_return R(common::make_error(dialed.error()), dialed.stage());
      conn = dialed.value();
      track(conn);
      conn->on_idle = [w = weak_from_this(), key, wc = std::weak_ptr<Connection>(conn)] {
        auto pool = w.lock();
        auto c = wc.lock();
        if (pool && c) pool->release_surplus(key, c);
      };
      s2.conns.push_back(Entry{conn, std::chrono::steady_clock::now()});
      arm_sweep();
    }
    auto stream = co_await conn->open(req);
    if (stream) co_return stream;
    last_error = stream.error();
    // A closed or GOAWAY'd connection is retried on another; a refused CONNECT is final.
    if (conn->is_open() && !conn->draining()) co_return stream;
  }
  co_return R(common::make_error(last_error), ConnectStage::Connect);
}

asio::awaitable<ConnectResult<std::shared_ptr<Stream>>> Pool::connect_unpooled(TlsContext ctx, DialOptions opts,
                                                                               ConnectRequest req) {
  using R = ConnectResult<std::shared_ptr<Stream>>;
  auto self = shared_from_this();
  auto dialed = co_await dial(exec_, ctx, opts);
  if (!dialed) co_return R(common::make_error(dialed.error()), dialed.stage());
  auto conn = dialed.value();
  track(conn);
  dials_++;
  auto stream = co_await conn->open(req);
  // GOAWAY now: the connection ends with this stream.
  conn->drain();
  co_return stream;
}

void Pool::arm_sweep() {
  if (sweep_armed_) return;
  sweep_armed_ = true;
  auto interval = std::min<std::chrono::milliseconds>(idle_timeout_ / 2, std::chrono::seconds(30));
  if (interval.count() <= 0) interval = std::chrono::milliseconds(100);
  sweep_timer_.expires_after(interval);
  sweep_timer_.async_wait([w = weak_from_this()](boost::system::error_code ec) {
    auto self = w.lock();
    if (!self || ec) return;
    self->sweep_armed_ = false;
    self->sweep();
  });
}

void Pool::sweep() {
  auto now = std::chrono::steady_clock::now();
  bool any = false;
  for (auto it = slots_.begin(); it != slots_.end();) {
    auto& conns = it->second.conns;
    for (auto c = conns.begin(); c != conns.end();) {
      if (!c->conn->is_open()) {
        c = conns.erase(c);
      } else if (c->conn->active_streams() == 0 && now - c->last_used >= idle_timeout_) {
        c->conn->drain();
        c = conns.erase(c);
      } else {
        if (c->conn->active_streams() == 0) c->last_used = std::min(c->last_used, now);
        ++c;
      }
    }
    if (conns.empty() && !it->second.dialing) {
      it = slots_.erase(it);
    } else {
      any = true;
      ++it;
    }
  }
  if (any) arm_sweep();
}

void Pool::release_surplus(const PoolKey& key, const std::shared_ptr<Connection>& conn) {
  if (draining_) return;
  auto it = slots_.find(key);
  if (it == slots_.end()) return;
  auto& conns = it->second.conns;
  auto self = std::find_if(conns.begin(), conns.end(), [&](const Entry& e) { return e.conn == conn; });
  if (self == conns.end()) return;
  size_t idle_others = 0;
  for (const auto& e : conns) {
    if (e.conn != conn && e.conn->is_open() && !e.conn->draining() && e.conn->active_streams() == 0) ++idle_others;
  }
  if (idle_others < kIdleKeptPerKey) return;
  conns.erase(self);
  conn->drain();  // idle: the GOAWAY leaves and the connection closes, freeing its state
}

void Pool::drain() {
  draining_ = true;
  for (auto& [k, slot] : slots_) {
    for (auto& e : slot.conns) e.conn->drain();
  }
  slots_.clear();
  sweep_timer_.cancel();
}

void Pool::track(const std::shared_ptr<Connection>& conn) {
  std::erase_if(dialed_, [](const std::weak_ptr<Connection>& w) {
    auto c = w.lock();
    return !c || !c->is_open();
  });
  dialed_.push_back(conn);
}

void Pool::close_all(const std::string& why) {
  draining_ = true;
  sweep_timer_.cancel();
  slots_.clear();
  // close() runs callbacks (on_closed, stream failures); iterate a copy.
  auto conns = std::move(dialed_);
  dialed_.clear();
  for (auto& w : conns) {
    if (auto c = w.lock()) c->close(why);
  }
}

size_t Pool::close_if(const std::function<bool(Connection&)>& pred, const std::string& why) {
  // close() runs callbacks that edit slots_ and dialed_; collect first, then close.
  std::vector<std::shared_ptr<Connection>> doomed;
  for (auto& w : dialed_) {
    if (auto c = w.lock(); c && c->is_open() && pred(*c)) doomed.push_back(std::move(c));
  }
  for (auto& c : doomed) c->close(why);
  return doomed.size();
}

size_t Pool::connections() const {
  size_t n = 0;
  for (auto& [k, slot] : slots_) n += slot.conns.size();
  return n;
}

}  // namespace hbone
