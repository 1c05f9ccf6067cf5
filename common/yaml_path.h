// Helpers shared by the two strict YAML readers (ztunnel's LOCAL_XDS_PATH file and the
// controlplane's Kubernetes manifests): field paths for error messages ("spec.ports[2].port"),
// a YAML node's type in words, and strict UTF-8 validation.
//
// Threading: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace YAML {
class Node;
}

namespace common::yaml {

// "a.b" ("b" alone when the path is empty).
std::string join(const std::string& path, std::string_view key);
// "a[3]".
std::string index(const std::string& path, size_t i);
// "a map", "a list", "a scalar", "null" or "undefined", for "expected X, got Y" messages.
std::string_view type_name(const YAML::Node& n);
// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. Every string the
// readers keep ends up in JSON (/config_dump), YAML output, logs or metric labels.
bool valid_utf8(std::string_view s);

}  // namespace common::yaml
