// xDS node identity: the `envoy.config.core.v3.Node` a proxy presents on its delta ADS stream,
// kept as a plain struct so no caller needs protobuf. build_node() applies upstream ztunnel's
// rules (ztunnel-facts §4.2) and is shared by ztunnel and the waypoint:
//   id       = "<proxy_type>~<INSTANCE_IP or 1.1.1.1>~<POD_NAME>.<POD_NAMESPACE>~<POD_NAMESPACE>.svc.cluster.local"
//   metadata = {NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME} then every ISTIO_META_<k> as a string,
//              then every ISTIO_METAJSON_<k> parsed as JSON (invalid JSON: warning, skipped).
// Later entries override earlier ones with the same key (as upstream's map insertions do).
//
// Threading: pure functions and value types.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace common::xds {

struct Node {
  std::string id;
  // Always a JSON object; becomes Node.metadata (google.protobuf.Struct). Numbers travel as
  // doubles (Struct has no integers).
  nlohmann::json metadata = nlohmann::json::object();
};

struct NodeInputs {
  std::string proxy_type = "ztunnel";  // first id component ("ztunnel", "router", ...)
  std::string instance_ip;             // INSTANCE_IP; empty -> "1.1.1.1" (upstream default)
  std::string pod_name, pod_namespace, node_name;
  // (key without prefix, value) pairs: ISTIO_META_<key> and ISTIO_METAJSON_<key>.
  std::vector<std::pair<std::string, std::string>> istio_meta, istio_meta_json;
};

inline constexpr const char* kDefaultInstanceIp = "1.1.1.1";

Node build_node(const NodeInputs& in);

}  // namespace common::xds
