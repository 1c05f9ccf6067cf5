// Readiness: the set of startup tasks that must finish before the proxy reports ready on
// :15021/healthz/ready (upstream tasks: "state manager", "proxy", "dns proxy",
// "workload proxy manager"). Ready means "no task pending".
//
// Threading: all methods are thread-safe (one mutex; readiness is a control-plane path that
// runs a handful of times per process, plus one probe every few seconds).
// A name registered twice must be marked done twice (counted), so independent owners may share
// a name without racing each other.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace common {

class Readiness {
 public:
  // Adds a pending task.
  void register_task(std::string name);
  // Marks one registration of `name` done. Unknown names are ignored (idempotent shutdown).
  void mark_done(std::string_view name);
  bool ready() const;
  // Pending task names, sorted, each listed once.
  std::vector<std::string> pending() const;
  // The /healthz/ready body: "ready" or "not ready, pending: a, b".
  std::string status_text() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int, std::less<>> pending_;
};

}  // namespace common
