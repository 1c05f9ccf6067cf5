// Logging setup on spdlog: level filters in the RUST_LOG style, plain or JSON lines
// (LOG_FORMAT), and runtime changes for the admin /logging endpoint.
//
// Filter grammar (a subset of RUST_LOG): comma-separated directives, each either a level
// ("info") that sets the default, or "<logger>=<level>" for one named spdlog logger
// ("access=off,debug"). Levels: trace, debug, info, warn|warning, error, off.
//
// Output (stdout, like upstream):
//   plain: 2024-05-08T17:43:54.385727Z  info  <logger>  <message>
//   json:  {"level":"info","time":"...","scope":"<logger>","message":"..."}
// The "access" logger in JSON mode expects its message to be a JSON object and merges its
// members into the line (see access_log.h).
//
// Threading: init() once at startup before other threads log. set_filter(), reset(),
// current_filter() and logger() are thread-safe (mutex; control-plane path). Logging itself
// is spdlog's (thread-safe sinks).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/fwd.h>

#include "common/result.h"

namespace common::log {

enum class Format { Plain, Json };

Result<Format> parse_format(std::string_view s);  // "plain" | "json"
// Checks a filter without applying it (config validation).
Status validate_filter(std::string_view filter);

// Installs the sinks and formatter, makes a logger named `default_name` the spdlog default,
// creates the "access" logger, and applies `filter`, which also becomes the reset() target.
Status init(std::string_view filter, Format format, std::string_view default_name = "ztunnel");

// Applies a new filter; unknown logger names are remembered for loggers created later.
Status set_filter(std::string_view filter);
// Returns to the filter given to init().
void reset();
// The filter currently in effect, as text.
std::string current_filter();
Format format();

// A named logger with the project's sinks, format and filter (created on first use).
std::shared_ptr<spdlog::logger> logger(std::string_view name);

}  // namespace common::log
