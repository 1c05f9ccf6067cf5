#include "controlplane/kube/gateway_objects.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "controlplane/kube/json_fields.h"
#include "controlplane/kube/waypoint_deployer.h"

namespace controlplane::kube {
namespace {

using nlohmann::json;

std::string str(const json& j, const char* key) {
  return json_str(j, key);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A Service port name must be a DNS label (lower-case alphanumerics and '-', at most 15
// characters for a named container port, 63 here): listener names may hold '.' or capitals.
std::string port_name(const std::string& listener, const std::string& protocol, size_t index) {
  std::string out;
  for (char c : lower(listener)) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '-';
  while (!out.empty() && out.front() == '-') out.erase(out.begin());
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > 63) out.resize(63);
  if (out.empty()) out = protocol + "-" + std::to_string(index);
  return out;
}

std::string service_host(const ManagedGateway& gw) {
  return gw.object_name + "." + gw.ns + ".svc.cluster.local";
}

std::string port_list(const ManagedGateway& gw) {
  std::string out;
  for (const auto& p : gw.ports) {
    if (!out.empty()) out += ",";
    out += std::to_string(p.port);
  }
  return out;
}

}  // namespace

std::optional<ManagedGateway> read_managed_gateway(const json& g) {
  if (!g.is_object() || !g.contains("spec") || !g["spec"].is_object()) return std::nullopt;
  const json& meta = g.contains("metadata") ? g["metadata"] : json::object();
  const std::string cls = str(g["spec"], "gatewayClassName");
  if (cls != "istio-waypoint" && cls != "istio") return std::nullopt;
  if (!str(meta, "deletionTimestamp").empty()) return std::nullopt;
  ManagedGateway gw;
  gw.ns = str(meta, "namespace");
  gw.name = str(meta, "name");
  gw.uid = str(meta, "uid");
  if (gw.ns.empty() || gw.name.empty()) return std::nullopt;
  if (meta.contains("generation") && meta["generation"].is_number_integer())
    gw.generation = meta["generation"].get<int64_t>();
  gw.status = g.contains("status") && g["status"].is_object() ? g["status"] : json::object();
  const json listeners =
      g["spec"].contains("listeners") && g["spec"]["listeners"].is_array() ? g["spec"]["listeners"] : json::array();

  if (cls == "istio-waypoint") {
    gw.kind = ManagedGateway::Kind::waypoint;
    gw.object_name = gw.name;
    gw.service_type = "ClusterIP";
    uint16_t hbone = 15008;
    for (const auto& l : listeners) {
      if (str(l, "protocol") == "HBONE" && l.contains("port") && l["port"].is_number_integer()) {
        const int p = l["port"].get<int>();
        if (p > 0 && p < 65536) hbone = static_cast<uint16_t>(p);
      }
    }
    gw.ports.push_back({"mesh", "tcp", hbone});
    return gw;
  }

  gw.kind = ManagedGateway::Kind::ingress;
  gw.object_name = gw.name + "-istio";
  gw.service_type = "LoadBalancer";
  if (meta.contains("annotations") && meta["annotations"].is_object()) {
    const std::string t = str(meta["annotations"], "networking.istio.io/service-type");
    if (t == "ClusterIP" || t == "LoadBalancer" || t == "NodePort") gw.service_type = t;
  }
  std::set<int> seen;
  std::set<std::string> secrets;
  for (size_t i = 0; i < listeners.size(); ++i) {
    const json& l = listeners[i];
    if (!l.contains("port") || !l["port"].is_number_integer()) continue;
    const int p = l["port"].get<int>();
    if (p <= 0 || p >= 65536) continue;
    const std::string proto = lower(str(l, "protocol"));
    if (seen.insert(p).second)
      gw.ports.push_back({port_name(str(l, "name"), proto, i), proto, static_cast<uint16_t>(p)});
    if (l.contains("tls") && l["tls"].is_object() && l["tls"].contains("certificateRefs") &&
        l["tls"]["certificateRefs"].is_array()) {
      for (const auto& ref : l["tls"]["certificateRefs"]) {
        // Only core Secrets of the Gateway's own namespace are served (docs/ingress.md).
        const std::string kind = str(ref, "kind");
        const std::string ref_ns = str(ref, "namespace");
        if ((kind.empty() || kind == "Secret") && (ref_ns.empty() || ref_ns == gw.ns) && !str(ref, "name").empty())
          secrets.insert(str(ref, "name"));
      }
    }
  }
  gw.secrets.assign(secrets.begin(), secrets.end());
  return gw;
}

GatewayObjects render_gateway_objects(const ManagedGateway& gw, const WaypointDeployerOptions& opt) {
  const bool ingress = gw.kind == ManagedGateway::Kind::ingress;
  json labels = {{kGatewayNameLabel, gw.name}, {kManagedLabel, gw.managed_value()}};
  if (ingress) labels["istio.io/gateway-name"] = gw.name;
  const json owner = json::array(
      {{{"apiVersion", "gateway.networking.k8s.io/v1"}, {"kind", "Gateway"}, {"name", gw.name}, {"uid", gw.uid}}});
  const json meta = {{"name", gw.object_name}, {"namespace", gw.ns}, {"labels", labels}, {"ownerReferences", owner}};

  GatewayObjects out;
  out.service_account = {{"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", meta}};

  // The proxy originates HBONE itself (with its own identity), so ztunnel must not capture its
  // pod a second time: both roles opt out of the ambient data plane.
  json pod_labels = {
      {kGatewayNameLabel, gw.name}, {"istio.io/dataplane-mode", "none"}, {"sidecar.istio.io/inject", "false"}};
  if (ingress) pod_labels["istio.io/gateway-name"] = gw.name;
  auto field_env = [](const char* name, const char* path) {
    return json{{"name", name}, {"valueFrom", {{"fieldRef", {{"fieldPath", path}}}}}};
  };
  json ports = json::array();
  if (ingress) {
    for (const auto& p : gw.ports) ports.push_back({{"containerPort", p.port}, {"protocol", "TCP"}});
  } else {
    ports.push_back({{"containerPort", gw.ports.front().port}, {"name", "mesh"}, {"protocol", "TCP"}});
  }
  ports.push_back({{"containerPort", 15020}, {"name", "metrics"}, {"protocol", "TCP"}});
  ports.push_back({{"containerPort", 15021}, {"name", "status-port"}, {"protocol", "TCP"}});
  json env = json::array({{{"name", "XDS_ADDRESS"}, {"value", opt.xds_address}},
                          {{"name", "CA_ADDRESS"}, {"value", opt.xds_address}},
                          {{"name", "XDS_ROOT_CA"}, {"value", "/var/run/secrets/istio/root-cert.pem"}},
                          {{"name", "CA_ROOT_CA"}, {"value", "/var/run/secrets/istio/root-cert.pem"}},
                          {{"name", "AUTH_TOKEN"}, {"value", "/var/run/secrets/tokens/istio-token"}},
                          {{"name", "TRUST_DOMAIN"}, {"value", opt.trust_domain}},
                          {{"name", "ISTIO_META_CLUSTER_ID"}, {"value", opt.cluster_id}},
                          field_env("POD_NAME", "metadata.name"),
                          field_env("POD_NAMESPACE", "metadata.namespace"),
                          field_env("INSTANCE_IP", "status.podIP"),
                          field_env("NODE_NAME", "spec.nodeName")});
  json mounts = json::array({{{"name", "istio-token"}, {"mountPath", "/var/run/secrets/tokens"}},
                             {{"name", "istiod-ca-cert"}, {"mountPath", "/var/run/secrets/istio"}}});
  json volumes = json::array(
      {{{"name", "istio-token"},
        {"projected",
         {{"sources",
           json::array({{{"serviceAccountToken",
                          {{"path", "istio-token"}, {"expirationSeconds", 43200}, {"audience", "istio-ca"}}}}})}}}},
       {{"name", "istiod-ca-cert"}, {"configMap", {{"name", "istio-ca-root-cert"}}}}});
  if (ingress) {
    env.push_back({{"name", "PROXY_TYPE"}, {"value", "router"}});
    env.push_back({{"name", "GATEWAY_CREDENTIAL_DIR"}, {"value", kCredentialDir}});
    for (size_t i = 0; i < gw.secrets.size(); ++i) {
      const std::string vol = "credential-" + std::to_string(i);
      // Optional: a missing Secret leaves its listener without a certificate (refused
      // handshakes, logged) instead of keeping the whole gateway pod from starting.
      volumes.push_back({{"name", vol}, {"secret", {{"secretName", gw.secrets[i]}, {"optional", true}}}});
      mounts.push_back(
          {{"name", vol}, {"mountPath", std::string(kCredentialDir) + "/" + gw.secrets[i]}, {"readOnly", true}});
    }
  }
  json container = {{"name", "istio-proxy"},
                    {"image", opt.image},
                    {"imagePullPolicy", opt.image_pull_policy},
                    {"command", json::array({"/usr/local/bin/waypoint"})},
                    {"ports", ports},
                    {"readinessProbe", {{"httpGet", {{"path", "/healthz/ready"}, {"port", 15021}}}}},
                    {"env", env},
                    {"securityContext",
                     {{"allowPrivilegeEscalation", false},
                      {"readOnlyRootFilesystem", true},
                      {"runAsNonRoot", true},
                      {"runAsUser", 1337},
                      {"capabilities", {{"drop", json::array({"ALL"})}}}}},
                    {"volumeMounts", mounts}};
  json pod_spec = {{"serviceAccountName", gw.object_name},
                   {"terminationGracePeriodSeconds", 2},
                   {"containers", json::array({container})},
                   {"volumes", volumes}};
  // Listener ports below 1024 (80, 443) as user 1337 without NET_BIND_SERVICE: istiod's gateway
  // template lowers the pod's unprivileged port start instead (a namespaced, safe sysctl).
  if (ingress)
    pod_spec["securityContext"] = {
        {"sysctls", json::array({{{"name", "net.ipv4.ip_unprivileged_port_start"}, {"value", "0"}}})}};
  out.deployment = {{"apiVersion", "apps/v1"},
                    {"kind", "Deployment"},
                    {"metadata", meta},
                    {"spec",
                     {{"replicas", 1},
                      {"selector", {{"matchLabels", {{kGatewayNameLabel, gw.name}}}}},
                      {"template", {{"metadata", {{"labels", pod_labels}}}, {"spec", pod_spec}}}}}};

  json svc_ports = json::array();
  if (ingress) {
    svc_ports.push_back({{"name", "status-port"}, {"port", 15021}, {"protocol", "TCP"}, {"appProtocol", "tcp"}});
    for (const auto& p : gw.ports)
      svc_ports.push_back({{"name", p.name}, {"port", p.port}, {"protocol", "TCP"}, {"appProtocol", p.protocol}});
  } else {
    svc_ports.push_back({{"name", "mesh"}, {"port", gw.ports.front().port}, {"protocol", "TCP"}});
    svc_ports.push_back({{"name", "status-port"}, {"port", 15021}, {"protocol", "TCP"}});
  }
  out.service = {
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata", meta},
      {"spec", {{"type", gw.service_type}, {"selector", {{kGatewayNameLabel, gw.name}}}, {"ports", svc_ports}}}};
  return out;
}

std::optional<json> gateway_status_patch(const ManagedGateway& gw, const json& service, const std::string& now,
                                         const json& listeners) {
  if (!service.is_object() || !service.contains("spec")) return std::nullopt;
  const std::string cluster_ip = str(service["spec"], "clusterIP");
  if (cluster_ip.empty() || cluster_ip == "None") return std::nullopt;
  const std::string type = str(service["spec"], "type");

  json addresses = json::array();
  if (type == "LoadBalancer") {
    const json& st = service.contains("status") ? service["status"] : json::object();
    const json& lb = st.is_object() && st.contains("loadBalancer") ? st["loadBalancer"] : json::object();
    if (lb.is_object() && lb.contains("ingress") && lb["ingress"].is_array()) {
      for (const auto& in : lb["ingress"]) {
        if (!str(in, "ip").empty())
          addresses.push_back({{"type", "IPAddress"}, {"value", str(in, "ip")}});
        else if (!str(in, "hostname").empty())
          addresses.push_back({{"type", "Hostname"}, {"value", str(in, "hostname")}});
      }
    }
  } else {
    addresses.push_back({{"type", "IPAddress"}, {"value", cluster_ip}});
  }
  const std::string assigned = service_host(gw) + ":" + port_list(gw);
  bool programmed = true;
  std::string reason = "Programmed";
  std::string message = "Resource programmed, assigned to service(s) " + assigned;
  if (addresses.empty()) {
    // A LoadBalancer with no ingress yet: istiod reports the Service's name and says why.
    programmed = false;
    reason = "AddressNotAssigned";
    message = "Assigned to service(s) " + assigned +
              ", but failed to assign to all requested addresses: address pending for hostname \"" + service_host(gw) +
              "\"";
    addresses.push_back({{"type", "Hostname"}, {"value", service_host(gw)}});
  }

  // Already said? Compare what a reader sees: the addresses and each condition's status/reason.
  const json& cur = gw.status;
  const json cur_conditions =
      cur.contains("conditions") && cur["conditions"].is_array() ? cur["conditions"] : json::array();
  auto current = [&](const char* type_name) -> const json* {
    for (const auto& c : cur_conditions)
      if (str(c, "type") == type_name) return &c;
    return nullptr;
  };
  const json* acc = current("Accepted");
  const json* prog = current("Programmed");
  const std::string want_prog = programmed ? "True" : "False";
  const bool same = cur.contains("addresses") && cur["addresses"] == addresses && acc &&
                    str(*acc, "status") == "True" && prog && str(*prog, "status") == want_prog &&
                    str(*prog, "reason") == reason && str(*prog, "message") == message &&
                    prog->value("observedGeneration", int64_t{0}) == gw.generation &&
                    (listeners.is_null() || (cur.contains("listeners") && cur["listeners"] == listeners));
  if (same) return std::nullopt;

  auto cond = [&](const char* type_name, const std::string& status, const std::string& why, const std::string& msg) {
    // lastTransitionTime moves only when the status does (metav1.Condition's contract).
    std::string since = now;
    if (const json* c = current(type_name); c && str(*c, "status") == status && !str(*c, "lastTransitionTime").empty())
      since = str(*c, "lastTransitionTime");
    return json{{"type", type_name},
                {"status", status},
                {"reason", why},
                {"message", msg},
                {"lastTransitionTime", since},
                {"observedGeneration", gw.generation}};
  };
  json out = {{"status",
               {{"addresses", addresses},
                {"conditions", json::array({cond("Accepted", "True", "Accepted", "Resource accepted"),
                                            cond("Programmed", want_prog, reason, message)})}}}};
  if (!listeners.is_null()) out["status"]["listeners"] = listeners;
  return out;
}

}  // namespace controlplane::kube
