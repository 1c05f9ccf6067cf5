// Istio's MeshConfig, the part the control plane compiles into waypoint and gateway config:
// `extensionProviders` (external authorization over gRPC or HTTP, Zipkin tracing),
// `defaultProviders`, and `defaultConfig.tracing`. As istiod, it is read from the ConfigMap
// `istio` in the system namespace (`istio-system`), key `mesh`, whose value is YAML text: in a
// `--dir` tree that ConfigMap is one more object file; with `--kube` the same object arrives
// from the API server.
//
// Threading: plain values, built by the loader, read by the compilers.
// Invariants: provider names are unique (a duplicate is an Error on the later one, which is
// left out); every provider kept has a non-empty `service` and a port in 1..65535; timeouts
// are milliseconds > 0. A provider kind we do not implement (opentelemetry, skywalking, ...)
// is kept with `kind == Unsupported` so a policy naming it is reported as such, not as unknown.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>


namespace YAML {
class Node;
}

namespace controlplane {

namespace yaml {
class Reader;
}

// EnvoyExternalAuthorizationRequestBody (includeRequestBodyInCheck).
struct ExtAuthzBodySettings {
  uint32_t max_request_bytes = 0;  // 0 = not set: Envoy then buffers nothing beyond the headers
  bool allow_partial_message = false;
  bool pack_as_bytes = false;  // gRPC only
};

struct ExtensionProvider {
  enum class Kind : uint8_t { ExtAuthzGrpc, ExtAuthzHttp, Zipkin, Unsupported };
  std::string name;
  Kind kind = Kind::Unsupported;
  std::string unsupported_kind;  // the YAML key of an Unsupported provider ("opentelemetry")
  std::string path;              // "extensionProviders[2]" for diagnostics

  // ext_authz (both kinds) and zipkin
  std::string service;  // "ext-authz.foo.svc.cluster.local", "foo/ext-authz.foo.svc.cluster.local" or a short name
  uint16_t port = 0;

  // ext_authz
  uint64_t timeout_ms = 600'000;  // Istio's default: 600 s
  bool fail_open = false;
  uint32_t status_on_error = 403;  // Istio's default when unset
  std::optional<ExtAuthzBodySettings> include_request_body;
  // ext_authz HTTP only
  std::string path_prefix;
  std::vector<std::string> include_request_headers;  // includeRequestHeadersInCheck (+ deprecated includeHeadersInCheck)
  std::map<std::string, std::string> include_additional_headers;
  std::vector<std::string> headers_to_upstream_on_allow;
  std::vector<std::string> headers_to_downstream_on_allow;
  std::vector<std::string> headers_to_downstream_on_deny;

  // zipkin
  uint32_t max_tag_length = 256;  // Istio's default
  bool enable_64bit_trace_id = false;
};

struct MeshConfigObject {
  std::string file, object;  // where it came from, for diagnostics
  std::vector<ExtensionProvider> extension_providers;
  std::vector<std::string> default_tracing_providers;  // defaultProviders.tracing
  std::optional<double> default_tracing_sampling;       // defaultConfig.tracing.sampling, percent
  std::string default_zipkin_address;                   // defaultConfig.tracing.zipkin.address

  const ExtensionProvider* provider(const std::string& name) const {
    for (const auto& p : extension_providers)
      if (p.name == name) return &p;
    return nullptr;
  }
};

// The ConfigMap istiod reads: name `istio` in the system namespace.
inline constexpr const char* kMeshConfigMapName = "istio";
inline constexpr const char* kSystemNamespace = "istio-system";

// Reads the MeshConfig YAML text (the ConfigMap's `data.mesh`). Fields of MeshConfig this
// control plane does not use are accepted and ignored (MeshConfig has dozens, most of them
// sidecar settings); the ones above are checked strictly. A bad provider is returned in
// `errors` as (field path, message) and left out; a bad top-level field fails the whole text
// (thrown as yaml::FieldError with the path under `data.mesh`).
MeshConfigObject read_mesh_config(yaml::Reader& r, const std::string& text, const std::string& path,
                                  std::vector<std::pair<std::string, std::string>>& errors);

}  // namespace controlplane
