// Build identity of this binary: what `--version`, `ztunnel version`, /config_dump "version"
// and the istio_build metric report. The values are fixed at configure time (CMake passes
// the git revision, tree state and build type to build_info.cc only), so nothing else
// recompiles when they change.
//
// Threading: immutable after static initialisation; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace common {

struct BuildInfo {
  std::string version;        // project version, e.g. "0.1.0"
  std::string git_revision;   // full commit hash, "unknown" outside a git checkout
  std::string build_status;   // "Clean" | "Modified" (uncommitted changes at configure time)
  std::string build_profile;  // CMake build type lower-cased: "release", "debug", ...
  std::string compiler;       // e.g. "gcc 12.2.0": the field upstream fills with rustc's version
  std::string crypto_provider = "openssl";
};

const BuildInfo& build_info();

// One line in upstream's Display form:
// version.BuildInfo{Version:"...", GitRevision:"...", RustVersion:"...", BuildProfile:"...",
// BuildStatus:"...", GitTag:"...", IstioVersion:"..."}
std::string build_info_line(std::string_view istio_version);

}  // namespace common
