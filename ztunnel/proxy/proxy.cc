#include "ztunnel/proxy/proxy.h"

#include <condition_variable>
#include <mutex>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/identity/crl.h"
#include "common/identity/tls.h"
#include "hbone/headers.h"
#include "hbone/server.h"
#include "hbone/socket_options.h"
#include "ztunnel/dns/proxy.h"
#include "ztunnel/inpod/netns.h"
#include "ztunnel/proxy/proxy_internal.h"

namespace ztunnel {
namespace asio = boost::asio;
using asio::ip::tcp;

IpAddr endpoint_ip(const tcp::endpoint& ep) { return canonical_ip(ep.address()); }

std::optional<Captured> captured(tcp::socket& sock, const char* listener, const ProxySeams& seams) {
  Captured c;
  boost::system::error_code ec;
  c.local = sock.local_endpoint(ec);
  const auto remote = sock.remote_endpoint(ec);
  c.client_ip = endpoint_ip(remote);
  c.src_addr = format_socket_addr(c.client_ip, remote.port());
  if (seams.original_dst) {
    auto od = seams.original_dst(sock.native_handle());
    if (!od) {
      spdlog::warn("{} connection from {}: no original destination (test seam)", listener, c.src_addr);
      return std::nullopt;
    }
    c.dst_ip = canonical_ip(od->ip);
    c.dst_port = od->port;
  } else {
    const bool v6 = c.local.address().is_v6() && !c.local.address().to_v6().is_v4_mapped();
    auto od = hbone::sockopt::original_dst(sock.native_handle(), v6);
    if (!od) {
      spdlog::warn("{} connection from {}: no original destination ({})", listener, c.src_addr, od.error());
      return std::nullopt;
    }
    auto ip = parse_ip(od->ip);
    if (!ip) return std::nullopt;
    c.dst_ip = canonical_ip(*ip);
    c.dst_port = od->port;
  }
  c.dst_addr = format_socket_addr(c.dst_ip, c.dst_port);
  return c;
}

std::string baggage_of(const Workload& w) {
  hbone::Baggage b;
  b.cluster_id = w.cluster_id;
  b.ns = w.ns;
  b.workload_type = w.workload_type.empty() ? "pod" : w.workload_type;
  b.workload_name = w.workload_name.empty() ? w.name : w.workload_name;
  b.service_name = w.canonical_name;
  b.service_version = w.canonical_revision;
  b.region = w.locality.region;
  b.zone = w.locality.zone;
  return hbone::format_baggage(b);
}

std::optional<ProxyError> relay_outcome(const hbone::CopyResult& r, std::optional<ProxyError> late_rejection) {
  if (late_rejection) return late_rejection;
  if (!r.error.empty()) return ProxyError{ProxyErrorKind::Relay, r.error};
  return std::nullopt;
}

Proxy::Shared::Shared(const Config& c, common::metrics::Registry& r, ProxyTarget t)
    : cfg(c),
      target(std::move(t)),
      socket_factory(ztunnel::socket_factory(target.netns, c.socket_config())),
      metrics(r),
      task_failures(r),
      port_guard(c, &r),
      registry(r) {}

const Workload* Proxy::Shared::local_workload(const Snapshot& snap) const {
  const auto& wi = target.workload;
  return snap.find_workload_by_info(wi.ns, wi.name, wi.service_account);
}

Proxy::Worker::Worker(asio::io_context& io_, std::shared_ptr<Proxy::Shared> s)
    : io(io_),
      shared(std::move(s)),
      pool(std::make_shared<hbone::Pool>(io.get_executor(), shared->cfg.pool_max_streams_per_connection,
                                         shared->cfg.pool_unused_release_timeout)),
      report_timer(io) {}

const Workload* Proxy::Worker::local_workload(const SnapshotConstSharedPtr& snap) {
  // Neither owner_before the other = same control block: the same snapshot object, even if an
  // earlier one was freed and a new one allocated at its address (our weak_ptr keeps the old
  // control block alive). No atomic operation, unlike weak_ptr::lock() or expired().
  if (local_snapshot.owner_before(snap) || snap.owner_before(local_snapshot)) {
    local = shared->local_workload(*snap);
    local_snapshot = snap;
  }
  return local;
}

void Proxy::Worker::wake_certificate_waiters() {
  for (auto* t : certificate_waiters) t->cancel();
}

void Proxy::Worker::track(const std::shared_ptr<tcp::socket>& s) {
  // Prune finished entries only when the list has doubled since the last prune: amortised
  // O(1) per connection, and the list stays within 2x the live set.
  if (sockets.size() >= prune_sockets_at) {
    for (auto it = sockets.begin(); it != sockets.end();) it = it->expired() ? sockets.erase(it) : std::next(it);
    prune_sockets_at = std::max<size_t>(64, 2 * sockets.size());
  }
  sockets.push_back(s);
}

asio::awaitable<std::shared_ptr<const hbone::TlsContexts>> Proxy::Worker::await_tls(std::string& why) {
  // Before the first certificate (a pod's listeners open at its Add; the CA answers shortly
  // after) a connection waits for the pending fetch, as upstream's does, instead of failing;
  // a failed fetch ends the wait at once. The timer runs to the deadline unless
  // wake_certificate_waiters() cancels it: the control thread stores the new state, then posts
  // the wake to this worker, so a waiter either sees the state or is woken after it.
  const auto deadline = std::chrono::steady_clock::now() + kCertificateWait;
  asio::steady_timer timer(io, deadline);
  for (;;) {
    if (auto tls = shared->tls.load()) co_return tls;
    if (auto err = shared->tls_error.load()) {
      why = "certificate fetch failed: " + *err;
      co_return nullptr;
    }
    if (shared->draining.load(std::memory_order_relaxed)) {
      why = "draining";
      co_return nullptr;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      why = "no certificate after " + std::to_string(kCertificateWait.count()) + " s";
      co_return nullptr;
    }
    struct Waiting {  // unregisters even if the frame is destroyed mid-wait
      std::list<asio::steady_timer*>& list;
      std::list<asio::steady_timer*>::iterator it;
      ~Waiting() { list.erase(it); }
    } waiting{certificate_waiters, certificate_waiters.insert(certificate_waiters.end(), &timer)};
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> Proxy::Worker::serve_hbone(tcp::socket sock) {
  // Keeps the worker alive while waiting for a certificate; released before the connection is
  // served, which (as every accepted connection) refers back to the worker only weakly.
  auto keep = shared_from_this();
  auto tls = shared->tls.load();
  std::string why;
  if (!tls) tls = co_await await_tls(why);
  if (!tls) {
    spdlog::warn("inbound HBONE connection closed: {}", why);
    co_return;
  }
  hbone::ServeHooks hooks;
  hooks.on_connection = [w = weak_from_this()](const std::shared_ptr<hbone::Connection>& c) {
    if (auto self = w.lock()) {
      if (self->inbound.size() >= self->prune_inbound_at) {
        for (auto it = self->inbound.begin(); it != self->inbound.end();) {
          it = it->expired() ? self->inbound.erase(it) : std::next(it);
        }
        self->prune_inbound_at = std::max<size_t>(64, 2 * self->inbound.size());
      }
      self->inbound.push_back(c);
      // Accepted while draining: GOAWAY at once, so the peer takes new streams elsewhere
      // (to the replacement ztunnel) instead of to a proxy about to close.
      if (self->shared->draining.load(std::memory_order_relaxed)) c->drain();
    }
  };
  hooks.on_handshake_error = [](const std::string& why, const tcp::endpoint& remote) {
    spdlog::warn("inbound HBONE handshake from {} failed: {}", remote.address().to_string(), why);
  };
  auto handler = [w = weak_from_this()](std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> peer) {
    if (auto self = w.lock()) self->handle_hbone_stream(std::move(s), std::move(peer));
  };
  auto serve = hbone::serve_connection(std::move(sock), tls->server, shared->server_settings, std::move(handler),
                                       std::move(hooks));
  keep.reset();
  co_await std::move(serve);
}

void Proxy::Worker::drain() {
  wake_certificate_waiters();  // they fail now ("draining")
  boost::system::error_code ignored;
  for (auto& a : acceptors) a->close(ignored);
  for (auto& w : inbound) {
    if (auto c = w.lock()) c->drain();
  }
  pool->drain();
}

void Proxy::Worker::force_close(std::function<void()> done) {
  for (auto& w : inbound) {
    if (auto c = w.lock()) c->close("termination deadline");
  }
  for (auto& w : sockets) {
    if (auto s = w.lock()) {
      boost::system::error_code ignored;
      s->close(ignored);
    }
  }
  // Pooled HBONE connections and their streams hold each other until closed; the relays just
  // ended above would close them soon, but the workers may stop first.
  pool->close_all("termination deadline");
  stop_reporting(std::move(done));
}

void Proxy::Worker::close_revoked_peers() {
  // Inbound: the client's chain. Tunnels riding a doomed connection are attributed first, so
  // their access log and metrics say CERT_REVOKED rather than a relay error.
  for (auto& w : inbound) {
    auto c = w.lock();
    if (!c || !c->is_open() || !common::tls::peer_chain_revoked(c->tls().native_handle())) continue;
    for (auto& a : authorized) {
      auto s = a.stream.lock();
      if (s && &s->connection() == c.get() && a.late_rejection) {
        *a.late_rejection = ProxyError{ProxyErrorKind::CertRevoked, "peer certificate revoked (CRL_PATH)"};
      }
    }
    const auto who = common::tls::peer_identity(c->tls().native_handle());
    spdlog::warn("closing inbound HBONE connection from {}: its certificate is now revoked (CRL_PATH)",
                 who ? who->uri() : std::string("an unknown peer"));
    common::tls::detail::report_crl_rejection(true);
    c->close("peer certificate revoked (CRL_PATH)");
  }
  // Outbound: the servers this worker's pool is connected to (their relays attributed first).
  mark_revoked_tunnels();
  const size_t closed =
      pool->close_if([](hbone::Connection& c) { return common::tls::peer_chain_revoked(c.tls().native_handle()); },
                     "peer certificate revoked (CRL_PATH)");
  for (size_t i = 0; i < closed; ++i) common::tls::detail::report_crl_rejection(false);
  if (closed > 0)
    spdlog::warn("closed {} outbound HBONE connection(s): server certificate now revoked (CRL_PATH)", closed);
}

Proxy::Proxy(common::Runtime& runtime, const Config& config, common::metrics::Registry& registry,
             ProxyTarget target)
    : runtime_(runtime), shared_(std::make_shared<Shared>(config, registry, std::move(target))) {
  auto& s = shared_->server_settings;
  s.stream_window = config.http2_stream_window_size;
  s.connection_window = config.http2_connection_window_size;
  s.max_frame_size = config.http2_frame_size;
  auto& c = shared_->client_settings;
  c = hbone::Settings::client_defaults();
  c.stream_window = config.http2_stream_window_size;
  c.connection_window = config.http2_connection_window_size;
  c.max_frame_size = config.http2_frame_size;
  shared_->snapshot.store(Snapshot::empty());
  for (size_t i = 0; i < runtime.workers(); ++i) {
    workers_.push_back(std::make_shared<Worker>(runtime.worker(i), shared_));
  }
}

Proxy::~Proxy() = default;

void Proxy::set_seams(ProxySeams seams) { shared_->seams = std::move(seams); }
void Proxy::set_on_demand(std::shared_ptr<OnDemand> on_demand) {
  shared_->on_demand = std::move(on_demand);
}

void Proxy::set_snapshot(SnapshotConstSharedPtr snapshot) {
  shared_->snapshot.store(snapshot);
  // Live connections were authorized against the old policies: re-check them.
  for (auto& w : workers_) asio::post(w->io, [w, snapshot] { w->recheck_policies(snapshot); });
}

SnapshotConstSharedPtr Proxy::snapshot() const { return shared_->snapshot.load(); }

common::Status Proxy::set_credentials(std::shared_ptr<const common::tls::Credentials> creds) {
  auto ctxs = hbone::make_tls_contexts(std::move(creds));
  if (!ctxs) return common::make_error(ctxs.error());
  shared_->tls.store(std::make_shared<const hbone::TlsContexts>(std::move(ctxs.value())));
  shared_->tls_error.store(nullptr);
  wake_certificate_waiters();
  return common::ok_status();
}

void Proxy::set_credentials_error(const std::string& why) {
  if (shared_->tls.load()) return;  // a certificate is there: keep serving with it
  shared_->tls_error.store(std::make_shared<const std::string>(why));
  wake_certificate_waiters();
}

void Proxy::wake_certificate_waiters() {
  for (auto& w : workers_) asio::post(w->io, [w] { w->wake_certificate_waiters(); });
}

bool Proxy::has_credentials() const { return shared_->tls.load() != nullptr; }

void Proxy::drain() {
  shared_->draining.store(true);
  if (dns_) dns_->stop();
  for (auto& w : workers_) asio::post(w->io, [w] { w->drain(); });
}

void Proxy::close_revoked_peers() {
  for (auto& w : workers_) asio::post(w->io, [w] { w->close_revoked_peers(); });
}

void Proxy::force_close(std::chrono::milliseconds budget) {
  // Shared with the posted tasks, so one that ends after we gave up writes into live memory.
  struct Closing {
    std::mutex mu;
    std::condition_variable cv;
    size_t pending = 0;
  };
  auto g = std::make_shared<Closing>();
  g->pending = workers_.size();
  for (auto& w : workers_) {
    asio::post(w->io, [w, g] {
      w->force_close([g] {
        std::lock_guard<std::mutex> lock(g->mu);
        if (--g->pending == 0) g->cv.notify_all();
      });
    });
  }
  std::unique_lock<std::mutex> lock(g->mu);
  if (!g->cv.wait_for(lock, budget, [&] { return g->pending == 0; })) {
    spdlog::warn("force close: {} worker(s) did not finish within {} ms", g->pending, budget.count());
  }
}

int Proxy::report_loops_running() const { return shared_->report_loops.load(); }

int64_t Proxy::active_connections() const { return shared_->active.load(); }

Proxy::Worker::MeterHandle Proxy::Worker::meter(Metered m) {
  auto it = metered.insert(metered.end(), m);
  if (!reporting && !reporting_stopped) {
    reporting = true;
    ++report_loops_alive;
    shared->report_loops.fetch_add(1);
    // Completion (the coroutine's frame is gone): count a failure, then tell a waiting
    // force_close(). A loop that ends on its own (no relay left) has no one waiting.
    asio::co_spawn(io, report_bytes_loop(),
                   [self = shared_from_this(),
                    failed = shared->task_failures.handler(Task::ByteReport)](const std::exception_ptr& e) {
                     failed(e);
                     self->shared->report_loops.fetch_sub(1);
                     if (--self->report_loops_alive == 0) {
                       if (auto done = std::exchange(self->reporting_done, nullptr)) done();
                     }
                   });
  }
  return MeterHandle{metered, it};
}

void Proxy::Worker::report_bytes() {
  for (auto& m : metered) {
    if (m.stream != nullptr) m.copy->to_socket += m.stream->take_direct_bytes();
    if (m.to_dst_is_to_stream) {
      m.result->progress(m.copy->to_stream, m.copy->to_socket);
    } else {
      m.result->progress(m.copy->to_socket, m.copy->to_stream);
    }
  }
}

asio::awaitable<void> Proxy::Worker::report_bytes_loop() {
  auto self = shared_from_this();
  // Cleared however the loop ends (an exception included), so the next meter() restarts it.
  struct Running {
    bool& flag;
    ~Running() { flag = false; }
  } running{reporting};
  while (!metered.empty() && !reporting_stopped) {
    report_timer.expires_after(kByteReportInterval);
    auto [ec] = co_await report_timer.async_wait(asio::as_tuple(asio::use_awaitable));
    report_bytes();  // after a cancel too: the last flush before shutdown
    if (ec) break;
  }
}

void Proxy::Worker::stop_reporting(std::function<void()> done) {
  reporting_stopped = true;
  if (report_loops_alive == 0) {
    if (done) done();
    return;
  }
  // Several callers (a second force_close) all wait for the same end.
  if (reporting_done) {
    reporting_done = [first = std::move(reporting_done), then = std::move(done)] {
      first();
      if (then) then();
    };
  } else {
    reporting_done = std::move(done);
  }
  report_timer.cancel();
}

std::vector<ConnectionView> Proxy::connections(std::chrono::milliseconds budget) const {
  // Shared with the posted tasks, so one that runs after we gave up writes into live memory.
  struct Gather {
    std::mutex mu;
    std::condition_variable cv;
    size_t pending = 0;
    std::vector<ConnectionView> out;
  };
  auto g = std::make_shared<Gather>();
  g->pending = workers_.size();
  for (auto& w : workers_) {
    asio::post(w->io, [w, g] {
      std::vector<ConnectionView> mine(w->live.begin(), w->live.end());
      std::lock_guard<std::mutex> lock(g->mu);
      g->out.insert(g->out.end(), std::make_move_iterator(mine.begin()), std::make_move_iterator(mine.end()));
      if (--g->pending == 0) g->cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(g->mu);
  g->cv.wait_for(lock, budget, [&] { return g->pending == 0; });
  return g->out;
}

const ProxyTarget& Proxy::target() const { return shared_->target; }

}  // namespace ztunnel
