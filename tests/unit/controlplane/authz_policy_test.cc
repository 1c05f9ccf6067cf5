// controlplane/authz_policy: AuthorizationPolicy -> L4 Authorization, checked by effect with the
// real authorization engine.
#include "fixture.h"

using namespace cptest;

TEST_CASE("authz: scope from selector and namespace", "[controlplane][authz]") {
  Diagnostics d;
  auto ns = translate("  action: DENY\n", d);
  REQUIRE(ns);
  CHECK(ns->scope == ztunnel::AuthzScope::Namespace);
  CHECK(ns->ns == "ns1");
  CHECK(ns->action == ztunnel::AuthzAction::Deny);

  auto global = translate("  action: DENY\n", d, "istio-system");
  REQUIRE(global);
  CHECK(global->scope == ztunnel::AuthzScope::Global);
  CHECK(global->ns == "istio-system");

  auto sel = translate("  selector:\n    matchLabels: {app: x}\n", d);
  REQUIRE(sel);
  CHECK(sel->scope == ztunnel::AuthzScope::WorkloadSelector);
  CHECK(sel->action == ztunnel::AuthzAction::Allow);  // default action
  CHECK(sel->rules.empty());                          // no rules: ALLOW matches nothing

  auto empty_sel = translate("  selector: {}\n", d);
  REQUIRE(empty_sel);
  CHECK(empty_sel->scope == ztunnel::AuthzScope::WorkloadSelector);
}

TEST_CASE("authz: AUDIT, CUSTOM and targetRef policies are not sent to ztunnel", "[controlplane][authz]") {
  for (const char* spec : {"  action: AUDIT\n  rules: [{}]\n", "  action: CUSTOM\n  provider: {name: x}\n",
                           "  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}\n"}) {
    Diagnostics d;
    INFO(spec);
    CHECK_FALSE(translate(spec, d));
    CHECK(count(d, Severity::Info) == 1);
  }
}

TEST_CASE("authz: principals and namespaces globs", "[controlplane][authz]") {
  using K = ztunnel::StringMatch::Kind;
  CHECK(string_match_from_glob("*") == ztunnel::StringMatch{K::Presence, ""});
  CHECK(string_match_from_glob("*/sa/web") == ztunnel::StringMatch{K::Suffix, "/sa/web"});
  CHECK(string_match_from_glob("cluster.local/ns/x/*") == ztunnel::StringMatch{K::Prefix, "cluster.local/ns/x/"});
  CHECK(string_match_from_glob("cluster.local/ns/x/sa/y") == ztunnel::StringMatch{K::Exact, "cluster.local/ns/x/sa/y"});
  CHECK(string_match_from_glob("a*b") == ztunnel::StringMatch{K::Exact, "a*b"});
}

TEST_CASE("authz: rule structure and every L4 field", "[controlplane][authz]") {
  Diagnostics d;
  auto p = translate(R"(  action: ALLOW
  rules:
  - to:
    - operation: {ports: ["80", "443"], notPorts: ["8443"]}
    - operation: {ports: ["9090"]}
    from:
    - source:
        principals: ["cluster.local/ns/a/sa/b", "*"]
        notPrincipals: ["*/sa/evil"]
        namespaces: ["a*"]
        notNamespaces: ["kube-system"]
        ipBlocks: ["10.0.0.0/8", "192.168.1.1"]
        notIpBlocks: ["10.9.0.0/16"]
        serviceAccounts: ["web", "other/db"]
        notServiceAccounts: ["other/bad"]
    - source: {namespaces: ["b"]}
    when:
    - key: source.ip
      values: ["172.16.0.0/12"]
      notValues: ["172.16.0.1"]
    - key: destination.port
      values: ["80"]
    - key: destination.ip
      notValues: ["10.96.0.0/12"]
    - key: source.namespace
      values: ["a"]
    - key: source.principal
      notValues: ["cluster.local/ns/a/sa/x"]
  - {}
)",
                     d);
  INFO(dump(d));
  REQUIRE(p);
  CHECK(d.empty());
  REQUIRE(p->rules.size() == 2);
  const auto& r = p->rules[0];
  REQUIRE(r.size() == 7);  // to, from, then one clause per condition
  // to: two entries OR-ed in one clause
  REQUIRE(r[0].size() == 2);
  CHECK(r[0][0].destination_ports == std::vector<uint16_t>{80, 443});
  CHECK(r[0][0].not_destination_ports == std::vector<uint16_t>{8443});
  CHECK(r[0][1].destination_ports == std::vector<uint16_t>{9090});
  // from
  REQUIRE(r[1].size() == 2);
  const auto& m = r[1][0];
  using K = ztunnel::StringMatch::Kind;
  CHECK(m.principals == std::vector<ztunnel::StringMatch>{exact("cluster.local/ns/a/sa/b"), {K::Presence, ""}});
  CHECK(m.not_principals == std::vector<ztunnel::StringMatch>{{K::Suffix, "/sa/evil"}});
  CHECK(m.namespaces == std::vector<ztunnel::StringMatch>{{K::Prefix, "a"}});
  CHECK(m.not_namespaces == std::vector<ztunnel::StringMatch>{exact("kube-system")});
  CHECK(m.source_ips ==
        std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("10.0.0.0/8"), *ztunnel::Cidr::parse("192.168.1.1/32")});
  CHECK(m.not_source_ips == std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("10.9.0.0/16")});
  CHECK(m.service_accounts == std::vector<ztunnel::ServiceAccountMatch>{{"ns1", "web"}, {"other", "db"}});
  CHECK(m.not_service_accounts == std::vector<ztunnel::ServiceAccountMatch>{{"other", "bad"}});
  CHECK(r[1][1].namespaces == std::vector<ztunnel::StringMatch>{exact("b")});
  // when
  REQUIRE(r[2].size() == 1);
  CHECK(r[2][0].source_ips == std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("172.16.0.0/12")});
  CHECK(r[2][0].not_source_ips == std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("172.16.0.1")});
  CHECK(r[3][0].destination_ports == std::vector<uint16_t>{80});
  CHECK(r[4][0].not_destination_ips == std::vector<ztunnel::Cidr>{*ztunnel::Cidr::parse("10.96.0.0/12")});
  CHECK(r[5][0].namespaces == std::vector<ztunnel::StringMatch>{exact("a")});
  CHECK(r[6][0].not_principals == std::vector<ztunnel::StringMatch>{exact("cluster.local/ns/a/sa/x")});
  // `- {}`: a rule without clauses, which matches every connection.
  CHECK(p->rules[1].empty());
}

TEST_CASE("authz: L7 attributes — ALLOW rule omitted, DENY rule kept without them", "[controlplane][authz]") {
  SECTION("ALLOW: the L7 rule goes, the L4 rule stays") {
    Diagnostics d;
    auto p = translate(R"(  rules:
  - to:
    - operation: {methods: ["GET"], ports: ["80"]}
  - from:
    - source: {namespaces: ["a"]}
)",
                       d);
    REQUIRE(p);
    REQUIRE(p->rules.size() == 1);
    CHECK(p->rules[0][0][0].namespaces == std::vector<ztunnel::StringMatch>{exact("a")});
    CHECK(has_diag(d, Severity::Warning, "spec.rules[0].to[0].operation.methods"));
    CHECK(has_diag(d, Severity::Warning, "ALLOW rule is omitted"));
  }
  SECTION("ALLOW with only L7 rules matches nothing, which is reported") {
    Diagnostics d;
    auto p = translate("  rules:\n  - when:\n    - {key: \"request.auth.claims[iss]\", values: [x]}\n", d);
    REQUIRE(p);
    CHECK(p->rules.empty());
    CHECK(has_diag(d, Severity::Warning, "matches nothing"));
  }
  SECTION("DENY: L7 fields dropped from a match, the L4 part kept") {
    Diagnostics d;
    auto p = translate(R"(  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin"], ports: ["8080"]}
    from:
    - source: {requestPrincipals: ["*"], namespaces: ["evil"]}
    when:
    - {key: "request.headers[x-user]", values: [bob]}
    - {key: destination.port, values: ["8080"]}
)",
                       d);
    INFO(dump(d));
    REQUIRE(p);
    REQUIRE(p->rules.size() == 1);
    const auto& r = p->rules[0];
    REQUIRE(r.size() == 3);  // to, from, the L4 condition; the header condition is gone
    CHECK(r[0][0].destination_ports == std::vector<uint16_t>{8080});
    CHECK(r[1][0].namespaces == std::vector<ztunnel::StringMatch>{exact("evil")});
    CHECK(r[2][0].destination_ports == std::vector<uint16_t>{8080});
    CHECK(has_diag(d, Severity::Warning, "DENY rule is enforced without them"));
  }
  SECTION("DENY: an entry left empty makes its clause match anything") {
    Diagnostics d;
    auto p = translate(R"(  action: DENY
  rules:
  - to:
    - operation: {methods: ["DELETE"]}
    - operation: {ports: ["22"]}
    from:
    - source: {namespaces: ["evil"]}
)",
                       d);
    REQUIRE(p);
    REQUIRE(p->rules.size() == 1);
    REQUIRE(p->rules[0].size() == 1);  // `to` became "any" and was dropped
    CHECK(p->rules[0][0][0].namespaces == std::vector<ztunnel::StringMatch>{exact("evil")});
  }
  SECTION("DENY with nothing enforceable denies everything, and says so") {
    Diagnostics d;
    auto p = translate("  action: DENY\n  rules:\n  - to:\n    - operation: {methods: [POST]}\n", d);
    REQUIRE(p);
    REQUIRE(p->rules.size() == 1);
    CHECK(p->rules[0].empty());
    CHECK(has_diag(d, Severity::Warning, "matches every connection"));
  }
}

TEST_CASE("authz: unusable values — ALLOW rule omitted, DENY constraint dropped", "[controlplane][authz]") {
  Diagnostics d;
  auto allow = translate(R"(  rules:
  - to:
    - operation: {ports: ["http"]}
  - from:
    - source: {ipBlocks: ["10.0.0.0/33"]}
  - from:
    - source: {principals: ["cluster.local/ns/a/sa/b"]}
)",
                         d);
  INFO(dump(d));
  REQUIRE(allow);
  REQUIRE(allow->rules.size() == 1);
  CHECK(allow->rules[0][0][0].principals == std::vector<ztunnel::StringMatch>{exact("cluster.local/ns/a/sa/b")});
  CHECK(has_diag(d, Severity::Error, "spec.rules[0].to[0].operation.ports[0]: invalid port 'http'"));
  CHECK(has_diag(d, Severity::Error, "spec.rules[1].from[0].source.ipBlocks[0]: invalid IP or CIDR"));

  Diagnostics d2;
  auto deny = translate(R"(  action: DENY
  rules:
  - to:
    - operation: {ports: ["80", "99999"]}
    from:
    - source: {namespaces: ["x"]}
)",
                        d2);
  REQUIRE(deny);
  REQUIRE(deny->rules.size() == 1);
  REQUIRE(deny->rules[0].size() == 1);  // the port constraint is gone: denies x on any port
  CHECK(deny->rules[0][0][0].namespaces == std::vector<ztunnel::StringMatch>{exact("x")});
  CHECK(has_diag(d2, Severity::Error, "denies more"));
}

TEST_CASE("authz: translated policies decide like Istio's intent", "[controlplane][authz]") {
  // Destination in ns1; sources with identities in ns1 (sa web) and ns2 (sa evil).
  ztunnel::Workload dst, good, evil;
  dst.uid = "u-dst";
  dst.ns = "ns1";
  dst.name = "dst";
  dst.addresses = {ip("10.0.0.1")};
  good.uid = "u-good";
  good.ns = "ns1";
  good.service_account = "web";
  good.addresses = {ip("10.0.0.2")};
  evil.uid = "u-evil";
  evil.ns = "ns2";
  evil.service_account = "evil";
  evil.addresses = {ip("10.0.0.3")};

  auto run = [&](const std::string& spec, const ztunnel::Workload& src, uint16_t port) {
    Diagnostics d;
    auto p = translate(spec, d);
    REQUIRE(p);
    ztunnel::LocalConfig cfg;
    cfg.workloads = {dst, good, evil};
    cfg.policies = {*p};
    return decide(cfg, src, dst, port).allow;
  };

  const std::string allow_ns1 = "  rules:\n  - from:\n    - source: {namespaces: [ns1]}\n";
  CHECK(run(allow_ns1, good, 80));
  CHECK_FALSE(run(allow_ns1, evil, 80));

  const std::string deny_evil_l7 =
      "  action: DENY\n  rules:\n  - from:\n    - source: {principals: ['*/sa/evil']}\n"
      "    to:\n    - operation: {methods: [GET]}\n";
  CHECK_FALSE(run(deny_evil_l7, evil, 80));  // L7 part dropped: evil denied on every request
  CHECK(run(deny_evil_l7, good, 80));

  const std::string allow_l7_only = "  rules:\n  - to:\n    - operation: {paths: [/public]}\n";
  CHECK_FALSE(run(allow_l7_only, good, 80));  // cannot be proven at L4: nothing allowed

  const std::string allow_all = "  rules:\n  - {}\n";
  CHECK(run(allow_all, evil, 80));
  const std::string deny_port = "  action: DENY\n  rules:\n  - to:\n    - operation: {ports: ['22']}\n";
  CHECK_FALSE(run(deny_port, good, 22));
  CHECK(run(deny_port, good, 80));
  const std::string sa_allow = "  rules:\n  - from:\n    - source: {serviceAccounts: [web]}\n";
  CHECK(run(sa_allow, good, 80));
  CHECK_FALSE(run(sa_allow, evil, 80));
}
