// App: wires one waypoint process together — config, logging, runtime, its own certificate
// (SecretManager + CA), the xDS configuration source, the data path (Proxy), admin/stats/
// readiness listeners, signals and drain.
// Threading: run on the main thread, which becomes the control thread.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "waypoint/config.h"
#include "waypoint/config_source.h"

namespace waypoint {

// Runs until shutdown; returns the process exit code.
int run_app(const Config& config);

// The routes/clusters/endpoints part of /config_dump.
nlohmann::json dump_snapshot(const ConfigSnapshot& snapshot);

}  // namespace waypoint
