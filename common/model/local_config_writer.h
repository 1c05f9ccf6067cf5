// Writer for upstream ztunnel's LOCAL_XDS_PATH format: the inverse of
// ztunnel::parse_local_config (common/model/local_config.h). camelCase keys, enums spelled as
// upstream serialises them, string matches as {Exact: ..} / {Prefix: ..} / {Suffix: ..} /
// {Presence: []}, workloads carrying `services: {"ns/hostname": {port: targetPort}}`.
// Contract (tested): parse_local_config(to_local_xds_yaml(c)) succeeds and describes the same
// config, and writing that again gives the same bytes.
//
// Threading: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/model/local_config.h"

namespace ztunnel {

// `header` (may be empty) is written first as YAML comment lines.
std::string to_local_xds_yaml(const ztunnel::LocalConfig& config, std::string_view header = {});

}  // namespace ztunnel
