#include "common/xds/node.h"

#include <spdlog/spdlog.h>

#include "common/admin/log.h"

namespace common::xds {

Node build_node(const NodeInputs& in) {
  Node n;
  // INSTANCE_IPS carries the same address as the id, so istiod sees one consistent value.
  const std::string ip = in.instance_ip.empty() ? std::string(kDefaultInstanceIp) : in.instance_ip;
  n.id = in.proxy_type + "~" + ip + "~" + in.pod_name + "." + in.pod_namespace + "~" + in.pod_namespace +
         ".svc.cluster.local";
  n.metadata["NAME"] = in.pod_name;
  n.metadata["NAMESPACE"] = in.pod_namespace;
  n.metadata["INSTANCE_IPS"] = ip;
  n.metadata["NODE_NAME"] = in.node_name;
  for (const auto& [k, v] : in.istio_meta) n.metadata[k] = v;
  for (const auto& [k, v] : in.istio_meta_json) {
    nlohmann::json parsed = nlohmann::json::parse(v, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      common::log::logger("xds")->warn("ISTIO_METAJSON_{}: invalid JSON, not sent in node metadata", k);
      continue;
    }
    n.metadata[k] = std::move(parsed);
  }
  return n;
}

}  // namespace common::xds
