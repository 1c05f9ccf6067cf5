// Writer for upstream ztunnel's LOCAL_XDS_PATH format: the inverse of
// ztunnel::parse_local_config (ztunnel/local_config.h). camelCase keys, enums spelled as
// upstream serialises them, string matches as {Exact: ..} / {Prefix: ..} / {Suffix: ..} /
// {Presence: []}, workloads carrying `services: {"ns/hostname": {port: targetPort}}`.
// Contract (tested): parse_local_config(to_local_xds_yaml(c)) succeeds and describes the same
// config, and writing that again gives the same bytes.
//
// write_file_atomically() is how the `compile` command publishes a result: a ztunnel watching
// the file sees the old content or the new one, never a half-written file.
//
// Threading: pure functions; write_file_atomically touches only `path` and a temporary file
// next to it.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "ztunnel/local_config.h"

namespace controlplane {

// `header` (may be empty) is written first as YAML comment lines.
std::string to_local_xds_yaml(const ztunnel::LocalConfig& config, std::string_view header = {});

// Writes `content` to a hidden temporary file in the directory of `path`, fsyncs it, renames
// it over `path` and fsyncs the directory. On failure `path` is unchanged and the temporary
// file removed.
common::Status write_file_atomically(const std::string& path, std::string_view content);

}  // namespace controlplane
