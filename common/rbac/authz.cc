#include "common/rbac/authz.h"

#include <algorithm>
#include <string_view>

#include "common/state/snapshot.h"

namespace ztunnel {
namespace {

// positive: empty passes, else any entry; negative: empty passes, else no entry.
template <typename T, typename Pred>
bool field_passes(const std::vector<T>& positive, const std::vector<T>& negative, Pred&& pred) {
  if (!positive.empty() && std::none_of(positive.begin(), positive.end(), pred)) return false;
  if (!negative.empty() && std::any_of(negative.begin(), negative.end(), pred)) return false;
  return true;
}

// Per-connection values derived once per policy evaluation.
struct Peer {
  const ConnectionInfo& conn;
  std::string_view principal;  // identity without "spiffe://"; empty if none
  std::string_view ns;         // namespace from the identity; empty if none
};

bool match_passes(const AuthzMatch& m, const Peer& peer) {
  const ConnectionInfo& c = peer.conn;
  if (!field_passes(m.destination_ips, m.not_destination_ips,
                    [&](const Cidr& n) { return n.contains(c.dst_ip); })) {
    return false;
  }
  if (!field_passes(m.source_ips, m.not_source_ips,
                    [&](const Cidr& n) { return n.contains(c.src_ip); })) {
    return false;
  }
  if (!field_passes(m.destination_ports, m.not_destination_ports,
                    [&](uint16_t p) { return p == c.dst_port; })) {
    return false;
  }
  if (!field_passes(m.service_accounts, m.not_service_accounts,
                    [&](const ServiceAccountMatch& sa) {
                      return c.src_identity && c.src_identity->ns() == sa.ns &&
                             c.src_identity->sa() == sa.service_account;
                    })) {
    return false;
  }
  // Upstream matches principals only when an identity exists (it strips "spiffe://" and fails
  // otherwise), so without identity nothing matches — even Prefix("").
  if (!field_passes(m.principals, m.not_principals, [&](const StringMatch& s) {
        return c.src_identity.has_value() && s.matches(peer.principal);
      })) {
    return false;
  }
  // Namespaces are matched against the identity's namespace, "" without identity (upstream);
  // Presence and every non-empty literal therefore fail for plaintext peers.
  if (!field_passes(m.namespaces, m.not_namespaces,
                    [&](const StringMatch& s) { return s.matches(peer.ns); })) {
    return false;
  }
  return true;
}

bool matches_with(const Authorization& policy, const Peer& peer) {
  if (policy.rules.empty()) return false;
  for (const AuthzRule& rule : policy.rules) {
    bool rule_match = true;
    for (const AuthzClause& clause : rule) {
      bool clause_match = clause.empty();
      for (const AuthzMatch& m : clause) {
        if (m.empty()) continue;  // an empty Match is skipped, not a wildcard
        if (match_passes(m, peer)) {
          clause_match = true;
          break;
        }
      }
      if (!clause_match) {
        rule_match = false;
        break;
      }
    }
    if (rule_match) return true;
  }
  return false;
}

Peer make_peer(const ConnectionInfo& conn) {
  if (!conn.src_identity) return Peer{conn, {}, {}};
  return Peer{conn, conn.src_identity->principal(), conn.src_identity->ns()};
}

}  // namespace

bool policy_matches(const Authorization& policy, const ConnectionInfo& conn) {
  return matches_with(policy, make_peer(conn));
}

Decision evaluate(const Snapshot& snapshot, const ConnectionInfo& conn,
                  const Workload& destination) {
  const Peer peer = make_peer(conn);
  Decision d;

  // The three sources, visited in upstream's order without building a combined list.
  const auto ns_policies = snapshot.namespace_policies(destination.ns);
  const auto global_policies = snapshot.global_policies();
  auto for_each_policy = [&](auto&& fn) {
    for (const Authorization* p : ns_policies) {
      if (fn(*p)) return true;
    }
    for (const Authorization* p : global_policies) {
      if (fn(*p)) return true;
    }
    for (const std::string& key : destination.authorization_policies) {
      // Unknown keys: the policy has not arrived yet or was just removed; skip (upstream).
      if (const Authorization* p = snapshot.find_policy(key)) {
        if (fn(*p)) return true;
      }
    }
    return false;
  };

  // 1-2. DENY: dry-run ones are only reported; any enforced match rejects.
  bool denied = for_each_policy([&](const Authorization& p) {
    if (p.action != AuthzAction::Deny || !matches_with(p, peer)) return false;
    if (p.dry_run) {
      d.dry_run_notes.push_back("dry-run: deny policy " + p.key() + " matched");
      return false;
    }
    d.allow = false;
    d.reason = "explicitly denied by " + p.key();
    return true;
  });
  if (denied) return d;

  // 3-5. ALLOW: dry-run ALLOW policies do not count as "ALLOW policies exist".
  bool any_allow = false;
  bool allowed = for_each_policy([&](const Authorization& p) {
    if (p.action != AuthzAction::Allow) return false;
    const bool m = matches_with(p, peer);
    if (p.dry_run) {
      d.dry_run_notes.push_back("dry-run: allow policy " + p.key() +
                                (m ? " matched" : " did not match"));
      return false;
    }
    any_allow = true;
    if (m) {
      d.reason = "allowed by " + p.key();
      return true;
    }
    return false;
  });
  if (allowed) return d;
  if (!any_allow) {
    d.reason = "no allow policies";
    return d;
  }
  d.allow = false;
  d.reason = "allow policies exist, but none allowed";
  return d;
}

}  // namespace ztunnel
