#include <catch2/catch.hpp>

#include "common/rbac/authz.h"
#include "common/model/local_config.h"
#include "common/state/snapshot.h"

using namespace ztunnel;

namespace {

// Destination workload "server" in namespace "dst" (10.0.0.2), selecting the workload-scoped
// policies listed in `selected`; `policies` is the YAML list body of policies.
SnapshotConstSharedPtr mesh(const std::string& policies, const std::string& selected = "[]") {
  const std::string y = R"(
workloads:
- uid: server
  namespace: dst
  serviceAccount: server
  workloadIps: ["10.0.0.2"]
  protocol: HBONE
  authorizationPolicies: )" + selected + R"(
policies:
)" + policies;
  auto r = parse_local_config(y);
  INFO(y << "\n" << (r.ok() ? "" : r.error()));
  REQUIRE(r.ok());
  return Snapshot::from_local_config(std::move(r).value());
}

ConnectionInfo conn(const char* src_ip, std::optional<std::string> spiffe, uint16_t port = 8080,
                    const char* dst_ip = "10.0.0.2") {
  ConnectionInfo c;
  c.src_ip = *parse_ip(src_ip);
  c.dst_ip = *parse_ip(dst_ip);
  c.dst_port = port;
  if (spiffe) {
    auto id = common::Identity::parse(*spiffe);
    REQUIRE(id);
    c.src_identity = *id;
  }
  return c;
}

Decision decide(const SnapshotConstSharedPtr& snap, const ConnectionInfo& c) {
  const Workload* server = snap->find_workload_by_uid("server");
  REQUIRE(server);
  return evaluate(*snap, c, *server);
}

const char* kAlice = "spiffe://cluster.local/ns/frontend/sa/alice";
const char* kBob = "spiffe://cluster.local/ns/backend/sa/bob";

}  // namespace

TEST_CASE("no policies: allow", "[authz]") {
  auto snap = mesh("  []");
  auto d = decide(snap, conn("10.0.0.1", std::nullopt));
  CHECK(d.allow);
  CHECK(d.reason == "no allow policies");
}

TEST_CASE("DENY is evaluated before ALLOW", "[authz]") {
  auto snap = mesh(R"(
- {name: allow-all-alice, namespace: dst, scope: Namespace, action: Allow, rules: [[[{namespaces: [{Exact: frontend}]}]]]}
- {name: deny-port, namespace: dst, scope: Namespace, action: Deny, rules: [[[{destinationPorts: [9000]}]]]}
)");
  auto allowed = decide(snap, conn("10.0.0.1", kAlice, 8080));
  CHECK(allowed.allow);
  CHECK(allowed.reason == "allowed by dst/allow-all-alice");

  auto denied = decide(snap, conn("10.0.0.1", kAlice, 9000));
  CHECK_FALSE(denied.allow);
  CHECK(denied.reason == "explicitly denied by dst/deny-port");

  auto bob = decide(snap, conn("10.0.0.1", kBob, 8080));
  CHECK_FALSE(bob.allow);
  CHECK(bob.reason == "allow policies exist, but none allowed");
}

TEST_CASE("rules/clauses/matches combine as OR/AND/OR", "[authz]") {
  // rule 1: (ns frontend OR ns backend) AND port 8080;  rule 2: source 192.168.0.0/16
  auto snap = mesh(R"(
- name: p
  namespace: dst
  scope: Namespace
  action: Allow
  rules:
  - - - namespaces: [{Exact: frontend}]
      - namespaces: [{Exact: backend}]
    - - destinationPorts: [8080]
  - - - sourceIps: ["192.168.0.0/16"]
)");
  CHECK(decide(snap, conn("10.0.0.1", kAlice, 8080)).allow);
  CHECK(decide(snap, conn("10.0.0.1", kBob, 8080)).allow);
  CHECK_FALSE(decide(snap, conn("10.0.0.1", kBob, 8081)).allow);        // clause 2 fails
  CHECK(decide(snap, conn("192.168.7.7", kBob, 8081)).allow);            // rule 2
  CHECK(decide(snap, conn("192.168.7.7", std::nullopt, 1)).allow);       // rule 2, plaintext
  CHECK_FALSE(decide(snap, conn("10.0.0.1", std::nullopt, 8080)).allow);  // no ns without id
}

TEST_CASE("all populated fields of one match must pass", "[authz]") {
  auto snap = mesh(R"(
- name: p
  namespace: dst
  scope: Namespace
  action: Allow
  rules:
  - - - namespaces: [{Exact: frontend}]
        sourceIps: ["10.0.0.0/24"]
        notDestinationPorts: [22]
        destinationIps: ["10.0.0.2/32"]
)");
  CHECK(decide(snap, conn("10.0.0.1", kAlice, 80)).allow);
  CHECK_FALSE(decide(snap, conn("10.0.1.1", kAlice, 80)).allow);  // source outside
  CHECK_FALSE(decide(snap, conn("10.0.0.1", kAlice, 22)).allow);  // not_ port
  CHECK_FALSE(decide(snap, conn("10.0.0.1", kBob, 80)).allow);    // namespace
  CHECK_FALSE(decide(snap, conn("10.0.0.1", kAlice, 80, "10.0.0.3")).allow);  // dst ip
}

TEST_CASE("empty rules, clauses and matches", "[authz]") {
  SECTION("a policy without rules never matches") {
    auto deny = mesh("- {name: d, namespace: dst, scope: Namespace, action: Deny, rules: []}\n");
    CHECK(decide(deny, conn("10.0.0.1", kAlice)).allow);
    auto allow = mesh("- {name: a, namespace: dst, scope: Namespace, action: Allow}\n");
    auto d = decide(allow, conn("10.0.0.1", kAlice));
    CHECK_FALSE(d.allow);
    CHECK(d.reason == "allow policies exist, but none allowed");
  }
  SECTION("a rule with no clauses matches everything") {
    auto snap = mesh("- {name: a, namespace: dst, scope: Namespace, action: Deny, rules: [[]]}\n");
    CHECK_FALSE(decide(snap, conn("10.0.0.1", std::nullopt)).allow);
  }
  SECTION("an empty clause matches") {
    auto snap = mesh("- {name: a, namespace: dst, scope: Namespace, action: Deny, rules: [[[]]]}\n");
    CHECK_FALSE(decide(snap, conn("10.0.0.1", std::nullopt)).allow);
  }
  SECTION("an empty match is skipped, not a wildcard") {
    auto snap = mesh("- {name: a, namespace: dst, scope: Namespace, action: Deny, rules: [[[{}]]]}\n");
    CHECK(decide(snap, conn("10.0.0.1", std::nullopt)).allow);
    auto mixed = mesh(
        "- {name: a, namespace: dst, scope: Namespace, action: Deny, rules: [[[{}, {destinationPorts: [1]}]]]}\n");
    CHECK(decide(mixed, conn("10.0.0.1", std::nullopt, 2)).allow);
    CHECK_FALSE(decide(mixed, conn("10.0.0.1", std::nullopt, 1)).allow);
  }
}

TEST_CASE("principals match literally, without spiffe://", "[authz]") {
  auto snap = mesh(R"(
- name: p
  namespace: dst
  scope: Namespace
  action: Allow
  rules:
  - - - principals: [{Exact: cluster.local/ns/frontend/sa/svc.v1}]
)");
  CHECK(decide(snap, conn("10.0.0.1", "spiffe://cluster.local/ns/frontend/sa/svc.v1")).allow);
  // A '.' is not a regex wildcard.
  CHECK_FALSE(decide(snap, conn("10.0.0.1", "spiffe://cluster.local/ns/frontend/sa/svcXv1")).allow);
  CHECK_FALSE(decide(snap, conn("10.0.0.1", "spiffe://cluster.local/ns/frontend/sa/svc-v1")).allow);

  auto with_scheme = mesh(R"(
- name: p
  namespace: dst
  scope: Namespace
  action: Allow
  rules: [[[{principals: [{Exact: "spiffe://cluster.local/ns/frontend/sa/alice"}]}]]]
)");
  CHECK_FALSE(decide(with_scheme, conn("10.0.0.1", kAlice)).allow);

  auto prefix_suffix = mesh(R"(
- name: p
  namespace: dst
  scope: Namespace
  action: Allow
  rules: [[[{principals: [{Prefix: "cluster.local/ns/front"}]}, {principals: [{Suffix: "/sa/bob"}]}]]]
)");
  CHECK(decide(prefix_suffix, conn("10.0.0.1", kAlice)).allow);
  CHECK(decide(prefix_suffix, conn("10.0.0.1", kBob)).allow);
  CHECK_FALSE(decide(prefix_suffix, conn("10.0.0.1", "spiffe://cluster.local/ns/x/sa/carol")).allow);
}

TEST_CASE("plaintext connections have no identity", "[authz]") {
  auto presence = mesh(
      "- {name: p, namespace: dst, scope: Namespace, action: Allow, rules: [[[{principals: [{Presence: []}]}]]]}\n");
  CHECK(decide(presence, conn("10.0.0.1", kAlice)).allow);
  CHECK_FALSE(decide(presence, conn("10.0.0.1", std::nullopt)).allow);

  auto any_prefix = mesh(
      "- {name: p, namespace: dst, scope: Namespace, action: Allow, rules: [[[{principals: [{Prefix: \"\"}]}]]]}\n");
  CHECK_FALSE(decide(any_prefix, conn("10.0.0.1", std::nullopt)).allow);

  auto sa = mesh(
      "- {name: p, namespace: dst, scope: Namespace, action: Allow, rules: [[[{serviceAccounts: [{namespace: frontend, serviceAccount: alice}]}]]]}\n");
  CHECK(decide(sa, conn("10.0.0.1", kAlice)).allow);
  CHECK_FALSE(decide(sa, conn("10.0.0.1", kBob)).allow);
  CHECK_FALSE(decide(sa, conn("10.0.0.1", std::nullopt)).allow);

  // not_ lists: without identity nothing is excluded, so a notPrincipals-only DENY does not
  // deny plaintext... and one on notNamespaces does (namespace "" is not "frontend").
  auto not_principal = mesh(
      "- {name: p, namespace: dst, scope: Namespace, action: Deny, rules: [[[{notPrincipals: [{Exact: cluster.local/ns/frontend/sa/alice}]}]]]}\n");
  CHECK(decide(not_principal, conn("10.0.0.1", kAlice)).allow);
  CHECK_FALSE(decide(not_principal, conn("10.0.0.1", kBob)).allow);
  CHECK_FALSE(decide(not_principal, conn("10.0.0.1", std::nullopt)).allow);
}

TEST_CASE("policy sources: namespace, global, selected", "[authz]") {
  auto snap = mesh(R"(
- {name: other-ns, namespace: elsewhere, scope: Namespace, action: Deny, rules: [[]]}
- {name: selected, namespace: dst, scope: WorkloadSelector, action: Deny, rules: [[[{destinationPorts: [1]}]]]}
- {name: unselected, namespace: dst, scope: WorkloadSelector, action: Deny, rules: [[]]}
- {name: mesh, namespace: istio-system, scope: Global, action: Deny, rules: [[[{destinationPorts: [2]}]]]}
)",
                   R"(["dst/selected", "dst/not-arrived-yet"])");
  CHECK(decide(snap, conn("10.0.0.1", kAlice, 3)).allow);  // other-ns and unselected ignored
  auto sel = decide(snap, conn("10.0.0.1", kAlice, 1));
  CHECK_FALSE(sel.allow);
  CHECK(sel.reason == "explicitly denied by dst/selected");
  auto global = decide(snap, conn("10.0.0.1", kAlice, 2));
  CHECK_FALSE(global.allow);
  CHECK(global.reason == "explicitly denied by istio-system/mesh");
}

TEST_CASE("dry-run policies are reported, not enforced", "[authz]") {
  auto snap = mesh(R"(
- {name: dry-deny, namespace: dst, scope: Namespace, action: Deny, dryRun: true, rules: [[]]}
- {name: dry-allow, namespace: dst, scope: Namespace, action: Allow, dryRun: true, rules: [[[{destinationPorts: [1]}]]]}
)");
  auto d = decide(snap, conn("10.0.0.1", kAlice, 8080));
  CHECK(d.allow);
  CHECK(d.reason == "no allow policies");  // a dry-run ALLOW does not switch to default-deny
  REQUIRE(d.dry_run_notes.size() == 2);
  CHECK(d.dry_run_notes[0] == "dry-run: deny policy dst/dry-deny matched");
  CHECK(d.dry_run_notes[1] == "dry-run: allow policy dst/dry-allow did not match");
}

TEST_CASE("CIDR and port edge cases", "[authz]") {
  auto snap = mesh(R"(
- name: p
  namespace: dst
  scope: Namespace
  action: Deny
  rules:
  - - - sourceIps: ["fd00::/8", "0.0.0.0/0"]
        notSourceIps: ["10.0.0.0/8"]
)");
  CHECK_FALSE(decide(snap, conn("192.0.2.1", kAlice)).allow);  // 0/0 matches any v4
  CHECK(decide(snap, conn("10.1.2.3", kAlice)).allow);         // excluded by not
  CHECK_FALSE(decide(snap, conn("fd12::1", kAlice)).allow);
  CHECK(decide(snap, conn("2001:db8::1", kAlice)).allow);      // v6 not in fd00::/8, v4 nets skip
}
