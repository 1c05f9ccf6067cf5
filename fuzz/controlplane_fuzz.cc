// libFuzzer target: the control plane's Kubernetes YAML loader and compiler over arbitrary
// input (one manifest file), then the LOCAL_XDS_PATH writer. Must never crash, hang or leak an
// exception, and checks two invariants on every input:
//   - every diagnostic says something (a rejection without a reason is a bug);
//   - whatever compiled, the written file parses with ztunnel's own strict parser and writing
//     it again gives the same bytes (the `compile` command must never publish a file ztunnel
//     refuses).
// Built and linked against controlplane_lib by controlplane/CMakeLists.txt.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controlplane/compiler.h"
#include "controlplane/k8s_loader.h"
#include "common/model/local_config_writer.h"
#include "common/model/local_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  controlplane::Diagnostics diags;
  controlplane::ResourceSet set;
  controlplane::parse_manifests(input, "fuzz.yaml", set, diags);
  controlplane::remove_duplicates(set, diags);
  auto state = controlplane::compile(set, controlplane::CompileOptions{});
  for (const auto* list : {&diags, &state.diagnostics}) {
    for (const auto& d : *list) {
      if (d.message.empty()) std::abort();
      (void)d.to_string();
    }
  }

  const std::string yaml = ztunnel::to_local_xds_yaml(state.config);
  auto parsed = ztunnel::parse_local_config(yaml);
  if (!parsed.ok()) std::abort();
  if (parsed->workloads.size() != state.config.workloads.size() ||
      parsed->services.size() != state.config.services.size() ||
      parsed->policies.size() != state.config.policies.size()) {
    std::abort();
  }
  if (ztunnel::to_local_xds_yaml(*parsed) != yaml) std::abort();
  return 0;
}
