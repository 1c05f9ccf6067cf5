// Istio's Telemetry API, the tracing part (telemetry.istio.io v1 / v1alpha1 `Telemetry`), as the
// control plane reads it and resolves it for one waypoint-served Service or one ingress Gateway
// (docs/tracing.md):
//   scope: a Telemetry in the root namespace (istio-system) without selector/targetRefs is
//     mesh-wide; elsewhere without them namespace-wide; with `targetRefs` (kind Service or
//     Gateway) it applies to that Service (at its waypoint) or Gateway, as ambient does.
//     `selector` is not honoured at waypoints (Warning, as istiod says) nor at our gateways.
//   precedence (Istio's): target > namespace > root; each more specific level overrides the
//     fields it sets (providers, randomSamplingPercentage, disableSpanReporting; customTags
//     merge by tag name). Within a level the first Telemetry in name order wins (istiod picks
//     the oldest; we have no creation time) and the others get a Warning.
//   tracing[] entries: those whose match.mode is SERVER or CLIENT_AND_SERVER (the default)
//     apply: the waypoint's and the gateway's spans are SERVER spans. A CLIENT-only entry is
//     accepted and does nothing here.
//   provider: tracing[].providers[0].name, else MeshConfig defaultProviders.tracing[0]; it must
//     be a `zipkin` extensionProvider. Sampling: randomSamplingPercentage, else MeshConfig
//     defaultConfig.tracing.sampling, else Istio's 1 %.
// Bad fields are Errors naming the field and drop that Telemetry; the rest applies.
// Threading: plain values and pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/diagnostics.h"
#include "controlplane/mesh_config.h"

namespace YAML {
class Node;
}

namespace controlplane {

namespace yaml {
class Reader;
}
struct ObjectMeta;

struct TelemetryCustomTag {
  enum class Kind : uint8_t { Literal, Header, Environment };
  Kind kind = Kind::Literal;
  std::string value;          // Literal
  std::string name;           // Header / Environment
  std::string default_value;  // Header / Environment
};

struct TelemetryTracing {
  std::string path;  // "spec.tracing[0]" for diagnostics
  bool server = true;  // match.mode SERVER or CLIENT_AND_SERVER
  std::vector<std::string> providers;
  std::optional<double> random_sampling_percentage;
  std::optional<bool> disable_span_reporting;
  std::map<std::string, TelemetryCustomTag> custom_tags;
};

struct TelemetryTargetRef {
  std::string group, kind, name;
};

struct TelemetryObject {
  std::string name, ns;
  std::string file, object;
  bool has_selector = false;
  std::vector<TelemetryTargetRef> target_refs;
  std::vector<TelemetryTracing> tracing;
};

inline constexpr const char* kTelemetryGroup = "telemetry.istio.io";

// spec: selector, targetRef(s), tracing (strict); metrics / accessLogging are accepted and
// ignored (not implemented: no Warning per object, docs/tracing.md says so). Throws
// yaml::FieldError naming the field.
TelemetryObject read_telemetry(yaml::Reader& r, const YAML::Node& doc, const ObjectMeta& meta);

// What one Service (at its waypoint) or Gateway gets.
struct ResolvedTracing {
  const ExtensionProvider* provider = nullptr;  // the Zipkin provider; null = no tracing config
  double sampling_percent = 1.0;
  bool report = true;  // false = disableSpanReporting
  std::map<std::string, TelemetryCustomTag> custom_tags;
};

// `target_kind` "Service" or "Gateway", `target_name` its name in `ns`. nullopt = no tracing
// from the control plane (no provider in effect, or it is not a known `zipkin` provider: then
// the proxy's own settings apply, as with no Telemetry at all).
std::optional<ResolvedTracing> resolve_tracing(const std::vector<TelemetryObject>& telemetries,
                                               const MeshConfigObject* mesh, const std::string& ns,
                                               const std::string& target_kind, const std::string& target_name);

// The findings that do not depend on a target, once per compile: Errors for a provider name
// that is not in MeshConfig or not `zipkin`; Warnings for `selector` and for a second
// Telemetry at one level.
void check_telemetries(const std::vector<TelemetryObject>& telemetries, const MeshConfigObject* mesh,
                       Diagnostics& diags);

}  // namespace controlplane
