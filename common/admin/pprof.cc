#include "common/admin/pprof.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <spdlog/spdlog.h>

namespace common::pprof {

namespace asio = boost::asio;
using http::Request;
using http::Response;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

struct Profiler {
  int (*start)(const char*) = nullptr;
  void (*stop)() = nullptr;
  std::string error;
};

// Loaded once, on first use; never unloaded (its signal handler may still be installed).
const Profiler& profiler() {
  static const Profiler p = [] {
    Profiler out;
    void* h = ::dlopen("libprofiler.so.0", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      out.error = std::string("CPU profiling needs libprofiler.so.0 (Debian package libgoogle-perftools4): ") +
                  ::dlerror() + "\n";
      return out;
    }
    out.start = reinterpret_cast<int (*)(const char*)>(::dlsym(h, "ProfilerStart"));
    out.stop = reinterpret_cast<void (*)()>(::dlsym(h, "ProfilerStop"));
    if (out.start == nullptr || out.stop == nullptr) out.error = "libprofiler.so.0 lacks ProfilerStart/ProfilerStop\n";
    return out;
  }();
  return p;
}

std::atomic<bool> busy{false};

}  // namespace

void mount(http::HttpServer& admin, asio::io_context& io) {
  admin.route_async("/debug/pprof/profile", [&io](const Request& req, std::function<void(Response)> respond) {
    int seconds = 10;
    if (auto v = req.query_param("seconds")) {
      char* end = nullptr;
      long n = std::strtol(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0' || n < 1 || n > 300) {
        return respond(Response::text(400, "seconds must be an integer from 1 to 300\n"));
      }
      seconds = static_cast<int>(n);
    }
    if (kSanitized) return respond(Response::text(501, "CPU profiling is disabled in sanitizer builds\n"));
    const Profiler& p = profiler();
    if (!p.error.empty()) return respond(Response::text(501, p.error));
    if (busy.exchange(true)) return respond(Response::text(409, "a CPU profile is already running\n"));
    // The profile goes through a file (gperftools writes one); /tmp is an emptyDir in the chart.
    char path[] = "/tmp/pprof-cpu.XXXXXX";
    int fd = ::mkstemp(path);
    if (fd < 0) {
      busy = false;
      return respond(Response::text(500, "cannot create a temporary file in /tmp\n"));
    }
    ::close(fd);
    if (p.start(path) == 0) {
      ::unlink(path);
      busy = false;
      return respond(Response::text(500, "ProfilerStart failed\n"));
    }
    spdlog::info("CPU profile started for {} s", seconds);
    auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::seconds(seconds));
    std::string file(path);
    timer->async_wait([timer, file, respond = std::move(respond)](const boost::system::error_code&) {
      profiler().stop();
      std::ifstream in(file, std::ios::binary);
      std::ostringstream body;
      body << in.rdbuf();
      ::unlink(file.c_str());
      busy = false;
      Response r;
      r.content_type = "application/octet-stream";
      r.body = body.str();
      spdlog::info("CPU profile done: {} bytes", r.body.size());
      respond(std::move(r));
    });
  });
  admin.route("/debug/pprof/heap", [](const Request&) {
    return Response::text(501,
                          "heap profiles are not available: this build uses glibc malloc, which keeps no per-call-site "
                          "statistics (upstream's come from jemalloc); use /debug/pprof/profile for CPU\n");
  });
}

}  // namespace common::pprof
