// Runtime: the process's threads and event loops (ARCHITECTURE.md §3).
//
//  * One control io_context. It runs on the thread that calls run() (normally main) and
//    carries xDS, CA, admin/stats HTTP, ZDS, signals and drain timers.
//  * N worker io_contexts, each run by its own thread from construction until stop(), each
//    kept alive by a work guard. A connection lives on one worker for its whole life, so
//    per-connection state needs no locks; next_worker() spreads new connections round robin.
//
// Threading: control(), worker(i), workers() and next_worker() are safe from any thread.
// stop() is safe from any thread (including a worker or a handler on control) and is
// idempotent. run() may be called once. The destructor stops and joins if run() was not used.
//
// DrainController implements graceful shutdown: start() flips an atomic "draining" flag (read
// lock-free by accept loops), runs the registered drain callbacks on the control context, and
// when the deadline passes runs the force-close callback. complete() ends the wait early
// (e.g. once the last connection closed).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "common/result.h"

namespace common {

class Runtime {
 public:
  // Starts `workers` worker threads immediately (at least 1 is used).
  explicit Runtime(size_t workers);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  boost::asio::io_context& control() { return control_; }
  boost::asio::io_context& worker(size_t i) { return *workers_[i]->io; }
  size_t workers() const { return workers_.size(); }
  // Round-robin pick for a new connection or listener; lock-free.
  boost::asio::io_context& next_worker();

  // Runs the control context on the calling thread until stop(); then stops and joins the
  // worker threads. Returns after all threads have exited.
  void run();
  // Stops every context. Pending handlers are dropped (Asio semantics); callers that need a
  // graceful end use DrainController first.
  void stop();
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  // Returns free heap to the kernel on every thread (common::release_free_heap() posted to each
  // worker, then run here): mimalloc keeps freed pages in the heap of the thread that used
  // them until that thread collects, and a worker idle after a burst never would.
  void release_free_heap_everywhere();

  // Handles SIGTERM and SIGINT on the control context; `cb` receives the signal number and
  // is re-armed after each delivery (a second signal can escalate). Call before run().
  void on_signal(std::function<void(int)> cb);

 private:
  struct Worker {
    std::unique_ptr<boost::asio::io_context> io;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard;
    std::thread thread;
  };
  struct Signals;

  void join_workers();

  boost::asio::io_context control_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> control_guard_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stopped_{false};
  std::unique_ptr<Signals> signals_;
};

class DrainController {
 public:
  // All callbacks run on `control`.
  explicit DrainController(boost::asio::io_context& control);
  ~DrainController();
  DrainController(const DrainController&) = delete;
  DrainController& operator=(const DrainController&) = delete;

  // Register before start(); callbacks registered after start() run immediately (posted).
  void on_drain(std::function<void()> cb);
  // Runs once, when the deadline passes or complete() is called, whichever is first.
  void on_force_close(std::function<void()> cb);

  // Begins draining; safe from any thread; only the first call has an effect.
  void start(std::chrono::milliseconds deadline);
  // Ends the drain early: runs the force-close callback now. Safe from any thread.
  void complete();
  // Lock-free; accept loops check this to stop taking new connections.
  bool draining() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with handlers posted to the control context
};

// ZTUNNEL_WORKER_THREADS rule. `value` is the raw variable (nullopt or "" = unset):
//   "N"  -> N threads, "0" -> all cores, "N%" -> ceil(N% of cores) (1..100 %, at least 1);
//   unset -> max(ceil(25% of cores), 2).
// Errors name ZTUNNEL_WORKER_THREADS.
Result<size_t> worker_threads_from_env(std::optional<std::string_view> value, size_t cores);

// Cores usable by this process: sched_getaffinity count, falling back to
// hardware_concurrency(), never 0.
size_t available_cores();

}  // namespace common
