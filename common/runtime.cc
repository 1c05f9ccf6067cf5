#include "common/runtime.h"

#include <sched.h>

#include <csignal>
#include <mutex>
#include <string>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/resident_trim.h"

namespace common {

namespace asio = boost::asio;

namespace {

// A handler that lets an exception escape is a bug (errors are values here), but one bug must
// not take the whole node's traffic down: log it and keep the loop running.
void run_guarded(asio::io_context& io, const char* what) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("uncaught exception in {} event loop: {}", what, e.what());
    } catch (...) {
      spdlog::error("uncaught non-standard exception in {} event loop", what);
    }
  }
}

}  // namespace

struct Runtime::Signals {
  explicit Signals(asio::io_context& io) : set(io, SIGINT, SIGTERM) {}
  asio::signal_set set;
  std::function<void(int)> cb;

  void arm() {
    set.async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;  // cancelled: runtime is going away
      if (cb) cb(signo);
      arm();
    });
  }
};

Runtime::Runtime(size_t workers) : control_guard_(asio::make_work_guard(control_)) {
  if (workers == 0) workers = 1;
  workers_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>();
    // Concurrency hint 1: each context is driven by exactly one thread, which lets Asio skip
    // internal locking on the scheduler.
    w->io = std::make_unique<asio::io_context>(1);
    w->guard.emplace(asio::make_work_guard(*w->io));
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) {
    asio::io_context* io = w->io.get();
    w->thread = std::thread([io] { run_guarded(*io, "worker"); });
  }
}

Runtime::~Runtime() {
  stop();
  join_workers();
  // The signal_set must die before control_, which it references.
  signals_.reset();
}

void Runtime::release_free_heap_everywhere() {
  for (auto& w : workers_) asio::post(*w->io, [] { common::release_free_heap(); });
  common::release_free_heap();
}

asio::io_context& Runtime::next_worker() {
  size_t i = next_.fetch_add(1, std::memory_order_relaxed);
  return *workers_[i % workers_.size()]->io;
}

void Runtime::run() {
  if (!stopped()) run_guarded(control_, "control");
  stop();
  join_workers();
}

void Runtime::stop() {
  if (stopped_.exchange(true, std::memory_order_acq_rel)) return;
  // io_context::stop() is thread-safe; the work guards are only touched in join_workers()
  // (owner thread), so nothing else needs synchronisation here.
  control_.stop();
  for (auto& w : workers_) w->io->stop();
}

void Runtime::join_workers() {
  for (auto& w : workers_) {
    if (w->thread.joinable() && w->thread.get_id() != std::this_thread::get_id()) {
      w->thread.join();
    }
    w->guard.reset();
  }
}

void Runtime::on_signal(std::function<void(int)> cb) {
  if (!signals_) {
    signals_ = std::make_unique<Signals>(control_);
    signals_->cb = std::move(cb);
    signals_->arm();
  } else {
    // Replace the callback on the control thread so a delivery in flight sees one or the other.
    Signals* s = signals_.get();
    asio::post(control_, [s, cb = std::move(cb)]() mutable { s->cb = std::move(cb); });
  }
}

// ---------------------------------------------------------------------------------------------

struct DrainController::State {
  explicit State(asio::io_context& io) : io(io), timer(io) {}
  asio::io_context& io;
  asio::steady_timer timer;  // used on the control thread only
  std::atomic<bool> draining{false};

  std::mutex mu;  // guards the callback lists and `forced` (control-plane path only)
  std::vector<std::function<void()>> drain_cbs;
  std::function<void()> force_cb;
  bool forced = false;

  void force() {
    std::function<void()> cb;
    {
      std::lock_guard<std::mutex> l(mu);
      if (forced) return;
      forced = true;
      cb = std::move(force_cb);
    }
    timer.cancel();
    if (cb) cb();
  }
};

DrainController::DrainController(asio::io_context& control) : state_(std::make_shared<State>(control)) {}

// Destroying State (normally here) destroys the timer, which aborts a pending wait; the wait
// handler only holds a weak_ptr so it cannot keep State alive in a cycle.
DrainController::~DrainController() = default;

bool DrainController::draining() const {
  return state_->draining.load(std::memory_order_acquire);
}

void DrainController::on_drain(std::function<void()> cb) {
  std::lock_guard<std::mutex> l(state_->mu);
  if (state_->draining.load(std::memory_order_acquire)) {
    asio::post(state_->io, std::move(cb));
    return;
  }
  state_->drain_cbs.push_back(std::move(cb));
}

void DrainController::on_force_close(std::function<void()> cb) {
  std::lock_guard<std::mutex> l(state_->mu);
  state_->force_cb = std::move(cb);
}

void DrainController::start(std::chrono::milliseconds deadline) {
  std::vector<std::function<void()>> cbs;
  {
    std::lock_guard<std::mutex> l(state_->mu);
    if (state_->draining.exchange(true, std::memory_order_acq_rel)) return;
    cbs.swap(state_->drain_cbs);
  }
  auto s = state_;
  asio::post(s->io, [s, deadline, cbs = std::move(cbs)] {
    for (const auto& cb : cbs) cb();
    s->timer.expires_after(deadline);
    std::weak_ptr<State> weak = s;
    s->timer.async_wait([weak](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto st = weak.lock()) st->force();
    });
  });
}

void DrainController::complete() {
  auto s = state_;
  asio::post(s->io, [s] { s->force(); });
}

// ---------------------------------------------------------------------------------------------

Result<size_t> worker_threads_from_env(std::optional<std::string_view> value, size_t cores) {
  if (cores == 0) cores = 1;
  if (!value || value->empty()) {
    size_t quarter = (cores + 3) / 4;  // ceil(25%)
    return quarter < 2 ? size_t{2} : quarter;
  }
  std::string_view v = *value;
  auto bad = [&](std::string_view why) -> Result<size_t> {
    std::string m = "invalid env var ZTUNNEL_WORKER_THREADS=\"";
    m.append(v).append("\": ").append(why);
    return make_error(std::move(m));
  };
  bool percent = v.back() == '%';
  std::string_view digits = percent ? v.substr(0, v.size() - 1) : v;
  if (digits.empty() || digits.size() > 9) {
    return bad("expected a thread count, a percentage of cores like 50%, or 0 for all cores");
  }
  size_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return bad("expected a thread count, a percentage of cores like 50%, or 0 for all cores");
    }
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  if (percent) {
    if (n == 0 || n > 100) return bad("percentage must be between 1% and 100%");
    size_t t = (cores * n + 99) / 100;
    return t == 0 ? size_t{1} : t;
  }
  if (n == 0) return cores;
  return n;
}

size_t available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<size_t>(n);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : hc;
}

}  // namespace common
