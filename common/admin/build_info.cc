#include "common/admin/build_info.h"

#include <cctype>

#ifndef AMBIENT_VERSION
#define AMBIENT_VERSION "0.0.0"
#endif
#ifndef AMBIENT_GIT_REVISION
#define AMBIENT_GIT_REVISION "unknown"
#endif
#ifndef AMBIENT_BUILD_STATUS
#define AMBIENT_BUILD_STATUS "unknown"
#endif
#ifndef AMBIENT_BUILD_PROFILE
#define AMBIENT_BUILD_PROFILE "unknown"
#endif

namespace common {

namespace {

std::string compiler_version() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const BuildInfo& build_info() {
  static const BuildInfo info{AMBIENT_VERSION, AMBIENT_GIT_REVISION, AMBIENT_BUILD_STATUS, lower(AMBIENT_BUILD_PROFILE),
                              compiler_version()};
  return info;
}

std::string build_info_line(std::string_view istio_version) {
  const auto& b = build_info();
  std::string out = "version.BuildInfo{Version:\"" + b.version + "\", GitRevision:\"" + b.git_revision +
                    "\", RustVersion:\"" + b.compiler + "\", BuildProfile:\"" + b.build_profile + "\", BuildStatus:\"" +
                    b.build_status + "\", GitTag:\"" + b.version + "\", IstioVersion:\"";
  out += istio_version;
  out += "\"}";
  return out;
}

}  // namespace common
