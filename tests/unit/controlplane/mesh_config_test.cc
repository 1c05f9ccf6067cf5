// controlplane/mesh_config: the ConfigMap istio-system/istio (MeshConfig) as istiod reads it.
#include <catch2/catch.hpp>

#include "controlplane/k8s_loader.h"

using namespace controlplane;

namespace {

bool has_diag(const Diagnostics& d, Severity s, const std::string& field, const std::string& needle) {
  for (const auto& x : d)
    if (x.severity == s && x.field == field && x.message.find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("mesh config: extension providers, default providers and tracing defaults", "[mesh]") {
  ResourceSet set;
  Diagnostics diags;
  parse_manifests(R"(
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    accessLogFile: /dev/stdout
    defaultConfig:
      discoveryAddress: istiod.istio-system.svc:15012
      tracing:
        sampling: 12.5
        zipkin: {address: zipkin.istio-system:9411}
    defaultProviders:
      tracing: [zipkin]
    extensionProviders:
    - name: sample-ext-authz-grpc
      envoyExtAuthzGrpc:
        service: ext-authz.foo.svc.cluster.local
        port: 9000
        timeout: 2s
        failOpen: true
        statusOnError: "503"
        includeRequestBodyInCheck: {maxRequestBytes: 4096, allowPartialMessage: true, packAsBytes: true}
    - name: sample-ext-authz-http
      envoyExtAuthzHttp:
        service: ext-authz.foo.svc.cluster.local
        port: "8000"
        pathPrefix: /check
        includeRequestHeadersInCheck: [X-Ext-Authz]
        includeAdditionalHeadersInCheck: {X-Added: "yes"}
        headersToUpstreamOnAllow: [x-ext-authz-check-result]
        headersToDownstreamOnDeny: [x-ext-authz-check-result]
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 64}
    - name: otel
      opentelemetry: {service: otel.istio-system.svc.cluster.local, port: 4317}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-settings, namespace: default}
data: {mesh: "not: [ours"}
)",
                  "mesh.yaml", set, diags);
  for (const auto& d : diags) INFO(d.field << ": " << d.message);
  REQUIRE(set.mesh);
  const MeshConfigObject& m = *set.mesh;
  CHECK(m.file == "mesh.yaml");
  REQUIRE(m.extension_providers.size() == 4);
  const ExtensionProvider* g = m.provider("sample-ext-authz-grpc");
  REQUIRE(g);
  CHECK(g->kind == ExtensionProvider::Kind::ExtAuthzGrpc);
  CHECK(g->service == "ext-authz.foo.svc.cluster.local");
  CHECK(g->port == 9000);
  CHECK(g->timeout_ms == 2000);
  CHECK(g->fail_open);
  CHECK(g->status_on_error == 503);
  REQUIRE(g->include_request_body);
  CHECK(g->include_request_body->max_request_bytes == 4096);
  CHECK(g->include_request_body->allow_partial_message);
  CHECK(g->include_request_body->pack_as_bytes);
  const ExtensionProvider* h = m.provider("sample-ext-authz-http");
  REQUIRE(h);
  CHECK(h->kind == ExtensionProvider::Kind::ExtAuthzHttp);
  CHECK(h->port == 8000);
  CHECK(h->timeout_ms == 600000);  // Istio's default
  CHECK_FALSE(h->fail_open);
  CHECK(h->status_on_error == 403);
  CHECK(h->path_prefix == "/check");
  CHECK(h->include_request_headers == std::vector<std::string>{"x-ext-authz"});
  CHECK(h->include_additional_headers.at("x-added") == "yes");
  CHECK(h->headers_to_upstream_on_allow == std::vector<std::string>{"x-ext-authz-check-result"});
  CHECK(h->headers_to_downstream_on_deny == std::vector<std::string>{"x-ext-authz-check-result"});
  const ExtensionProvider* z = m.provider("zipkin");
  REQUIRE(z);
  CHECK(z->kind == ExtensionProvider::Kind::Zipkin);
  CHECK(z->max_tag_length == 64);
  const ExtensionProvider* o = m.provider("otel");
  REQUIRE(o);
  CHECK(o->kind == ExtensionProvider::Kind::Unsupported);
  CHECK(o->unsupported_kind == "opentelemetry");
  CHECK(m.default_tracing_providers == std::vector<std::string>{"zipkin"});
  REQUIRE(m.default_tracing_sampling);
  CHECK(*m.default_tracing_sampling == 12.5);
  CHECK(m.default_zipkin_address == "zipkin.istio-system:9411");
  // Another ConfigMap is application data: ignored with an Info, never parsed.
  CHECK(has_diag(diags, Severity::Info, "", "not the mesh config"));
  for (const auto& d : diags) CHECK(d.severity == Severity::Info);
}

TEST_CASE("mesh config: a bad provider is an Error naming its field; the other providers apply", "[mesh]") {
  ResourceSet set;
  Diagnostics diags;
  parse_manifests(R"(
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: no-port
      envoyExtAuthzGrpc: {service: a.b.svc.cluster.local}
    - name: two-kinds
      envoyExtAuthzGrpc: {service: a, port: 1}
      zipkin: {service: z, port: 2}
    - name: typo
      envoyExtAuthzHttp: {service: a, port: 80, pathPrefx: /x}
    - name: bad-status
      envoyExtAuthzHttp: {service: a, port: 80, statusOnError: "abc"}
    - name: good
      envoyExtAuthzHttp: {service: a.b.svc.cluster.local, port: 80}
    - name: good
      zipkin: {service: z, port: 9411}
)",
                  "mesh.yaml", set, diags);
  REQUIRE(set.mesh);
  REQUIRE(set.mesh->extension_providers.size() == 1);
  CHECK(set.mesh->extension_providers[0].name == "good");
  CHECK(set.mesh->extension_providers[0].kind == ExtensionProvider::Kind::ExtAuthzHttp);
  CHECK(has_diag(diags, Severity::Error, "data.mesh.extensionProviders[0].envoyExtAuthzGrpc.port", "required"));
  CHECK(has_diag(diags, Severity::Error, "data.mesh.extensionProviders[1]", "exactly one provider kind"));
  CHECK(has_diag(diags, Severity::Error, "data.mesh.extensionProviders[2].envoyExtAuthzHttp.pathPrefx", "unknown field"));
  CHECK(has_diag(diags, Severity::Error, "data.mesh.extensionProviders[3].envoyExtAuthzHttp.statusOnError", "integer"));
  CHECK(has_diag(diags, Severity::Error, "data.mesh.extensionProviders[5].name", "duplicate"));
}

TEST_CASE("mesh config: unreadable text fails the object naming data.mesh; a second one is refused", "[mesh]") {
  ResourceSet set;
  Diagnostics diags;
  parse_manifests(R"(
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: "defaultConfig: [unclosed"
)",
                  "bad.yaml", set, diags);
  CHECK_FALSE(set.mesh);
  CHECK(has_diag(diags, Severity::Error, "data.mesh", "not valid YAML"));

  ResourceSet two;
  Diagnostics d2;
  parse_manifests(R"(
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data: {mesh: "defaultProviders: {tracing: [a]}"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data: {mesh: "defaultProviders: {tracing: [b]}"}
)",
                  "two.yaml", two, d2);
  REQUIRE(two.mesh);
  CHECK(two.mesh->default_tracing_providers == std::vector<std::string>{"a"});
  CHECK(has_diag(d2, Severity::Error, "", "a second mesh config"));
  // No data at all: every default.
  ResourceSet empty;
  Diagnostics d3;
  parse_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n", "e.yaml",
                  empty, d3);
  REQUIRE(empty.mesh);
  CHECK(empty.mesh->extension_providers.empty());
  CHECK(d3.empty());
}
