// Ingress gateway compile (controlplane/waypoint_compiler.h, "Ingress gateways"): an Istio
// Gateway + VirtualServices bound with `gateways:` in, istiod-named Listener /
// RouteConfiguration / Cluster / ClusterLoadAssignment out, served to the selected pod. Each
// Listener and RouteConfiguration is also fed to the gateway's own converters, which must
// accept it. Bad Gateways are reported naming file, object and field; the rest compiles.
#include <google/protobuf/any.pb.h>
#include <catch2/catch.hpp>

#include "controlplane/k8s_loader.h"
#include "controlplane/waypoint_compiler.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "waypoint/xds/convert.h"
#include "waypoint/xds/listener_convert.h"

using namespace controlplane;
namespace route = envoy::config::route::v3;

namespace {

const char* kMesh = R"(
apiVersion: v1
kind: Namespace
metadata: {name: bookinfo, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: ingress-0, namespace: istio-ingress, labels: {istio: ingressgateway}}
spec: {serviceAccountName: ingress}
status: {podIP: 10.0.0.20}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: istio-ingress}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: SIMPLE, credentialName: bookinfo-cert}
---
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: bookinfo}
spec:
  selector: {app: productpage}
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint, istio.io/ingress-use-waypoint: "true"}}
spec:
  selector: {app: reviews}
  clusterIP: 10.96.0.21
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: productpage-1, namespace: bookinfo, labels: {app: productpage}}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-1, namespace: bookinfo, labels: {app: reviews, version: v1}}
status: {podIP: 10.0.1.2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: bookinfo}
spec:
  hosts: [bookinfo.example.com]
  gateways: [istio-ingress/bookinfo-gateway]
  http:
  - match: [{uri: {exact: /productpage}}, {uri: {prefix: /static}}]
    route: [{destination: {host: productpage, port: {number: 9080}}}]
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: bookinfo}
spec:
  hosts: [productpage]
  http:
  - route: [{destination: {host: productpage}}]
)";

struct Compiled {
  WaypointCompileResult result;
  Diagnostics load_diags;
};

Compiled compile_yaml(const std::string& yaml) {
  ResourceSet set;
  Compiled c;
  parse_manifests(yaml, "mesh.yaml", set, c.load_diags);
  remove_duplicates(set, c.load_diags);
  c.result = compile_waypoints(set, CompileOptions{});
  return c;
}

template <typename M>
M unpack(const XdsResource& r) {
  google::protobuf::Any any;
  REQUIRE(any.ParseFromString(r.any));
  M m;
  REQUIRE(any.UnpackTo(&m));
  return m;
}

std::string diag_text(const Diagnostics& ds) {
  std::string s;
  for (const auto& d : ds) s += d.file + " " + d.object + " " + d.field + ": " + d.message + "\n";
  return s;
}

}  // namespace

TEST_CASE("an Istio Gateway compiles to istiod's listeners, routes and clusters for its pod") {
  auto c = compile_yaml(kMesh);
  INFO(diag_text(c.load_diags) << diag_text(c.result.diagnostics));
  REQUIRE(c.result.by_proxy.count("ingress-0.istio-ingress") == 1);
  const WaypointResources& r = *c.result.by_proxy.at("ingress-0.istio-ingress");
  CHECK(c.result.by_gateway.count("ingress:istio-ingress/bookinfo-gateway") == 1);
  CHECK(controlplane::proxy_key_of_node("router~10.0.0.20~ingress-0.istio-ingress~istio-ingress.svc.cluster.local") ==
        "ingress-0.istio-ingress");

  REQUIRE(r.listeners.count("0.0.0.0_80") == 1);
  REQUIRE(r.listeners.count("0.0.0.0_443") == 1);
  auto plain = waypoint::xds::parse_listener(
      "0.0.0.0_80", unpack<envoy::config::listener::v3::Listener>(r.listeners.at("0.0.0.0_80")).SerializeAsString());
  REQUIRE(plain);
  CHECK(plain->port == 80);
  CHECK_FALSE(plain->tls());
  REQUIRE(plain->chains.size() == 1);
  CHECK(plain->chains[0].route_name == "http.80");
  auto secure = waypoint::xds::parse_listener(
      "0.0.0.0_443", unpack<envoy::config::listener::v3::Listener>(r.listeners.at("0.0.0.0_443")).SerializeAsString());
  REQUIRE(secure);
  REQUIRE(secure->chains.size() == 1);
  CHECK(secure->tls());
  CHECK(secure->chains[0].credential_name == "bookinfo-cert");
  CHECK(secure->chains[0].server_names == std::vector<std::string>{"bookinfo.example.com"});
  CHECK(secure->chains[0].route_name == "https.443.https.bookinfo-gateway.istio-ingress");

  REQUIRE(r.routes.count("http.80") == 1);
  REQUIRE(r.routes.count("https.443.https.bookinfo-gateway.istio-ingress") == 1);
  auto rc = unpack<route::RouteConfiguration>(r.routes.at("http.80"));
  REQUIRE(rc.virtual_hosts_size() == 1);  // the mesh-only VirtualService is not bound
  CHECK(rc.virtual_hosts(0).name() == "bookinfo.example.com:80");
  CHECK(rc.virtual_hosts(0).domains(0) == "bookinfo.example.com");
  CHECK(rc.virtual_hosts(0).domains(1) == "bookinfo.example.com:80");
  REQUIRE(rc.virtual_hosts(0).routes_size() == 3);
  CHECK(rc.virtual_hosts(0).routes(0).route().cluster() == "outbound|9080||productpage.bookinfo.svc.cluster.local");
  CHECK(rc.virtual_hosts(0).routes(2).route().cluster() == "outbound|9080||reviews.bookinfo.svc.cluster.local");
  CHECK(waypoint::xds::parse_route_configuration("http.80", rc.SerializeAsString()));

  // productpage: its pod; reviews (ingress-use-waypoint + a waypoint): its VIP, crossed via the waypoint.
  auto pp = unpack<envoy::config::endpoint::v3::ClusterLoadAssignment>(
      r.endpoints.at("outbound|9080||productpage.bookinfo.svc.cluster.local"));
  REQUIRE(pp.endpoints(0).lb_endpoints_size() == 1);
  CHECK(pp.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().address() == "10.0.1.1");
  CHECK(pp.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().port_value() == 8080);
  auto rv = unpack<envoy::config::endpoint::v3::ClusterLoadAssignment>(
      r.endpoints.at("outbound|9080||reviews.bookinfo.svc.cluster.local"));
  REQUIRE(rv.endpoints(0).lb_endpoints_size() == 1);
  CHECK(rv.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().address() == "10.96.0.21");
  CHECK(rv.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().port_value() == 9080);
}

TEST_CASE("server hosts restrict which VirtualService hosts a port serves") {
  std::string yaml = kMesh;
  const std::string from = "hosts: [\"*\"]";
  yaml.replace(yaml.find(from), from.size(), "hosts: [\"other/*\"]");  // only namespace "other"
  auto c = compile_yaml(yaml);
  const WaypointResources& r = *c.result.by_proxy.at("ingress-0.istio-ingress");
  auto rc = unpack<route::RouteConfiguration>(r.routes.at("http.80"));
  CHECK(rc.virtual_hosts_size() == 0);  // every host: 404 NR at the gateway
}

TEST_CASE("a bad Gateway is reported naming file, object and field; the rest compiles") {
  std::string yaml = kMesh;
  yaml += R"(
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: broken, namespace: istio-ingress}
spec:
  selector: {istio: other}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [x.example.com]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: typo, namespace: istio-ingress}
spec:
  selector: {istio: other}
  servers:
  - port: {number: 81, name: tcp, protocol: TCP}
    hosts: ["*"]
)";
  auto c = compile_yaml(yaml);
  auto has = [&](const std::string& object, const std::string& field) {
    for (const auto& d : c.load_diags) {
      if (d.severity == Severity::Error && d.file == "mesh.yaml" && d.object.find(object) != std::string::npos &&
          d.field == field)
        return true;
    }
    return false;
  };
  INFO(diag_text(c.load_diags));
  CHECK(has("istio-ingress/broken", "spec.servers[0].tls.mode"));
  CHECK(has("istio-ingress/typo", "spec.servers[0].port.protocol"));
  REQUIRE(c.result.by_proxy.count("ingress-0.istio-ingress") == 1);
  CHECK(c.result.by_proxy.at("ingress-0.istio-ingress")->routes.count("http.80") == 1);
}
