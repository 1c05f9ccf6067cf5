#include "common/admin/readiness.h"

namespace common {

void Readiness::register_task(std::string name) {
  std::lock_guard<std::mutex> l(mu_);
  ++pending_[std::move(name)];
}

void Readiness::mark_done(std::string_view name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = pending_.find(name);
  if (it == pending_.end()) return;
  if (--it->second <= 0) pending_.erase(it);
}

bool Readiness::ready() const {
  std::lock_guard<std::mutex> l(mu_);
  return pending_.empty();
}

std::vector<std::string> Readiness::pending() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  out.reserve(pending_.size());
  for (const auto& [name, n] : pending_) out.push_back(name);  // std::map: already sorted
  return out;
}

std::string Readiness::status_text() const {
  auto p = pending();
  if (p.empty()) return "ready";
  std::string out = "not ready, pending: ";
  for (size_t i = 0; i < p.size(); ++i) {
    if (i) out += ", ";
    out += p[i];
  }
  return out;
}

}  // namespace common
