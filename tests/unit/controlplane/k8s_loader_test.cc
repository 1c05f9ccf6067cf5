// controlplane/k8s_loader: files -> typed objects, and diagnostics naming file, object and field.
#include "fixture.h"

using namespace cptest;

TEST_CASE("invalid objects are reported with file, object and field; the rest compiles", "[controlplane]") {
  TempDir dir;
  dir.write("good.yaml", R"(
apiVersion: v1
kind: Namespace
metadata:
  name: ns1
  labels: {istio.io/dataplane-mode: ambient}
---
apiVersion: v1
kind: Pod
metadata: {name: ok-1, namespace: ns1, labels: {app: ok}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: bad-ip, namespace: ns1}
status: {podIP: 10.0.0.999}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dep, namespace: ns1}
---
this: is: not: yaml
---
apiVersion: v1
kind: Pod
metadata: {name: ok-2, namespace: ns1, labels: {app: ok}}
status: {podIP: 10.0.0.2}
)");
  dir.write("more.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: bad-port, namespace: ns1}
spec:
  selector: {app: ok}
  ports:
  - port: 70000
---
apiVersion: v1
kind: Service
metadata: {name: ok-svc, namespace: ns1}
spec:
  selector: {app: ok}
  clusterIP: 10.96.0.5
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: typo, namespace: ns1}
spec:
  action: DENY
  rules:
  - from:
    - source:
        principal: ["cluster.local/ns/ns1/sa/x"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad-action, namespace: ns1}
spec:
  action: REJECT
---
apiVersion: v1
kind: Pod
metadata: {name: ok-1, namespace: ns1}
status: {podIP: 10.0.0.3}
---
kind: Pod
metadata: {name: no-api}
---
apiVersion: v1
kind: Pod
metadata: {name: Bad_Name}
status: {podIP: 10.0.0.4}
)");
  dir.write("notes.txt", "ignored: not a manifest extension");
  dir.write(".hidden.yaml", "::: garbage");

  auto state = compile_directory(dir.path(), CompileOptions{});
  REQUIRE(state.ok());
  const auto& diags = state->diagnostics;
  INFO(dump(diags));
  const std::string good = dir.file("good.yaml");
  const std::string more = dir.file("more.yaml");

  // Each problem names file, object and field.
  CHECK(has_diag(diags, Severity::Error, good + ": Pod ns1/bad-ip: status.podIP: invalid IP address '10.0.0.999'"));
  CHECK(has_diag(diags, Severity::Error, good + ": document 5 (line 21): invalid YAML"));
  CHECK(has_diag(diags, Severity::Info, good + ": Deployment ns1/dep"));
  CHECK(has_diag(diags, Severity::Error,
                 more + ": Service ns1/bad-port: spec.ports[0].port: expected an integer in [1, 65535]"));
  CHECK(has_diag(diags, Severity::Error,
                 more + ": AuthorizationPolicy ns1/typo: spec.rules[0].from[0].source.principal: unknown field"));
  CHECK(has_diag(diags, Severity::Error, more + ": AuthorizationPolicy ns1/bad-action: spec.action"));
  CHECK(has_diag(diags, Severity::Error,
                 more + ": Pod ns1/ok-1: metadata.name: duplicate Pod (first defined in " + good));
  CHECK(has_diag(diags, Severity::Error, "apiVersion: missing"));
  CHECK(has_diag(diags, Severity::Error, "metadata.name: 'Bad_Name' is not a valid name"));
  // Files that are not manifests are not read at all.
  for (const auto& d : diags) {
    CHECK(d.file.find("notes.txt") == std::string::npos);
    CHECK(d.file.find(".hidden") == std::string::npos);
  }

  // The valid rest compiled: the first ok-1 (not the duplicate), ok-2, the good service.
  const auto& cfg = state->config;
  REQUIRE(cfg.workloads.size() == 2);
  const auto* ok1 = workload(cfg, "ns1", "ok-1");
  REQUIRE(ok1);
  CHECK(ok1->addresses == std::vector<ztunnel::IpAddr>{ip("10.0.0.1")});
  CHECK(ok1->services.count("ns1/ok-svc.ns1.svc.cluster.local") == 1);
  CHECK(workload(cfg, "ns1", "ok-2"));
  CHECK(cfg.services.size() == 1);
  CHECK(cfg.policies.empty());
  round_trip(cfg);
}

TEST_CASE("loader: List kind, documents split at ---, fatal only for a missing directory", "[controlplane]") {
  Diagnostics diags;
  ResourceSet set;
  parse_manifests(R"(---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: sa1, namespace: x}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm}
--- # trailing comment on the marker
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
---
)",
                  "list.yaml", set, diags);
  INFO(dump(diags));
  CHECK(set.service_accounts.size() == 1);
  CHECK(set.namespaces.size() == 1);
  CHECK(count(diags, Severity::Error) == 0);
  CHECK(has_diag(diags, Severity::Info, "ConfigMap"));

  auto missing = compile_directory("/nonexistent/cp-test-dir", CompileOptions{});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().find("/nonexistent/cp-test-dir") != std::string::npos);
}
