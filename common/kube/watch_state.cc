#include "common/kube/watch_state.h"

#include <nlohmann/json.hpp>

namespace common::kube {
namespace {

using common::make_error;
using nlohmann::json;

std::string string_at(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Fills kind/apiVersion, drops managedFields; returns the key or an error naming the field.
common::Result<std::string> normalize(json& obj, const ResourceKind& kind, std::string& rv) {
  if (!obj.is_object()) return make_error("not an object");
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return make_error("metadata: missing");
  const std::string name = string_at(*meta, "name");
  if (name.empty()) return make_error("metadata.name: missing");
  const std::string ns = string_at(*meta, "namespace");
  if (kind.namespaced && ns.empty()) return make_error("metadata.namespace: missing on " + kind.kind + " " + name);
  rv = string_at(*meta, "resourceVersion");
  meta->erase("managedFields");
  obj["kind"] = kind.kind;
  obj["apiVersion"] = kind.api_version();
  return kind.namespaced ? ns + "/" + name : name;
}

}  // namespace

std::string ResourceKind::collection_path() const {
  return (group.empty() ? "/api/" + version : "/apis/" + group + "/" + version) + "/" + plural;
}

std::string ResourceKind::namespace_path(const std::string& ns) const {
  if (!namespaced) return collection_path();
  return (group.empty() ? "/api/" + version : "/apis/" + group + "/" + version) + "/namespaces/" + ns + "/" + plural;
}

common::Status WatchState::apply_list(std::string_view body) {
  json list = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (list.is_discarded() || !list.is_object()) return make_error(kind_.kind + " list: not a JSON object");
  auto meta = list.find("metadata");
  const std::string rv = meta != list.end() && meta->is_object() ? string_at(*meta, "resourceVersion") : "";
  if (rv.empty()) return make_error(kind_.kind + " list: metadata.resourceVersion: missing");
  auto items = list.find("items");
  std::map<std::string, StoredObject> next;
  if (items != list.end() && !items->is_null()) {
    if (!items->is_array()) return make_error(kind_.kind + " list: items: not an array");
    for (size_t i = 0; i < items->size(); ++i) {
      json& obj = (*items)[i];
      StoredObject so;
      auto key = normalize(obj, kind_, so.resource_version);
      if (!key) return make_error(kind_.kind + " list: items[" + std::to_string(i) + "]." + key.error());
      so.json = obj.dump();
      next[*key] = std::move(so);
    }
  }
  if (next != objects_ || !listed_) ++changes_;
  objects_ = std::move(next);
  resource_version_ = rv;
  listed_ = true;
  return common::ok_status();
}

WatchState::EventResult WatchState::apply_event(std::string_view line) {
  json ev = json::parse(line, nullptr, false);
  if (ev.is_discarded() || !ev.is_object()) return {Outcome::Error, "watch event: not a JSON object"};
  const std::string type = string_at(ev, "type");
  auto obj = ev.find("object");
  if (obj == ev.end() || !obj->is_object()) return {Outcome::Error, "watch event " + type + ": object: missing"};
  if (type == "ERROR") {
    const int code = obj->value("code", 0);
    std::string msg = string_at(*obj, "message");
    return {code == 410 ? Outcome::Gone : Outcome::Error,
            "ERROR " + std::to_string(code) + " " + string_at(*obj, "reason") + ": " + msg};
  }
  if (type == "BOOKMARK") {
    auto meta = obj->find("metadata");
    const std::string rv = meta != obj->end() && meta->is_object() ? string_at(*meta, "resourceVersion") : "";
    if (rv.empty()) return {Outcome::Error, "BOOKMARK: object.metadata.resourceVersion: missing"};
    resource_version_ = rv;
    return {Outcome::Unchanged, {}};
  }
  if (type != "ADDED" && type != "MODIFIED" && type != "DELETED") {
    return {Outcome::Error, "watch event: type: unknown '" + type + "'"};
  }
  StoredObject so;
  auto key = normalize(*obj, kind_, so.resource_version);
  if (!key) return {Outcome::Error, "watch event " + type + ": object." + key.error()};
  if (!so.resource_version.empty()) resource_version_ = so.resource_version;
  if (type == "DELETED") {
    if (objects_.erase(*key) == 0) return {Outcome::Unchanged, {}};
  } else {
    so.json = obj->dump();
    auto it = objects_.find(*key);
    if (it != objects_.end() && it->second == so) return {Outcome::Unchanged, {}};
    objects_[*key] = std::move(so);
  }
  ++changes_;
  return {Outcome::Changed, {}};
}

std::string WatchState::watch_target(int timeout_seconds) const {
  return path() + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + resource_version_ +
         "&timeoutSeconds=" + std::to_string(timeout_seconds) + (query_.empty() ? "" : "&" + query_);
}

}  // namespace common::kube
