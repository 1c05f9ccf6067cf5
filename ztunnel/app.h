// App: wires one ztunnel process together — config, logging, runtime, certificates, the
// configuration source, the proxy, admin/stats/readiness listeners, signals and drain.
// Threading: constructed and run on the main thread, which becomes the control thread.
#pragma once

#include "ztunnel/config.h"

namespace ztunnel {

// Runs until shutdown; returns the process exit code. Errors at start are printed naming the
// setting at fault and return non-zero.
int run_app(const Config& config);

}  // namespace ztunnel
