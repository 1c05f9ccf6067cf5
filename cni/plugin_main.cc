// ambient-cni-plugin: the CNI plugin alone (cni/plugin.h), linked statically so the node agent
// can copy it into the host's CNI bin directory as `ambient-cni` and the container runtime can
// run it on any host, whatever libraries the host has. Same behaviour as `ambient-cni` with
// CNI_COMMAND set.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
  return cni::run_plugin_invocation([](const std::string& ctl, const nlohmann::json& req, int fd) {
    return cni::plugin_ctl_call(ctl, req, fd, std::chrono::seconds(25));
  });
}
