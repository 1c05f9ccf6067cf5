// Proxy's control-thread API (proxy.h); the worker's parts are in the files proxy_worker.h names.
#include "waypoint/proxy.h"

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "hbone/headers.h"
#include "waypoint/proxy_worker.h"

namespace waypoint {

namespace asio = boost::asio;

ConfigSnapshotPtr empty_snapshot() {
  auto s = std::make_shared<ConfigSnapshot>();
  s->workloads = ztunnel::Snapshot::empty();
  return s;
}

std::optional<asio::ip::address> ip_of(std::string_view addr) {
  if (auto a = hbone::parse_authority(addr); a && a->ip) return a->ip;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(std::string(addr), ec);
  if (ec) return std::nullopt;
  return ip;
}

Proxy::Worker::Worker(asio::io_context& io, std::shared_ptr<Shared> s)
    : io(io),
      shared(std::move(s)),
      connector(io.get_executor(), upstream::Connector::Options{shared->opts.upstream_hbone_port, shared->opts.mark, 32,
                                                                shared->opts.pool_max_streams, shared->opts.pool_idle,
                                                                shared->opts.max_body}),
      random(std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32)) {}

FlowEnv Proxy::Worker::env() {
  FlowEnv e;
  e.exec = io.get_executor();
  e.connector = &connector;
  e.lb = &lb;
  e.random = &random;
  e.active_faults = &active_faults;
  auto tls = shared->tls.load();
  e.client_tls = tls ? tls->client : nullptr;
  e.self_identity = shared->self.uri();
  e.max_body = shared->opts.max_body;
  e.clusters = shared->clusters.load();
  e.owner = shared_from_this();
  return e;
}

Proxy::Proxy(common::Runtime& rt, ProxyOptions opts, common::Identity self, Telemetry& telemetry)
    : rt_(rt), shared_(std::make_shared<Shared>(std::move(opts), std::move(self), telemetry)) {
  for (size_t i = 0; i < rt_.workers(); ++i) workers_.push_back(std::make_shared<Worker>(rt_.worker(i), shared_));
}

Proxy::~Proxy() = default;

void Proxy::set_config(ConfigSnapshotPtr config) {
  {
    std::lock_guard<std::mutex> l(shared_->publish_mu);
    auto prev = shared_->clusters.load();
    shared_->clusters.store(upstream::build_runtimes(*config, prev.get(), &shared_->telemetry.cluster_metrics()));
  }
  shared_->config.store(std::move(config));
  // The sweeper recomputes when the next outlier sweep is due.
  if (auto t = shared_->sweep_timer) asio::post(t->get_executor(), [t] { t->cancel(); });
}

nlohmann::json Proxy::cluster_status() const {
  return upstream::dump_runtimes(*shared_->clusters.load());
}
ConfigSnapshotPtr Proxy::config() const {
  return shared_->config.load();
}

common::Status Proxy::set_credentials(std::shared_ptr<const common::tls::Credentials> creds) {
  auto ctx = hbone::make_tls_contexts(std::move(creds));
  if (!ctx) return common::make_error(ctx.error());
  shared_->tls.store(std::make_shared<const hbone::TlsContexts>(std::move(ctx.value())));
  return common::ok_status();
}

bool Proxy::has_credentials() const {
  return shared_->tls.load() != nullptr;
}

void Proxy::drain() {
  shared_->draining.store(true);
  for (auto& w : workers_) asio::post(w->io, [w] { w->drain(); });
}

asio::awaitable<void> sweep_loop(std::shared_ptr<Proxy::Shared> shared, std::shared_ptr<asio::steady_timer> t) {
  while (!shared->draining.load()) {
    auto next = upstream::sweep_outliers(*shared->clusters.load(), upstream::steady_now_ms());
    t->expires_after(next.value_or(std::chrono::seconds(5)));
    auto [ec] = co_await t->async_wait(kTuple);
    (void)ec;  // cancelled = new config: recompute
  }
}

void Proxy::force_close() {
  if (auto t = shared_->sweep_timer) asio::post(t->get_executor(), [t] { t->cancel(); });
  for (auto& w : workers_) asio::post(w->io, [w] { w->force_close(); });
}

int64_t Proxy::active_requests() const {
  return shared_->active_requests.load();
}
int64_t Proxy::active_streams() const {
  return shared_->active_streams.load();
}

}  // namespace waypoint
