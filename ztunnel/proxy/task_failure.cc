#include "ztunnel/proxy/task_failure.h"

#include <spdlog/spdlog.h>

#include <string>
#include <vector>

namespace ztunnel {

const char* to_string(Task t) {
  switch (t) {
    case Task::Accept:
      return "accept";
    case Task::Outbound:
      return "outbound";
    case Task::InboundPlaintext:
      return "inbound_plaintext";
    case Task::InboundHbone:
      return "inbound_hbone";
    case Task::InboundStream:
      return "inbound_stream";
    case Task::ByteReport:
      return "byte_report";
  }
  return "unknown";
}

TaskFailures::TaskFailures(common::metrics::Registry& registry) {
  auto& family = registry.counter("ztunnel_task_failures_total",
                                  "Proxy coroutines that ended with an exception (a bug; logged once each)", {"task"});
  for (size_t i = 0; i < std::size(counters_); ++i) {
    std::vector<std::string> labels{to_string(static_cast<Task>(i))};
    counters_[i] = family.get(labels);
  }
}

void TaskFailures::Handler::operator()(const std::exception_ptr& e) const {
  if (!e) return;
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {  // NOLINT(bugprone-empty-catch): `what` already says it
  }
  spdlog::error("{} task ended with an exception: {}", to_string(task), what);
  failures->inc();
}

}  // namespace ztunnel
