// L4 authorization: evaluates istio.security.Authorization policies for one inbound connection
// with upstream ztunnel's exact semantics (src/state.rs assert_rbac + src/rbac.rs):
//   policies = namespace-scoped policies of the destination workload's namespace
//            + global policies + the workload's selector-scoped authorization_policies
//            (unknown keys skipped);
//   dry-run policies are evaluated and reported, never enforced;
//   any matching DENY -> reject; no ALLOW policy -> allow; some ALLOW matches -> allow;
//   otherwise reject.
// Matching: no rules = never matches; rules OR; clauses AND (empty clause matches); matches OR
// (an empty Match is skipped); within a Match all populated fields must pass (positive list:
// any entry; not_ list: no entry). Principals compare against the identity without
// "spiffe://", literally (prefix/suffix/exact/presence, never regex). Without a peer identity
// (plaintext) principal/namespace/service-account positive lists cannot match.
//
// Threading: a pure function of (snapshot, connection); no locks, no shared mutable state.
// Runs once per connection (and again on policy updates), so it avoids allocation except for
// the human-readable decision strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/identity/identity.h"
#include "common/model/model.h"

namespace ztunnel {

class Snapshot;

struct ConnectionInfo {
  IpAddr src_ip;
  IpAddr dst_ip;  // the real upstream address (after service/port translation)
  uint16_t dst_port = 0;
  std::optional<common::Identity> src_identity;  // peer SPIFFE identity; none for plaintext
};

struct Decision {
  bool allow = true;
  // Why: "explicitly denied by ns/name", "allowed by ns/name", "no allow policies",
  // "allow policies exist, but none allowed".
  std::string reason;
  // One entry per dry-run policy that would have changed something, e.g.
  // "dry-run: deny policy ns/name matched". Only filled when a dry-run policy matches.
  std::vector<std::string> dry_run_notes;
};

// True if `policy` matches the connection (the per-policy half, exposed for tests/benches).
bool policy_matches(const Authorization& policy, const ConnectionInfo& conn);

// Full decision for a connection to `destination` (a workload of `snapshot`).
Decision evaluate(const Snapshot& snapshot, const ConnectionInfo& conn,
                  const Workload& destination);

}  // namespace ztunnel
