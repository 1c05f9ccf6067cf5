// Readers for rate limit policies (ratelimit_policy.h): our RateLimitPolicy
// (ambient.dev/v1alpha1) and the rate limit patches of an Istio EnvoyFilter. Called by the
// manifest loader (k8s_loader.cc) inside its per-object error handling: a bad field throws a
// yaml::FieldError naming it, and only that object is left out.
//
// Strictness: RateLimitPolicy keys are checked strictly (a misspelt `maxToken` must not
// silently mean "no limit"). EnvoyFilter is Envoy's config in YAML: the rate limit messages are
// read strictly too (snake_case or the camelCase protojson also accepts); patches that are not
// about rate limits are recorded as warnings and not applied.
//
// Threading: pure functions.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>

#include "controlplane/ratelimit_policy.h"
#include "controlplane/yaml_reader.h"

namespace controlplane {

RateLimitPolicyObject read_rate_limit_policy(yaml::Reader& r, const YAML::Node& doc, const ObjectMeta& meta);

// nullopt when the EnvoyFilter carries no rate limit patch (the caller reports it ignored).
std::optional<RateLimitPolicyObject> read_envoy_filter_rate_limits(yaml::Reader& r, const YAML::Node& doc,
                                                                   const ObjectMeta& meta);

}  // namespace controlplane
