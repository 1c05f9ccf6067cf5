// /debug/pprof/profile and /debug/pprof/heap on the admin listener, where operators of
// upstream ztunnel look for them.
//
// CPU: `GET /debug/pprof/profile?seconds=N` (default 10, 1..300) samples every thread for N
// seconds with gperftools' CPU profiler and answers the profile (gperftools' binary format,
// which `pprof` / `google-pprof` read: `google-pprof --text <binary> profile.out`). The
// profiler library (libprofiler.so.0, Debian package libgoogle-perftools4) is loaded with
// dlopen on the first request, so a process that is never profiled never maps it; without it
// the endpoint answers 501 naming the package. One profile at a time (409 while one runs);
// sanitizer builds answer 501 (the SIGPROF unwinder and ASan do not mix).
// Heap: 501 with the reason. Upstream's heap profile comes from jemalloc; ours runs on glibc
// malloc, which keeps no per-call-site statistics to export.
//
// Threading: handlers run on the admin server's loop; the profile's end is a timer on `io`.
#pragma once

#include "common/admin/http_admin.h"

namespace common::pprof {

void mount(http::HttpServer& admin, boost::asio::io_context& io);

}  // namespace common::pprof
