// WatchState: the list+watch state machine for one resource type, as the Kubernetes API
// documents it (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
// a List gives every object and the collection's resourceVersion; a watch from that version
// streams ADDED / MODIFIED / DELETED events (each object carrying its new resourceVersion),
// BOOKMARK events that only advance the version, and ERROR events whose Status code 410
// (Gone: the version was compacted away) means "list again". Objects from a re-list replace
// the old set, so deletions missed while the watch was down are not lost.
//
// Pure logic over JSON text: no I/O, so the transitions are unit-tested (tests/unit/common/kube/kube_watch_test.cc).
// Objects are kept as compact JSON with `kind` and `apiVersion` filled in (a List's items omit
// them) and `metadata.managedFields` dropped, ready for the manifest parser.
//
// Threading: not thread-safe; one owner (the kind's informer thread), readers copy under the
// informer's lock (informer.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace common::kube {

struct ResourceKind {
  std::string group;    // "" = core
  std::string version;  // "v1"
  std::string plural;   // "pods"
  std::string kind;     // "Pod"
  bool namespaced = true;

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  // The all-namespaces collection: /api/v1/pods, /apis/<group>/<version>/<plural>.
  std::string collection_path() const;
  // The collection in one namespace (cluster-scoped kinds: the collection).
  std::string namespace_path(const std::string& ns) const;
};

struct StoredObject {
  bool operator==(const StoredObject&) const = default;
  std::string resource_version;
  std::string json;
};

class WatchState {
 public:
  // `query`: URL-encoded parameters narrowing the collection for both list and watch
  // (e.g. "fieldSelector=spec.nodeName%3Dnode-1"); "" = every object. `ns`: only that
  // namespace's collection (a namespaced Role suffices); "" = all namespaces.
  explicit WatchState(ResourceKind kind, std::string query = {}, std::string ns = {})
      : kind_(std::move(kind)), query_(std::move(query)), ns_(std::move(ns)) {}

  const ResourceKind& kind() const { return kind_; }
  const std::string& query() const { return query_; }
  // The collection listed and watched: all namespaces, or the one given.
  std::string path() const { return ns_.empty() ? kind_.collection_path() : kind_.namespace_path(ns_); }

  // Replaces every object with the items of a List response; the collection's
  // metadata.resourceVersion becomes the watch start. Errors name the field; the state is
  // unchanged then.
  common::Status apply_list(std::string_view body);

  enum class Outcome {
    Changed,    // an object was added, modified or deleted
    Unchanged,  // a BOOKMARK (version advanced) or an event that changed nothing
    Gone,       // ERROR 410: the version is too old; list again
    Error,      // any other ERROR event or a malformed line; watch again (after backoff)
  };
  struct EventResult {
    Outcome outcome = Outcome::Error;
    std::string message;  // for Error/Gone: what the server or the parser said
  };
  EventResult apply_event(std::string_view line);

  // The version to watch from ("" before the first list).
  const std::string& resource_version() const { return resource_version_; }
  bool listed() const { return listed_; }
  // Forget the version so the next cycle lists (after a 410).
  void require_list() { listed_ = false; }

  // "ns/name" (cluster-scoped: "name") -> object.
  const std::map<std::string, StoredObject>& objects() const { return objects_; }
  // Increments whenever objects() changes.
  uint64_t changes() const { return changes_; }

  // The watch request for the current version.
  std::string watch_target(int timeout_seconds) const;

 private:
  ResourceKind kind_;
  std::string query_;
  std::string ns_;
  std::map<std::string, StoredObject> objects_;
  std::string resource_version_;
  bool listed_ = false;
  uint64_t changes_ = 0;
};

}  // namespace common::kube
