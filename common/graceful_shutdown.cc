#include "common/graceful_shutdown.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace common {

namespace asio = boost::asio;

struct GracefulShutdown::State {
  State(Runtime& rt, std::chrono::milliseconds d, ShutdownSteps s)
      : runtime(rt), deadline(d), steps(std::move(s)), drain(rt.control()), poll(rt.control()) {}
  Runtime& runtime;
  std::chrono::milliseconds deadline;
  ShutdownSteps steps;
  DrainController drain;
  asio::steady_timer poll;  // control thread only

  // Ends the wait as soon as nothing is live (polled: the counters are workers' atomics).
  void poll_drained(const std::shared_ptr<State>& self) {
    if (steps.live() == 0) {
      drain.complete();
      return;
    }
    poll.expires_after(std::chrono::milliseconds(100));
    poll.async_wait([weak = std::weak_ptr<State>(self)](boost::system::error_code ec) {
      if (auto s = weak.lock(); s && !ec) s->poll_drained(s);
    });
  }
};

GracefulShutdown::GracefulShutdown(Runtime& runtime, std::chrono::milliseconds deadline, ShutdownSteps steps)
    : state_(std::make_shared<State>(runtime, deadline, std::move(steps))) {
  std::weak_ptr<State> weak = state_;
  state_->drain.on_drain([weak] {
    auto s = weak.lock();
    if (!s) return;
    s->steps.drain();
    s->poll_drained(s);
  });
  state_->drain.on_force_close([weak] {
    auto s = weak.lock();
    if (!s) return;
    s->poll.cancel();
    s->steps.force_close();
    auto t = std::make_shared<asio::steady_timer>(s->runtime.control(), std::chrono::milliseconds(50));
    t->async_wait([&runtime = s->runtime, t](boost::system::error_code) { runtime.stop(); });
  });
}

GracefulShutdown::~GracefulShutdown() = default;

void GracefulShutdown::begin() {
  state_->drain.start(state_->deadline);
}

void GracefulShutdown::on_signal() {
  std::weak_ptr<State> weak = state_;
  state_->runtime.on_signal([weak](int sig) {
    spdlog::info("received signal {}, shutting down", sig);
    if (auto s = weak.lock()) s->drain.start(s->deadline);
  });
}

}  // namespace common
