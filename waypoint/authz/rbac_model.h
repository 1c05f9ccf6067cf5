// L7 authorization model: Envoy's HTTP RBAC filter configuration (envoy.config.rbac.v3, delivered
// per virtual host or route as typed_per_filter_config) as plain C++ values, plus the request
// attributes it is evaluated against. The converter (waypoint/xds/rbac_convert.cc) fills these
// and NACKs anything else, so every node here is something rbac_eval.h implements.
//
// Representation on the wire (documented in docs/waypoint-routing.md): Istio needs up to three
// RBAC filter instances in one HTTP filter chain (DENY, ALLOW, AUDIT=LOG), each with its own
// per-route config. typed_per_filter_config is keyed by filter name, so the three instances are
// keys "envoy.filters.http.rbac.deny", ".allow" and ".audit", each an RBACPerRoute whose
// rules.action must agree with the key. An absent key = that filter instance is not configured
// (an absent ALLOW allows everything; an ALLOW with no policies denies everything, as Envoy).
//
// Threading: built once on the control thread, frozen in the immutable snapshot (held by
// shared_ptr from FilterConfigs), read concurrently by workers without locks.
// Invariants: Set nodes have >= 1 child; Not nodes exactly one; header names are lower case;
// policies are sorted by name (Envoy evaluates them in lexicographic order, the first match
// names the decision).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/model/model.h"
#include "waypoint/route_model.h"

namespace waypoint::authz {

// envoy.type.matcher.v3.ValueMatcher subset: string, bool, presence, list one_of.
struct ValueMatch {
  enum class Kind : uint8_t { String, Bool, Present, ListOneOf };
  Kind kind = Kind::String;
  StringMatcher string;            // Kind::String
  bool boolean = false;            // Kind::Bool / Kind::Present
  std::vector<ValueMatch> one_of;  // Kind::ListOneOf: exactly one element
};

// envoy.type.matcher.v3.MetadataMatcher over dynamic metadata `filter` (only "istio_authn",
// which the JWT filter fills) at `path` (keys).
struct MetadataMatch {
  std::string filter;
  std::vector<std::string> path;
  ValueMatch value;
  bool invert = false;
};

struct Permission {
  enum class Kind : uint8_t { And, Or, Any, Header, UrlPath, DestinationIp, DestinationPort, Metadata, Not };
  Kind kind = Kind::Any;
  std::vector<Permission> children;  // And / Or / Not (one)
  HeaderMatcher header;              // Header (":method", ":authority", ":path" or a header)
  StringMatcher path;                // UrlPath: the path without query or fragment
  ztunnel::Cidr cidr;                // DestinationIp
  uint16_t port = 0;                 // DestinationPort
  MetadataMatch metadata;            // Metadata
};

struct Principal {
  enum class Kind : uint8_t { And, Or, Any, Authenticated, DirectRemoteIp, RemoteIp, Header, UrlPath, Metadata, Not };
  Kind kind = Kind::Any;
  std::vector<Principal> children;
  std::optional<StringMatcher> principal_name;  // Authenticated: absent = any authenticated peer
  ztunnel::Cidr cidr;                           // DirectRemoteIp / RemoteIp
  HeaderMatcher header;
  StringMatcher path;
  MetadataMatch metadata;
};

// One named policy: matches when any permission AND any principal match.
struct Policy {
  std::string name;
  std::vector<Permission> permissions;
  std::vector<Principal> principals;
};

enum class Action : uint8_t { Allow, Deny, Log };

struct Rbac {
  Action action = Action::Allow;
  std::vector<Policy> policies;  // sorted by name
};

// The filter instances configured for one virtual host or route. A DENY or ALLOW instance may
// also carry shadow rules (Istio's dry-run policies, annotation istio.io/dry-run): evaluated,
// counted and logged, never enforced. An instance with shadow rules only has no `deny` /
// `allow` (it enforces nothing, as Envoy's RBAC filter without `rules`). `custom` (key
// "envoy.filters.http.rbac.custom", action Log) selects the requests the ext_authz filter
// checks (Istio's CUSTOM action); it never allows or denies by itself.
struct ShadowRbac {
  Rbac rules;              // action agrees with the instance (DENY / ALLOW)
  std::string stat_prefix;  // shadow_rules_stat_prefix: "istio_dry_run_deny_" / "istio_dry_run_allow_"
};

struct RbacFilters {
  std::optional<Rbac> custom;
  std::optional<Rbac> deny;
  std::optional<Rbac> allow;
  std::optional<Rbac> audit;
  std::optional<ShadowRbac> deny_shadow;
  std::optional<ShadowRbac> allow_shadow;
};

// What a shadow engine decided for one request (Envoy's dynamic metadata of the RBAC filter:
// <prefix>shadow_engine_result "allowed"/"denied", <prefix>shadow_effective_policy_id).
struct ShadowResult {
  std::string stat_prefix;
  bool allowed = true;
  std::string policy;  // the matching shadow policy; empty when none matched
};

// ---------------------------------------------------------------------------------------------
// What a request is judged on.

// JSON-like value for dynamic metadata (the JWT payload's claims). Objects keep key order.
struct MetaMember;
struct MetaValue {
  enum class Kind : uint8_t { Null, String, Bool, Number, List, Object };
  Kind kind = Kind::Null;
  std::string str;  // String; Number as its JSON text
  bool boolean = false;
  std::vector<MetaValue> list;
  std::vector<MetaMember> object;  // a vector of an incomplete type: allowed since C++17

  // The member `key` of an Object; null when absent or not an object.
  const MetaValue* get(std::string_view key) const;
};

struct MetaMember {
  std::string key;
  MetaValue value;
};

inline const MetaValue* MetaValue::get(std::string_view key) const {
  for (const auto& m : object)
    if (m.key == key) return &m.value;
  return nullptr;
}

}  // namespace waypoint::authz
