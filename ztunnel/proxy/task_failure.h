// TaskFailures: the completion handler for every coroutine the proxy spawns and does not await
// (accept loops, one per connection, one per inbound HBONE stream, each worker's byte-report
// loop). With `asio::detached` an exception escaping such a coroutine vanished; this handler
// logs it once and counts it in `ztunnel_task_failures_total{task}`, so a bug on the data
// path is visible instead of a connection silently dropped.
//
// The data path throws nothing by design; this is the net for what slips through (bad_alloc,
// a library that throws).
// Threading: the handler runs on the worker that ran the coroutine; the counters are atomics
// registered once at construction (the registry must outlive the handlers).
#pragma once

#include <cstdint>
#include <exception>

#include "common/admin/metrics.h"

namespace ztunnel {

enum class Task : uint8_t { Accept, Outbound, InboundPlaintext, InboundHbone, InboundStream, ByteReport };
const char* to_string(Task t);

class TaskFailures {
 public:
  explicit TaskFailures(common::metrics::Registry& registry);

  // Pass as co_spawn's completion token: co_spawn(io, coro(), failures.handler(Task::Outbound)).
  struct Handler {
    common::metrics::Counter* failures;
    Task task;
    void operator()(const std::exception_ptr& e) const;
  };
  Handler handler(Task t) const { return Handler{counters_[static_cast<size_t>(t)], t}; }

 private:
  common::metrics::Counter* counters_[6];
};

}  // namespace ztunnel
