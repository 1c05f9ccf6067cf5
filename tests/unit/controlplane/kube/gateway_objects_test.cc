// The objects and status the gateway controllers write for Gateways of class istio-waypoint and
// istio (controlplane/kube/gateway_objects.h), checked as JSON without an API server; the
// writes themselves are checked against an API server in tests/25-kube-controlplane.
#include "controlplane/kube/gateway_objects.h"

#include <catch2/catch.hpp>

#include "controlplane/kube/waypoint_deployer.h"

using controlplane::kube::gateway_status_patch;
using controlplane::kube::ManagedGateway;
using controlplane::kube::read_managed_gateway;
using controlplane::kube::render_gateway_objects;
using controlplane::kube::WaypointDeployerOptions;
using nlohmann::json;

namespace {

json ingress_gateway() {
  return json::parse(R"({
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
    "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "generation": 3},
    "spec": {"gatewayClassName": "istio", "listeners": [
      {"name": "http", "port": 80, "protocol": "HTTP"},
      {"name": "Secure.Web", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com",
       "tls": {"mode": "Terminate", "certificateRefs": [{"name": "shop-cert"}]}},
      {"name": "other-host", "port": 443, "protocol": "HTTPS",
       "tls": {"certificateRefs": [{"kind": "Secret", "name": "other-cert"}, {"name": "x", "namespace": "elsewhere"}]}}
    ]}})");
}

json service(const std::string& type, const json& lb_ingress) {
  json s = {{"metadata", {{"name", "web-istio"}, {"namespace", "shop"}}},
            {"spec", {{"type", type}, {"clusterIP", "10.96.0.7"}}}};
  if (!lb_ingress.is_null()) s["status"] = {{"loadBalancer", {{"ingress", lb_ingress}}}};
  return s;
}

const json* env_named(const json& container, const std::string& name) {
  for (const auto& e : container["env"])
    if (e["name"] == name) return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("a Gateway of class istio becomes <name>-istio objects running the router", "[gateway]") {
  auto gw = read_managed_gateway(ingress_gateway());
  REQUIRE(gw);
  CHECK(gw->kind == ManagedGateway::Kind::ingress);
  CHECK(gw->object_name == "web-istio");
  CHECK(gw->service_type == "LoadBalancer");
  CHECK(gw->generation == 3);
  // One port per distinct listener port, named after the first listener on it (sanitised).
  REQUIRE(gw->ports.size() == 2);
  CHECK(gw->ports[0].name == "http");
  CHECK(gw->ports[0].port == 80);
  CHECK(gw->ports[1].name == "secure-web");
  CHECK(gw->ports[1].protocol == "https");
  // Secrets of the Gateway's own namespace only (another namespace needs a ReferenceGrant).
  CHECK(gw->secrets == std::vector<std::string>{"other-cert", "shop-cert"});

  WaypointDeployerOptions opt;
  opt.image = "registry.test/ambient:1.0";
  auto objs = render_gateway_objects(*gw, opt);
  const json& dep = objs.deployment;
  CHECK(dep["metadata"]["name"] == "web-istio");
  CHECK(dep["metadata"]["labels"]["gateway.istio.io/managed"] == "istio.io-gateway-controller");
  CHECK(dep["metadata"]["ownerReferences"][0]["uid"] == "u-1");
  CHECK(dep["spec"]["selector"]["matchLabels"]["gateway.networking.k8s.io/gateway-name"] == "web");
  const json& pod = dep["spec"]["template"]["spec"];
  CHECK(pod["serviceAccountName"] == "web-istio");
  CHECK(pod["securityContext"]["sysctls"][0]["name"] == "net.ipv4.ip_unprivileged_port_start");
  const json& c = pod["containers"][0];
  REQUIRE(env_named(c, "PROXY_TYPE"));
  CHECK((*env_named(c, "PROXY_TYPE"))["value"] == "router");
  CHECK((*env_named(c, "GATEWAY_CREDENTIAL_DIR"))["value"] == "/etc/istio/gateway-credentials");
  bool mounted = false;
  for (const auto& m : c["volumeMounts"])
    mounted = mounted || m["mountPath"] == "/etc/istio/gateway-credentials/shop-cert";
  CHECK(mounted);
  CHECK(c["ports"][0]["containerPort"] == 80);
  CHECK(c["ports"][1]["containerPort"] == 443);

  const json& svc = objs.service;
  CHECK(svc["spec"]["type"] == "LoadBalancer");
  REQUIRE(svc["spec"]["ports"].size() == 3);
  CHECK(svc["spec"]["ports"][0]["name"] == "status-port");
  CHECK(svc["spec"]["ports"][0]["port"] == 15021);
  CHECK(svc["spec"]["ports"][1]["port"] == 80);
  CHECK(svc["spec"]["ports"][1]["appProtocol"] == "http");
  CHECK(svc["spec"]["ports"][2]["name"] == "secure-web");
}

TEST_CASE("the service-type annotation picks the Service type", "[gateway]") {
  json g = ingress_gateway();
  g["metadata"]["annotations"] = {{"networking.istio.io/service-type", "ClusterIP"}};
  auto gw = read_managed_gateway(g);
  REQUIRE(gw);
  CHECK(gw->service_type == "ClusterIP");
  g["metadata"]["annotations"] = {{"networking.istio.io/service-type", "Bogus"}};
  CHECK(read_managed_gateway(g)->service_type == "LoadBalancer");
}

TEST_CASE("other classes and Gateways being deleted are not managed", "[gateway]") {
  json g = ingress_gateway();
  g["spec"]["gatewayClassName"] = "nginx";
  CHECK_FALSE(read_managed_gateway(g));
  g = ingress_gateway();
  g["metadata"]["deletionTimestamp"] = "2026-12-07T10:00:00Z";
  CHECK_FALSE(read_managed_gateway(g));
}

TEST_CASE("a waypoint Gateway keeps its name, ClusterIP and HBONE port", "[gateway]") {
  json g = json::parse(R"({"metadata": {"name": "waypoint", "namespace": "demo", "uid": "w"},
    "spec": {"gatewayClassName": "istio-waypoint",
             "listeners": [{"name": "mesh", "port": 15009, "protocol": "HBONE"}]}})");
  auto gw = read_managed_gateway(g);
  REQUIRE(gw);
  CHECK(gw->kind == ManagedGateway::Kind::waypoint);
  CHECK(gw->object_name == "waypoint");
  auto objs = render_gateway_objects(*gw, WaypointDeployerOptions{});
  CHECK(objs.service["spec"]["type"] == "ClusterIP");
  CHECK(objs.service["spec"]["ports"][0]["port"] == 15009);
  CHECK(objs.deployment["metadata"]["labels"]["gateway.istio.io/managed"] == "istio.io-mesh-controller");
  CHECK(env_named(objs.deployment["spec"]["template"]["spec"]["containers"][0], "PROXY_TYPE") == nullptr);
  auto st = gateway_status_patch(*gw, json{{"spec", {{"type", "ClusterIP"}, {"clusterIP", "10.96.0.9"}}}}, "T0");
  REQUIRE(st);
  CHECK((*st)["status"]["addresses"] == json::parse(R"([{"type": "IPAddress", "value": "10.96.0.9"}])"));
  CHECK((*st)["status"]["conditions"][1]["status"] == "True");
}

TEST_CASE("an ingress status waits for the load balancer, then carries its address", "[gateway]") {
  auto gw = read_managed_gateway(ingress_gateway());
  REQUIRE(gw);
  // No cluster IP yet: nothing to say.
  CHECK_FALSE(gateway_status_patch(*gw, json{{"spec", {{"type", "LoadBalancer"}}}}, "T0"));

  // Pending load balancer: the Service host name, Programmed=False AddressNotAssigned.
  auto pending = gateway_status_patch(*gw, service("LoadBalancer", nullptr), "T1");
  REQUIRE(pending);
  const json& p = (*pending)["status"];
  CHECK(p["addresses"] ==
        json::parse(R"([{"type": "Hostname", "value": "web-istio.shop.svc.cluster.local"}])"));
  CHECK(p["conditions"][0]["type"] == "Accepted");
  CHECK(p["conditions"][0]["status"] == "True");
  CHECK(p["conditions"][1]["type"] == "Programmed");
  CHECK(p["conditions"][1]["status"] == "False");
  CHECK(p["conditions"][1]["reason"] == "AddressNotAssigned");
  CHECK(p["conditions"][1]["observedGeneration"] == 3);
  CHECK(p["conditions"][1]["message"].get<std::string>().find("web-istio.shop.svc.cluster.local:80,443") !=
        std::string::npos);

  // The same status again is not rewritten (a write is an event: no loop).
  gw->status = p;
  CHECK_FALSE(gateway_status_patch(*gw, service("LoadBalancer", nullptr), "T2"));

  // The load balancer got an IP and a host name: both, Programmed=True, a new transition time
  // for Programmed only.
  auto ready = gateway_status_patch(
      *gw, service("LoadBalancer", json::parse(R"([{"ip": "203.0.113.10"}, {"hostname": "lb.example.net"}])")), "T3");
  REQUIRE(ready);
  const json& r = (*ready)["status"];
  CHECK(r["addresses"] == json::parse(R"([{"type": "IPAddress", "value": "203.0.113.10"},
                                          {"type": "Hostname", "value": "lb.example.net"}])"));
  CHECK(r["conditions"][1]["status"] == "True");
  CHECK(r["conditions"][1]["reason"] == "Programmed");
  CHECK(r["conditions"][1]["lastTransitionTime"] == "T3");
  CHECK(r["conditions"][0]["lastTransitionTime"] == "T1");

  // A ClusterIP Service: its cluster IP is the address.
  gw->service_type = "ClusterIP";
  auto cip = gateway_status_patch(*gw, service("ClusterIP", nullptr), "T4");
  REQUIRE(cip);
  CHECK((*cip)["status"]["addresses"][0]["value"] == "10.96.0.7");
}
