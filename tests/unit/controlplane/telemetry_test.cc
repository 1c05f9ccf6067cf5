// Istio Telemetry (tracing) -> Route.tracing + the "istio.tracing" provider + the collector
// cluster, for a Service at its waypoint and for an ingress Gateway (controlplane/telemetry.h,
// controlplane/tracing_envoy.h, docs/tracing.md). Every compiled route is read back through the
// waypoint's converter, which must accept it.
#include <catch2/catch.hpp>

#include "envoy/config/route/v3/route.pb.h"
#include "tests/unit/controlplane/waypoint_fixture.h"

using namespace controlplane;
using namespace wptest;

namespace {

const char* kZipkinCluster = "outbound|9411||zipkin.istio-system.svc.cluster.local";
const char* kCalcRoute = "inbound-vip|8080|http|calculate.demo.svc.cluster.local";
const char* kOtherRoute = "inbound-vip|8080|http|other.demo.svc.cluster.local";

// demo: two Services at the waypoint; istio-system: the Zipkin collector and the mesh config.
const std::string kMesh = std::string(kWaypointMeshPrefix) + R"(---
apiVersion: v1
kind: Pod
metadata: {name: waypoint-0, namespace: demo, labels: {gateway.networking.k8s.io/gateway-name: waypoint}}
status: {podIP: 10.0.0.9}
---
apiVersion: v1
kind: Service
metadata: {name: calculate, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec: {selector: {app: calculate}, clusterIP: 10.96.0.10, ports: [{name: http, port: 8080, targetPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec: {selector: {app: other}, clusterIP: 10.96.0.11, ports: [{name: http, port: 8080, targetPort: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: calc, namespace: demo, labels: {app: calculate}}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: istio-system}
spec: {selector: {app: zipkin}, clusterIP: 10.96.0.99, ports: [{name: http-query, port: 9411, targetPort: 9411}]}
---
apiVersion: v1
kind: Pod
metadata: {name: zipkin-0, namespace: istio-system, labels: {app: zipkin}}
status: {podIP: 10.0.2.1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    defaultConfig:
      tracing: {sampling: 2.5}
    defaultProviders:
      tracing: [zipkin]
    extensionProviders:
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 99}
    - name: otel
      opentelemetry: {service: otel.istio-system.svc.cluster.local, port: 4317}
)";

struct Tracing {
  uint32_t per_million = 0;
  bool report = false;
  std::string cluster;
  uint32_t max_tag = 0;
  std::map<std::string, std::string> tags;  // tag -> literal value or "header:<name>"
};

// What the waypoint makes of route `name` (and checks the routes agree, as it requires).
std::optional<Tracing> traced(const WaypointResources& w, const std::string& name) {
  const waypoint::RouteConfig rc = converted_route(w, name);
  const auto& vh = rc.virtual_hosts.at(0);
  if (!vh.tracing_provider) {
    CHECK_FALSE(vh.tracing);
    return std::nullopt;
  }
  Tracing t;
  REQUIRE(vh.tracing);
  REQUIRE(vh.tracing->random_sampling);
  CHECK(vh.tracing->random_sampling->denominator == 1'000'000);
  t.per_million = vh.tracing->random_sampling->numerator;
  t.report = vh.tracing_provider->report;
  t.cluster = vh.tracing_provider->collector_cluster;
  t.max_tag = vh.tracing_provider->max_path_tag_length;
  for (const auto& c : vh.tracing->custom_tags)
    t.tags[c.tag] = c.kind == waypoint::TracingCustomTag::Kind::Header ? "header:" + c.header : c.value;
  return t;
}

bool has_diag(const Diagnostics& d, Severity s, const std::string& object_part, const std::string& field,
              const std::string& needle) {
  for (const auto& x : d)
    if (x.severity == s && x.object.find(object_part) != std::string::npos && x.field == field &&
        x.message.find(needle) != std::string::npos)
      return true;
  return false;
}

}  // namespace

TEST_CASE("telemetry: MeshConfig defaultProviders alone trace every Service, at defaultConfig sampling") {
  auto c = compile_waypoint_yaml(kMesh);
  INFO(diags_text(c.all_diags()));
  const auto& w = served(c);
  check_waypoint_accepts(w);
  auto t = traced(w, kCalcRoute);
  REQUIRE(t);
  CHECK(t->per_million == 25'000);
  CHECK(t->report);
  CHECK(t->cluster == kZipkinCluster);
  CHECK(t->max_tag == 99);
  // The collector is an outbound cluster of the waypoint with the Zipkin pod as endpoint.
  REQUIRE(w.clusters.count(kZipkinCluster) == 1);
  REQUIRE(w.endpoints.count(kZipkinCluster) == 1);
  CHECK(w.endpoints.at(kZipkinCluster).any.find("10.0.2.1") != std::string::npos);
}

TEST_CASE("telemetry: target > namespace > root namespace, field by field; custom tags merge") {
  auto c = compile_waypoint_yaml(kMesh + R"(---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - randomSamplingPercentage: 10
    customTags:
      cluster: {literal: {value: east}}
      team: {literal: {value: platform}}
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: demo-ns, namespace: demo}
spec:
  tracing:
  - randomSamplingPercentage: 50
    customTags:
      team: {literal: {value: demo}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: calculate, namespace: demo}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  tracing:
  - match: {mode: SERVER}
    randomSamplingPercentage: 100
    customTags:
      user: {header: {name: x-user, defaultValue: nobody}}
  - match: {mode: CLIENT}
    randomSamplingPercentage: 0
)");
  INFO(diags_text(c.all_diags()));
  for (const auto& d : c.all_diags()) CHECK(d.severity != Severity::Error);
  const auto& w = served(c);
  check_waypoint_accepts(w);
  auto calc = traced(w, kCalcRoute);
  REQUIRE(calc);
  CHECK(calc->per_million == 1'000'000);  // the CLIENT entry does not apply to a waypoint's spans
  CHECK(calc->tags == std::map<std::string, std::string>{{"cluster", "east"}, {"team", "demo"}, {"user", "header:x-user"}});
  auto other = traced(w, kOtherRoute);
  REQUIRE(other);
  CHECK(other->per_million == 500'000);
  CHECK(other->tags == std::map<std::string, std::string>{{"cluster", "east"}, {"team", "demo"}});
}

TEST_CASE("telemetry: disableSpanReporting leaves the provider out; sampling 0 still configures") {
  auto c = compile_waypoint_yaml(kMesh + R"(---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: other}]
  tracing: [{disableSpanReporting: true}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: zero, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  tracing: [{providers: [{name: zipkin}], randomSamplingPercentage: 0}]
)");
  INFO(diags_text(c.all_diags()));
  const auto& w = served(c);
  check_waypoint_accepts(w);
  auto other = traced(w, kOtherRoute);
  REQUIRE(other);
  CHECK_FALSE(other->report);
  auto calc = traced(w, kCalcRoute);
  REQUIRE(calc);
  CHECK(calc->report);
  CHECK(calc->per_million == 0);
}

TEST_CASE("telemetry: bad fields are Errors naming them; the rest applies") {
  auto c = compile_waypoint_yaml(kMesh + R"(---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: bad-percent, namespace: demo}
spec:
  tracing: [{randomSamplingPercentage: 150}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: typo, namespace: demo}
spec:
  tracing: [{randomSampling: 5}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: otel, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: other}]
  tracing: [{providers: [{name: otel}], randomSamplingPercentage: 70}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: by-selector, namespace: demo}
spec:
  selector: {matchLabels: {app: calculate}}
  tracing: [{randomSamplingPercentage: 90}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: calculate, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: calculate}]
  tracing: [{randomSamplingPercentage: 40}]
)");
  const auto d = c.all_diags();
  INFO(diags_text(d));
  CHECK(has_diag(d, Severity::Error, "demo/bad-percent", "spec.tracing[0].randomSamplingPercentage", "[0, 100]"));
  CHECK(has_diag(d, Severity::Error, "demo/typo", "spec.tracing[0].randomSampling", "unknown field"));
  CHECK(has_diag(d, Severity::Error, "demo/otel", "spec.tracing[0].providers[0].name", "not a zipkin provider"));
  CHECK(has_diag(d, Severity::Warning, "demo/by-selector", "spec.selector", "not honoured"));
  const auto& w = served(c);
  check_waypoint_accepts(w);
  auto calc = traced(w, kCalcRoute);
  REQUIRE(calc);
  CHECK(calc->per_million == 400'000);  // the good Telemetry applied; the selector one did not
  CHECK_FALSE(traced(w, kOtherRoute));  // its provider is OpenTelemetry: no tracing config from us
}

TEST_CASE("telemetry: an ingress Gateway is traced by a Telemetry targeting it") {
  auto c = compile_waypoint_yaml(kMesh + R"(---
apiVersion: v1
kind: Namespace
metadata: {name: istio-ingress}
---
apiVersion: v1
kind: Pod
metadata: {name: ingress-0, namespace: istio-ingress, labels: {istio: ingressgateway}}
status: {podIP: 10.0.0.20}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calc, namespace: istio-ingress}
spec:
  hosts: [calc.example.com]
  gateways: [istio-ingress/gw]
  http: [{route: [{destination: {host: calculate.demo.svc.cluster.local, port: {number: 8080}}}]}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: gw, namespace: istio-ingress}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  tracing: [{randomSamplingPercentage: 100}]
)");
  INFO(diags_text(c.all_diags()));
  REQUIRE(c.result.by_proxy.count("ingress-0.istio-ingress") == 1);
  const auto& w = *c.result.by_proxy.at("ingress-0.istio-ingress");
  check_waypoint_accepts(w);
  auto t = traced(w, "http.80");
  REQUIRE(t);
  CHECK(t->per_million == 1'000'000);
  CHECK(t->report);
  CHECK(w.clusters.count(kZipkinCluster) == 1);
}
