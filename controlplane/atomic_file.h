// write_file_atomically(): how the `compile` command publishes a result, so that a ztunnel
// watching the file sees the old content or the new one, never a half-written file.
// Threading: touches only `path` and a temporary file next to it; any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace controlplane {

// Writes `content` to a hidden temporary file in the directory of `path`, fsyncs it, renames
// it over `path` and fsyncs the directory. On failure `path` is unchanged and the temporary
// file removed.
common::Status write_file_atomically(const std::string& path, std::string_view content);

}  // namespace controlplane
