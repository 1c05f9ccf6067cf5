// Reading fields of Kubernetes objects held as nlohmann::json, tolerant of whatever the API
// server or a user put there: a missing key or a value of another type reads as empty. Used by
// the gateway controller's pure functions and its writer. Header-only; no state.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace controlplane::kube {

// j[key] when j is an object and that value is a string, else "".
inline std::string json_str(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace controlplane::kube
