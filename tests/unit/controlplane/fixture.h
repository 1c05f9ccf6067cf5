// Shared by the controlplane_lib tests: helpers to find compiled objects, diagnostics checks,
// a round trip through ztunnel's parser, the policy decision with the real authorization
// engine, and the "shop" mesh used by several cases. Header-only; tests/unit only.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/model/local_config.h"
#include "common/model/local_config_writer.h"
#include "common/rbac/authz.h"
#include "common/state/snapshot.h"
#include "controlplane/atomic_file.h"
#include "controlplane/authz_policy.h"
#include "controlplane/compiler.h"
#include "controlplane/dir_watch.h"
#include "controlplane/k8s_loader.h"
#include "temp_dir.h"

namespace cptest {
using namespace controlplane;
namespace fs = std::filesystem;
}  // namespace cptest

namespace cptest {

using testutil::examples_k8s;

class TempDir : public testutil::TempDir {
 public:
  TempDir() : testutil::TempDir("cp-test") {}
};

inline const ztunnel::Workload* workload(const ztunnel::LocalConfig& c, const std::string& ns,
                                         const std::string& name) {
  for (const auto& w : c.workloads) {
    if (w.ns == ns && w.name == name) return &w;
  }
  return nullptr;
}
inline const ztunnel::Service* service(const ztunnel::LocalConfig& c, const std::string& ns, const std::string& name) {
  for (const auto& s : c.services) {
    if (s.ns == ns && s.name == name) return &s;
  }
  return nullptr;
}
inline const ztunnel::Authorization* policy(const ztunnel::LocalConfig& c, const std::string& ns,
                                            const std::string& name) {
  for (const auto& p : c.policies) {
    if (p.ns == ns && p.name == name) return &p;
  }
  return nullptr;
}

inline std::string dump(const Diagnostics& diags) {
  std::string out;
  for (const auto& d : diags) out += d.to_string() + "\n";
  return out;
}

inline bool has_diag(const Diagnostics& diags, Severity s, const std::string& fragment) {
  return std::any_of(diags.begin(), diags.end(), [&](const Diagnostic& d) {
    return d.severity == s && d.to_string().find(fragment) != std::string::npos;
  });
}

inline ztunnel::IpAddr ip(const char* s) {
  return *ztunnel::parse_ip(s);
}

// Decision for a connection from `src` (with its identity) to `dst`:port in `cfg`.
inline ztunnel::Decision decide(const ztunnel::LocalConfig& cfg, const ztunnel::Workload& src,
                                const ztunnel::Workload& dst, uint16_t port) {
  auto snap = ztunnel::Snapshot::from_local_config(cfg);
  const ztunnel::Workload* d = snap->find_workload_by_uid(dst.uid);
  REQUIRE(d != nullptr);
  ztunnel::ConnectionInfo conn{src.addresses.at(0), dst.addresses.at(0), port, src.identity()};
  return ztunnel::evaluate(*snap, conn, *d);
}

// Writes, reparses with ztunnel's parser, writes again: must be a fixpoint.
inline ztunnel::LocalConfig round_trip(const ztunnel::LocalConfig& cfg) {
  const std::string first = to_local_xds_yaml(cfg, "test");
  auto parsed = ztunnel::parse_local_config(first);
  INFO(first);
  INFO((parsed.ok() ? std::string() : parsed.error()));
  REQUIRE(parsed.ok());
  const std::string second = to_local_xds_yaml(*parsed, "test");
  CHECK(first == second);
  return std::move(parsed).value();
}

// A mesh exercising every rule of the compiler.
inline const char* kShopNamespaces = R"(
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: waypoint
---
apiVersion: v1
kind: Namespace
metadata:
  name: legacy
---
apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
)";

inline const char* kShopGateways = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: shop
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: wl-waypoint
  namespace: shop
  labels:
    istio.io/waypoint-for: workload
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15009
    protocol: HBONE
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ingress
  namespace: shop
spec:
  gatewayClassName: istio
)";

inline const char* kShopPods = R"(
apiVersion: v1
kind: Pod
metadata:
  name: waypoint-7c9d
  namespace: shop
  labels:
    gateway.networking.k8s.io/gateway-name: waypoint
    istio.io/dataplane-mode: none
spec:
  serviceAccountName: waypoint
  nodeName: node-1
status:
  podIP: 10.0.0.100
---
apiVersion: v1
kind: Pod
metadata:
  name: wl-waypoint-1
  namespace: shop
  labels:
    gateway.networking.k8s.io/gateway-name: wl-waypoint
    istio.io/dataplane-mode: none
spec:
  nodeName: node-1
status:
  podIP: 10.0.0.101
---
apiVersion: v1
kind: Pod
metadata:
  name: a-5d8f9-x2x4k
  namespace: shop
  labels:
    app: a
    version: v2
    pod-template-hash: 5d8f9
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: a-5d8f9
    controller: true
spec:
  serviceAccountName: sa-a
  nodeName: node-1
  containers:
  - name: app
    ports:
    - name: http
      containerPort: 8080
status:
  podIP: 10.0.0.1
  podIPs:
  - ip: 10.0.0.1
  - ip: fd00::1
---
apiVersion: v1
kind: Pod
metadata:
  name: b
  namespace: shop
  labels:
    app: b
    istio.io/use-waypoint: wl-waypoint
    service.istio.io/canonical-name: bee
spec:
  nodeName: node-2
  containers:
  - name: app
    ports:
    - name: web
      containerPort: 9090
status:
  podIP: 10.0.0.2
  conditions:
  - type: Ready
    status: "False"
---
apiVersion: v1
kind: Pod
metadata:
  name: c
  namespace: shop
  labels:
    app: c
    istio.io/dataplane-mode: none
spec:
  nodeName: node-1
status:
  podIP: 10.0.0.3
---
apiVersion: v1
kind: Pod
metadata:
  name: d
  namespace: legacy
  labels:
    app: d
spec:
  nodeName: node-1
status:
  podIP: 10.0.0.4
---
apiVersion: v1
kind: Pod
metadata:
  name: pending
  namespace: shop
spec:
  nodeName: node-1
)";

inline const char* kShopServices = R"(
apiVersion: v1
kind: Service
metadata:
  name: a-svc
  namespace: shop
spec:
  selector:
    app: a
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 80
    targetPort: http
  - name: admin
    port: 9000
    targetPort: 9001
  - name: dns
    port: 53
    protocol: UDP
---
apiVersion: v1
kind: Service
metadata:
  name: b-svc
  namespace: shop
  labels:
    istio.io/use-waypoint: none
spec:
  selector:
    app: b
  clusterIP: 10.96.0.11
  ports:
  - port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: d-svc
  namespace: legacy
spec:
  selector:
    app: d
  clusterIP: None
  ports:
  - port: 5432
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm1
  namespace: shop
spec:
  address: 10.0.1.1
  serviceAccount: vm
  labels:
    app: a
  ports:
    http: 8081
  weight: 3
)";

inline const char* kShopPolicies = R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-a
  namespace: shop
spec:
  selector:
    matchLabels:
      app: a
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/*"]
    to:
    - operation:
        ports: ["8080"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-legacy
  namespace: shop
spec:
  action: DENY
  rules:
  - from:
    - source:
        namespaces: ["legacy"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: global-deny
  namespace: istio-system
spec:
  action: DENY
  rules:
  - from:
    - source:
        ipBlocks: ["192.168.0.0/16"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: audit
  namespace: shop
spec:
  action: AUDIT
  rules:
  - {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: mesh-select
  namespace: istio-system
spec:
  selector:
    matchLabels:
      app: d
  action: DENY
  rules:
  - to:
    - operation:
        ports: ["5432"]
)";

inline CompiledState compile_shop(TempDir& dir) {
  dir.write("00-namespaces.yaml", kShopNamespaces);
  dir.write("10-gateways.yaml", kShopGateways);
  dir.write("20-pods.yaml", kShopPods);
  dir.write("30-services.yml", kShopServices);
  dir.write("40-policies.yaml", kShopPolicies);
  auto state = compile_directory(dir.path(), CompileOptions{});
  REQUIRE(state.ok());
  return std::move(state).value();
}

// Translates the AuthorizationPolicy whose `spec` is given (namespace "ns1").
inline std::optional<ztunnel::Authorization> translate(const std::string& spec, Diagnostics& diags,
                                                       const std::string& ns = "ns1") {
  const std::string doc =
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
      "metadata:\n  name: p\n  namespace: " +
      ns + "\nspec:\n" + spec;
  ResourceSet set;
  parse_manifests(doc, "policy.yaml", set, diags);
  INFO(dump(diags));
  REQUIRE(set.policies.size() == 1);
  return translate_policy(set.policies[0], kDefaultRootNamespace, diags);
}

inline ztunnel::StringMatch exact(const char* v) {
  return {ztunnel::StringMatch::Kind::Exact, v};
}

}  // namespace cptest

// ---------------------------------------------------------------------------------------------
