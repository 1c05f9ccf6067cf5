#include "waypoint/upstream/pool_gate.h"

namespace waypoint::upstream {

namespace {
// Capacity freed on another worker is noticed by polling at this period.
constexpr std::chrono::milliseconds kPendingPoll{10};
}  // namespace

boost::asio::awaitable<GateResult> acquire_gated(Connector& connector, const std::shared_ptr<ClusterState>& state,
                                                 const Cluster& cluster, const Target& target, hbone::TlsContext tls,
                                                 const std::string& self, std::function<bool()> cancelled) {
  GateResult out;
  const auto& limits = cluster.policy.circuit_breakers;
  auto finish = [&](std::unique_ptr<Conn> c) {
    ++c->uses;
    c->max_uses = cluster.policy.max_requests_per_connection;
    c->idle_timeout = cluster.policy.idle_timeout;
    out.conn = std::move(c);
  };
  BreakerHold pending;
  bool first = true;
  for (;;) {
    if (auto c = connector.take_idle(target.key)) {
      finish(std::move(c));
      co_return out;
    }
    bool admitted = state->breaker.try_acquire(CircuitBreaker::Kind::Connections, limits, first);
    if (!admitted && connector.close_idle_except(target.key)) {
      admitted = state->breaker.try_acquire(CircuitBreaker::Kind::Connections, limits, false);
    }
    if (admitted) {
      auto hold = std::make_shared<BreakerHold>(state, &state->breaker, CircuitBreaker::Kind::Connections, limits);
      pending.reset();  // no longer waiting once the connection is being opened
      auto c = co_await connector.connect(target, std::move(tls), self, cluster.connect_timeout);
      if (!c) {
        out.error = c.error();
        co_return out;
      }
      c.value()->cx_hold = std::move(hold);
      finish(std::move(c.value()));
      co_return out;
    }
    if (first) {
      if (!state->breaker.try_acquire(CircuitBreaker::Kind::Pending, limits)) {
        out.overflow = true;
        co_return out;
      }
      pending = BreakerHold(state, &state->breaker, CircuitBreaker::Kind::Pending, limits);
      first = false;
    }
    co_await connector.wait_release(kPendingPoll);
    if (cancelled && cancelled()) {
      out.cancelled = true;
      co_return out;
    }
  }
}

}  // namespace waypoint::upstream
