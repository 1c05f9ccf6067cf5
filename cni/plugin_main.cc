// ambient-cni-plugin: the CNI plugin alone (cni/plugin.h), linked statically so the node agent
// can copy it into the host's CNI bin directory as `ambient-cni` and the container runtime can
// run it on any host, whatever libraries the host has. Same behaviour as `ambient-cni` with
// CNI_COMMAND set.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "cni/plugin.h"
#include "cni/plugin_ctl.h"

int main(int argc, char** argv) {
  if (std::getenv("CNI_COMMAND") == nullptr) {
    if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
      std::printf("ambient-cni-plugin %s\n", AMBIENT_VERSION);
      return 0;
    }
    std::fprintf(stderr, "ambient-cni-plugin: a CNI plugin; run by a container runtime with CNI_COMMAND set\n");
    return 2;
  }
  std::map<std::string, std::string> env;
  for (const char* k : {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"}) {
    if (const char* v = std::getenv(k)) env[k] = v;
  }
  std::string input;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(0, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    input.append(buf, static_cast<std::size_t>(n));
    if (input.size() > (1u << 20)) break;  // a network config is a few KiB
  }
  auto call = [](const std::string& ctl, const nlohmann::json& req, int fd) {
    return cni::plugin_ctl_call(ctl, req, fd, std::chrono::seconds(25));
  };
  const cni::PluginOutcome r = cni::run_plugin(env, input, call);
  if (!r.log.empty()) std::fprintf(stderr, "%s\n", r.log.c_str());
  if (!r.out.empty()) std::fprintf(stdout, "%s\n", r.out.c_str());
  std::fflush(stdout);
  return r.exit_code;
}
