// Pool: reuse of HBONE client connections, one pool per worker thread (so no locks) and, in
// node mode, per workload proxy.
//
// Keyed as upstream: (source identity, accepted destination identities, source IP, destination
// address). A connection carries up to min(max_streams, peer's MAX_CONCURRENT_STREAMS)
// streams; when full a new one is dialled. Concurrent callers for the same key wait for a
// single dial instead of each opening a connection (connection-storm back-pressure).
// Connections idle longer than `idle_timeout` get GOAWAY and are dropped. After a burst, at
// most kIdleKeptPerKey idle connections per key stay pooled: a connection that goes idle while
// another one of its key is idle too gets GOAWAY at once, so the memory a burst needed (TLS
// and HTTP/2 state, buffers: ~0.5 MB per connection) goes back when the burst ends, not after
// idle_timeout. Everything runs on the pool's executor (one worker thread): no locks.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "hbone/client.h"
#include "hbone/connection.h"
#include "hbone/stream.h"
#include "hbone/tls_glue.h"

namespace hbone {

struct PoolKey {
  std::string src_identity;
  std::vector<std::string> dst_identities;
  std::string src_ip;
  std::string dst;  // ip:port
  auto operator<=>(const PoolKey&) const = default;
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  Pool(boost::asio::any_io_executor exec, uint32_t max_streams, std::chrono::milliseconds idle_timeout);

  // Opens a CONNECT stream to opts.target through a pooled (or new) connection using `ctx`.
  // On failure, stage() says whether the dial (TCP, TLS, HTTP/2) or the CONNECT failed.
  boost::asio::awaitable<ConnectResult<std::shared_ptr<Stream>>> connect(const PoolKey& key, TlsContext ctx,
                                                                        DialOptions opts, ConnectRequest req);

  // GOAWAY every connection (drain) and stop pooling: connect() then dials a connection per
  // stream, closed when that stream ends, so connections that arrive while a proxy drains
  // are still carried.
  void drain();
  // Shutdown (termination deadline / drain complete): close every connection this pool dialled,
  // pooled, drained or unpooled, failing their streams. A client connection and its open
  // streams reference each other (see Connection); only close() breaks that, and once the
  // worker loops stop nothing else would, so the process must not exit without this.
  void close_all(const std::string& why);
  // Closes (abruptly, failing their streams) every open connection this pool dialled for which
  // `pred` is true, e.g. those whose server a CRL update now revokes; returns how many.
  size_t close_if(const std::function<bool(Connection&)>& pred, const std::string& why);
  size_t connections() const;
  uint64_t dials() const { return dials_; }

  static constexpr size_t kIdleKeptPerKey = 1;

 private:
  struct Entry {
    std::shared_ptr<Connection> conn;
    std::chrono::steady_clock::time_point last_used;
  };
  struct Slot {
    std::vector<Entry> conns;
    bool dialing = false;
    std::shared_ptr<boost::asio::steady_timer> dial_done;
  };
  std::shared_ptr<Connection> pick(Slot& slot);
  boost::asio::awaitable<ConnectResult<std::shared_ptr<Stream>>> connect_unpooled(TlsContext ctx, DialOptions opts,
                                                                                 ConnectRequest req);
  void sweep();
  void arm_sweep();
  void track(const std::shared_ptr<Connection>& conn);
  // `conn` (of `key`) has no stream left: GOAWAY it if kIdleKeptPerKey others are idle.
  void release_surplus(const PoolKey& key, const std::shared_ptr<Connection>& conn);

  boost::asio::any_io_executor exec_;
  uint32_t max_streams_;
  std::chrono::milliseconds idle_timeout_;
  std::map<PoolKey, Slot> slots_;
  // Every connection dialled and not yet finished, pooled or not (weak: an open connection is
  // kept alive by its read loop and streams; close_all() reaches the ones drain() let go of).
  std::vector<std::weak_ptr<Connection>> dialed_;
  boost::asio::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
  bool draining_ = false;
  uint64_t dials_ = 0;
};

}  // namespace hbone
