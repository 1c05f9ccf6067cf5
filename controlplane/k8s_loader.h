// Loader: Kubernetes-style YAML (one or many documents per file, `---` separated, `kind: List`
// accepted) into a ResourceSet. Kinds read: Namespace, ServiceAccount, Pod, Service (core/v1),
// EndpointSlice (discovery.k8s.io/v1),
// WorkloadEntry (networking.istio.io), Gateway (gateway.networking.k8s.io) and
// AuthorizationPolicy (security.istio.io). Anything else is ignored with an Info diagnostic.
//
// Error policy: one bad object never stops the rest. A document that is not valid YAML, or an
// object whose fields have the wrong type or format, is reported (file, object, field) as an
// Error and left out; every other object is kept. Kubernetes objects carry many fields we do
// not use, so unknown fields are ignored — except inside an AuthorizationPolicy spec, where a
// misspelt key would silently change who is allowed in, so there they are errors.
//
// Threading: pure functions over their arguments. yaml-cpp exceptions are caught inside and
// never escape.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"

namespace controlplane {

// Files larger than this are rejected unread (a manifest directory is hand-written; a huge file
// is a mistake and yaml-cpp's memory use grows fast).
inline constexpr size_t kMaxManifestBytes = 16 * 1024 * 1024;

// Parses every document of one file's text into `out`. `file` is only used in diagnostics.
void parse_manifests(std::string_view text, const std::string& file, ResourceSet& out, Diagnostics& diags);

// The files a directory scan reads: regular files directly in `dir` ending in .yaml, .yml or
// .json, not hidden (editors' swap and backup files), sorted by name, minus `exclude`
// (compared after canonicalisation; used to skip our own output file).
common::Result<std::vector<std::string>> manifest_files(const std::string& dir,
                                                        const std::vector<std::string>& exclude = {});

// Drops objects that repeat an earlier one's kind, namespace and name (first wins; the others
// are reported as Errors).
void remove_duplicates(ResourceSet& set, Diagnostics& diags);

// Reads and parses every manifest file of `dir`, then drops duplicates (same kind, namespace
// and name: the first one in file order wins, the others are Errors). Fails only when the
// directory itself cannot be listed; unreadable files are Errors.
common::Result<ResourceSet> load_directory(const std::string& dir, Diagnostics& diags,
                                           const std::vector<std::string>& exclude = {});

}  // namespace controlplane
