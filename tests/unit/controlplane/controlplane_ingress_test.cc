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

TEST_CASE("tls.httpsRedirect on an HTTP server: its virtual hosts require TLS (Envoy's 301 to https)") {
  std::string yaml = kMesh;
  const std::string from = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n";
  REQUIRE(yaml.find(from) != std::string::npos);
  yaml.replace(yaml.find(from), from.size(),
               from + "  - port: {number: 8000, name: http-redirect, protocol: HTTP}\n"
                      "    hosts: [bookinfo.example.com, istio-ingress/plain.example.com]\n"
                      "    tls: {httpsRedirect: true}\n");
  auto c = compile_yaml(yaml);
  INFO(diag_text(c.load_diags) << diag_text(c.result.diagnostics));
  const WaypointResources& r = *c.result.by_proxy.at("ingress-0.istio-ingress");
  auto plain = unpack<route::RouteConfiguration>(r.routes.at("http.80"));
  REQUIRE(plain.virtual_hosts_size() == 1);
  CHECK(plain.virtual_hosts(0).require_tls() == route::VirtualHost::NONE);
  REQUIRE(r.routes.count("http.8000") == 1);
  auto rc = unpack<route::RouteConfiguration>(r.routes.at("http.8000"));
  // The VirtualService's host keeps its routes; the server's other host (no VirtualService) gets
  // a virtual host of its own, without routes, as istiod builds it.
  REQUIRE(rc.virtual_hosts_size() == 2);
  CHECK(rc.virtual_hosts(0).name() == "bookinfo.example.com:8000");
  CHECK(rc.virtual_hosts(0).require_tls() == route::VirtualHost::ALL);
  CHECK(rc.virtual_hosts(0).routes_size() == 3);
  CHECK(rc.virtual_hosts(1).name() == "plain.example.com:8000");
  CHECK(rc.virtual_hosts(1).domains(1) == "plain.example.com:8000");
  CHECK(rc.virtual_hosts(1).require_tls() == route::VirtualHost::ALL);
  CHECK(rc.virtual_hosts(1).routes_size() == 0);
  auto parsed = waypoint::xds::parse_route_configuration("http.8000", rc.SerializeAsString());
  REQUIRE(parsed);
  CHECK(parsed->virtual_hosts[0].require_tls);
}

TEST_CASE("tls.mode MUTUAL: the client CA and subjectAltNames compile as istiod writes them") {
  std::string yaml = kMesh;
  const std::string from = "    tls: {mode: SIMPLE, credentialName: bookinfo-cert}\n";
  REQUIRE(yaml.find(from) != std::string::npos);
  yaml.replace(yaml.find(from), from.size(),
               "    tls: {mode: MUTUAL, credentialName: bookinfo-cert, subjectAltNames: [spiffe://c/client, "
               "client.example.com]}\n"
               "  - port: {number: 8443, name: https-file, protocol: HTTPS}\n"
               "    hosts: [bookinfo.example.com]\n"
               "    tls: {mode: OPTIONAL_MUTUAL, credentialName: bookinfo-cert, caCertificates: /etc/ca/root.pem}\n");
  auto c = compile_yaml(yaml);
  INFO(diag_text(c.load_diags) << diag_text(c.result.diagnostics));
  const WaypointResources& r = *c.result.by_proxy.at("ingress-0.istio-ingress");
  auto l443 = unpack<envoy::config::listener::v3::Listener>(r.listeners.at("0.0.0.0_443"));
  auto p = waypoint::xds::parse_listener("0.0.0.0_443", l443.SerializeAsString());
  REQUIRE(p);
  REQUIRE(p->chains.size() == 1);
  CHECK(p->chains[0].require_client_cert);
  CHECK(p->chains[0].ca_credential == "bookinfo-cert-cacert");
  CHECK(p->chains[0].ca_file.empty());
  CHECK(p->chains[0].client_sans == std::vector<std::string>{"spiffe://c/client", "client.example.com"});
  REQUIRE(r.listeners.count("0.0.0.0_8443") == 1);
  auto l8443 = unpack<envoy::config::listener::v3::Listener>(r.listeners.at("0.0.0.0_8443"));
  auto q = waypoint::xds::parse_listener("0.0.0.0_8443", l8443.SerializeAsString());
  REQUIRE(q);
  CHECK_FALSE(q->chains[0].require_client_cert);
  CHECK(q->chains[0].ca_file == "/etc/ca/root.pem");
  CHECK(q->chains[0].verifies_clients());
}

TEST_CASE("client-certificate settings where they do not apply are refused naming the field") {
  std::string yaml = kMesh;
  yaml += R"(
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: simple-ca, namespace: istio-ingress}
spec:
  selector: {istio: other}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [x.example.com]
    tls: {mode: SIMPLE, credentialName: x, caCertificates: /ca.pem}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: relative-ca, namespace: istio-ingress}
spec:
  selector: {istio: other}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [x.example.com]
    tls: {mode: MUTUAL, credentialName: x, caCertificates: ca.pem}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-mutual, namespace: istio-ingress}
spec:
  selector: {istio: other}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [x.example.com]
    tls: {mode: ISTIO_MUTUAL, credentialName: x}
)";
  auto c = compile_yaml(yaml);
  auto has = [&](const std::string& object, const std::string& field) {
    for (const auto& d : c.load_diags) {
      if (d.severity == Severity::Error && d.object.find(object) != std::string::npos && d.field == field) return true;
    }
    return false;
  };
  INFO(diag_text(c.load_diags));
  CHECK(has("istio-ingress/simple-ca", "spec.servers[0].tls.caCertificates"));
  CHECK(has("istio-ingress/relative-ca", "spec.servers[0].tls.caCertificates"));
  CHECK(has("istio-ingress/istio-mutual", "spec.servers[0].tls.mode"));
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

// ---- Gateway API: a Gateway of class istio + HTTPRoutes (docs/ingress.md) --------------------

namespace {

const char* kGatewayApiMesh = R"(
apiVersion: v1
kind: Namespace
metadata: {name: bookinfo}
---
apiVersion: v1
kind: Pod
metadata: {name: gw-0, namespace: istio-ingress, labels: {gateway.networking.k8s.io/gateway-name: bookinfo-gw}}
spec: {serviceAccountName: bookinfo-gw}
status: {podIP: 10.0.0.30}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere-0, namespace: bookinfo, labels: {gateway.networking.k8s.io/gateway-name: bookinfo-gw}}
status: {podIP: 10.0.0.31}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bookinfo-gw, namespace: istio-ingress}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: bookinfo.example.com
    tls: {mode: Terminate, certificateRefs: [{kind: Secret, name: bookinfo-cert}]}
    allowedRoutes: {namespaces: {from: All}}
  - {name: wild, port: 8080, protocol: HTTP, hostname: "*.example.com"}
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
metadata: {name: reviews-v1, namespace: bookinfo}
spec:
  selector: {app: reviews, version: v1}
  clusterIP: 10.96.0.22
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: bookinfo}
spec:
  selector: {app: reviews, version: v2}
  clusterIP: 10.96.0.23
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
apiVersion: v1
kind: Pod
metadata: {name: reviews-2, namespace: bookinfo, labels: {app: reviews, version: v2}}
status: {podIP: 10.0.1.3}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bookinfo, namespace: bookinfo}
spec:
  parentRefs: [{name: bookinfo-gw, namespace: istio-ingress}]
  hostnames: [bookinfo.example.com]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /static}
    - path: {type: Exact, value: /productpage}
    backendRefs: [{name: productpage, port: 9080}]
  - matches:
    - path: {type: RegularExpression, value: "/api/v[0-9]+/.*"}
      method: GET
      queryParams: [{name: debug, value: "1"}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-from, value: gateway}]}
    backendRefs: [{name: productpage, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /reviews}}]
    backendRefs:
    - {name: reviews-v1, port: 9080, weight: 25}
    - {name: reviews-v2, port: 9080, weight: 75}
  - matches: [{path: {type: PathPrefix, value: /reviews}, headers: [{name: End-User, value: jason}]}]
    backendRefs: [{name: reviews-v2, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wild-a, namespace: istio-ingress}
spec:
  parentRefs: [{name: bookinfo-gw, sectionName: wild}]
  hostnames: [a.example.com, other.org, "*.b.example.com"]
  rules: [{backendRefs: [{name: productpage, namespace: bookinfo, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wild-any, namespace: istio-ingress}
spec:
  parentRefs: [{name: bookinfo-gw, sectionName: wild, port: 8080}]
  rules: [{backendRefs: [{name: reviews-v1, namespace: bookinfo, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ghost, namespace: bookinfo}
spec:
  parentRefs: [{name: nope, namespace: istio-ingress}]
  rules: [{backendRefs: [{name: productpage, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: not-allowed, namespace: bookinfo}
spec:
  parentRefs: [{name: bookinfo-gw, namespace: istio-ingress, sectionName: wild}]
  rules: [{backendRefs: [{name: productpage, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-host, namespace: istio-ingress}
spec:
  parentRefs: [{name: bookinfo-gw, sectionName: https}]
  hostnames: [ratings.example.com]
  rules: [{backendRefs: [{name: productpage, namespace: bookinfo, port: 9080}]}]
)";

bool has_diag(const Diagnostics& ds, Severity s, const std::string& object, const std::string& field,
              const std::string& text) {
  for (const auto& d : ds) {
    if (d.severity == s && d.object.find(object) != std::string::npos && d.field == field &&
        d.message.find(text) != std::string::npos)
      return true;
  }
  return false;
}

const route::VirtualHost* vhost(const route::RouteConfiguration& rc, const std::string& name) {
  for (const auto& vh : rc.virtual_hosts()) {
    if (vh.name() == name) return &vh;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("a Gateway of class istio compiles like istiod's conversion; HTTPRoutes attach by parentRefs") {
  auto c = compile_yaml(kGatewayApiMesh);
  INFO(diag_text(c.load_diags) << diag_text(c.result.diagnostics));
  CHECK(c.result.by_gateway.count("ingress:istio-ingress/bookinfo-gw") == 1);
  REQUIRE(c.result.by_proxy.count("gw-0.istio-ingress") == 1);
  CHECK(c.result.by_proxy.count("elsewhere-0.bookinfo") == 0);  // the label counts in the Gateway's namespace only
  const WaypointResources& r = *c.result.by_proxy.at("gw-0.istio-ingress");

  // Listeners: one per port; the HTTPS one terminates TLS with the Secret, SNI = the hostname.
  REQUIRE(r.listeners.size() == 3);
  auto plain = waypoint::xds::parse_listener(
      "0.0.0.0_80", unpack<envoy::config::listener::v3::Listener>(r.listeners.at("0.0.0.0_80")).SerializeAsString());
  REQUIRE(plain);
  CHECK(plain->port == 80);
  CHECK_FALSE(plain->tls());
  REQUIRE(plain->chains.size() == 1);
  CHECK(plain->chains[0].route_name == "http.80");
  const std::string https_routes = "https.443.default.bookinfo-gw-istio-autogenerated-k8s-gateway-https.istio-ingress";
  auto secure = waypoint::xds::parse_listener(
      "0.0.0.0_443", unpack<envoy::config::listener::v3::Listener>(r.listeners.at("0.0.0.0_443")).SerializeAsString());
  REQUIRE(secure);
  REQUIRE(secure->chains.size() == 1);
  CHECK(secure->tls());
  CHECK(secure->chains[0].credential_name == "bookinfo-cert");
  CHECK(secure->chains[0].server_names == std::vector<std::string>{"bookinfo.example.com"});
  CHECK(secure->chains[0].route_name == https_routes);

  // Port 80: the route's hostname; rules in Gateway API precedence (Exact, longer prefix, more
  // headers, regex last), one route per match.
  auto rc = unpack<route::RouteConfiguration>(r.routes.at("http.80"));
  CHECK(waypoint::xds::parse_route_configuration("http.80", rc.SerializeAsString()));
  REQUIRE(rc.virtual_hosts_size() == 1);
  const auto& vh = rc.virtual_hosts(0);
  CHECK(vh.name() == "bookinfo.example.com:80");
  CHECK(std::vector<std::string>(vh.domains().begin(), vh.domains().end()) ==
        std::vector<std::string>{"bookinfo.example.com", "bookinfo.example.com:80"});
  REQUIRE(vh.routes_size() == 5);
  CHECK(vh.routes(0).match().path() == "/productpage");
  CHECK(vh.routes(0).route().cluster() == "outbound|9080||productpage.bookinfo.svc.cluster.local");
  CHECK(vh.routes(1).match().path_separated_prefix() == "/reviews");
  REQUIRE(vh.routes(1).match().headers_size() == 1);
  CHECK(vh.routes(1).match().headers(0).name() == "end-user");
  CHECK(vh.routes(1).route().cluster() == "outbound|9080||reviews-v2.bookinfo.svc.cluster.local");
  CHECK(vh.routes(2).match().path_separated_prefix() == "/reviews");
  CHECK(vh.routes(2).match().headers_size() == 0);
  const auto& wc = vh.routes(2).route().weighted_clusters();
  REQUIRE(wc.clusters_size() == 2);
  CHECK(wc.clusters(0).name() == "outbound|9080||reviews-v1.bookinfo.svc.cluster.local");
  CHECK(wc.clusters(0).weight().value() == 25);
  CHECK(wc.clusters(1).name() == "outbound|9080||reviews-v2.bookinfo.svc.cluster.local");
  CHECK(wc.clusters(1).weight().value() == 75);
  CHECK(vh.routes(3).match().path_separated_prefix() == "/static");
  CHECK(vh.routes(4).match().safe_regex().regex() == "/api/v[0-9]+/.*");
  REQUIRE(vh.routes(4).match().query_parameters_size() == 1);
  CHECK(vh.routes(4).match().query_parameters(0).name() == "debug");
  bool method = false;
  for (const auto& h : vh.routes(4).match().headers()) method |= h.name() == ":method";
  CHECK(method);
  REQUIRE(vh.routes(4).request_headers_to_add_size() == 1);
  CHECK(vh.routes(4).request_headers_to_add(0).header().key() == "x-from");

  // Port 443: the same route under the listener's hostname, in its own RouteConfiguration.
  auto rcs = unpack<route::RouteConfiguration>(r.routes.at(https_routes));
  REQUIRE(rcs.virtual_hosts_size() == 1);  // no-host (ratings.example.com) meets nothing there
  CHECK(rcs.virtual_hosts(0).name() == "bookinfo.example.com:443");
  CHECK(rcs.virtual_hosts(0).routes_size() == 5);

  // Port 8080 (*.example.com, Same namespace): hostnames intersected with the listener's.
  auto rcw = unpack<route::RouteConfiguration>(r.routes.at("http.8080"));
  INFO(rcw.DebugString());
  CHECK(rcw.virtual_hosts_size() == 3);
  REQUIRE(vhost(rcw, "a.example.com:8080"));
  CHECK(vhost(rcw, "a.example.com:8080")->routes(0).route().cluster() ==
        "outbound|9080||productpage.bookinfo.svc.cluster.local");
  CHECK(vhost(rcw, "*.b.example.com:8080"));
  REQUIRE(vhost(rcw, "*.example.com:8080"));  // wild-any: no hostnames -> the listener's
  CHECK(vhost(rcw, "*.example.com:8080")->routes(0).route().cluster() ==
        "outbound|9080||reviews-v1.bookinfo.svc.cluster.local");
  CHECK_FALSE(vhost(rcw, "other.org:8080"));

  // Clusters and endpoints: the Services' pods.
  auto rv = unpack<envoy::config::endpoint::v3::ClusterLoadAssignment>(
      r.endpoints.at("outbound|9080||reviews-v2.bookinfo.svc.cluster.local"));
  REQUIRE(rv.endpoints(0).lb_endpoints_size() == 1);
  CHECK(rv.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().address() == "10.0.1.3");

  // Routes that attach nowhere: a Warning naming the parentRef and why; the rest applies.
  const auto& ds = c.result.diagnostics;
  CHECK(
      has_diag(ds, Severity::Warning, "bookinfo/ghost", "spec.parentRefs[0]", "Gateway istio-ingress/nope not found"));
  CHECK(has_diag(ds, Severity::Warning, "bookinfo/not-allowed", "spec.parentRefs[0]", "NotAllowedByListeners"));
  CHECK(has_diag(ds, Severity::Warning, "istio-ingress/no-host", "spec.parentRefs[0]", "NoMatchingListenerHostname"));
  CHECK_FALSE(has_diag(ds, Severity::Warning, "bookinfo/bookinfo", "spec.parentRefs[0]", ""));
  // Gateway API routes to a Gateway are not Service routes: nothing about waypoints.
  CHECK_FALSE(has_diag(ds, Severity::Warning, "", "", "use-waypoint"));
}

TEST_CASE("bad Gateway API ingress input is reported naming the field; the rest compiles") {
  std::string yaml = kGatewayApiMesh;
  yaml += R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: selector-gw, namespace: istio-ingress}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 81, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {a: b}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: passthrough, namespace: istio-ingress}
spec:
  gatewayClassName: istio
  listeners:
  - {name: tls, port: 8443, protocol: HTTPS, tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: other-secret, namespace: istio-ingress}
spec:
  gatewayClassName: istio
  listeners:
  - {name: tls, port: 8444, protocol: HTTPS, tls: {certificateRefs: [{name: c, namespace: elsewhere}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cors, namespace: bookinfo}
spec:
  parentRefs: [{name: bookinfo-gw, namespace: istio-ingress}]
  rules:
  - filters: [{type: CORS, cors: {allowOrigins: ["*"]}}]
    backendRefs: [{name: productpage, port: 9080}]
)";
  auto c = compile_yaml(yaml);
  INFO(diag_text(c.load_diags) << diag_text(c.result.diagnostics));
  CHECK(has_diag(c.load_diags, Severity::Error, "istio-ingress/selector-gw",
                 "spec.listeners[0].allowedRoutes.namespaces.from", "Selector is not supported"));
  CHECK(has_diag(c.load_diags, Severity::Error, "istio-ingress/passthrough", "spec.listeners[0].tls.mode",
                 "'Passthrough' is not supported"));
  CHECK(has_diag(c.load_diags, Severity::Error, "istio-ingress/other-secret",
                 "spec.listeners[0].tls.certificateRefs[0].namespace", "ReferenceGrant"));
  CHECK(has_diag(c.load_diags, Severity::Error, "bookinfo/cors", "spec.rules[0].filters[0].type",
                 "filter type 'CORS' is not supported"));
  CHECK(c.result.by_gateway.count("ingress:istio-ingress/selector-gw") == 0);
  // The good Gateway and its routes are untouched.
  REQUIRE(c.result.by_proxy.count("gw-0.istio-ingress") == 1);
  auto rc = unpack<route::RouteConfiguration>(c.result.by_proxy.at("gw-0.istio-ingress")->routes.at("http.80"));
  REQUIRE(rc.virtual_hosts_size() == 1);
  CHECK(rc.virtual_hosts(0).routes_size() == 5);
}

// What the status writer reports (gateway_attachment.h) is what the compile did: counts per
// listener, one verdict per parentRef with the Gateway API reason, backends resolved or not.
TEST_CASE("the compile exposes Gateway API attachment: routes per listener and parentRef verdicts") {
  auto c = compile_yaml(std::string(kGatewayApiMesh) + R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: typo, namespace: istio-ingress}
spec:
  parentRefs: [{name: bookinfo-gw, sectionName: htp}, {name: bookinfo-gw, sectionName: http}, {name: theirs}]
  rules: [{backendRefs: [{name: productpage, namespace: bookinfo, port: 9080}, {name: gone, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: istio-ingress}
spec:
  gatewayClassName: other-vendor
  listeners: [{name: http, port: 80, protocol: HTTP}]
)");
  const auto& att = c.result.attachments;
  REQUIRE(att.listeners.count("istio-ingress/bookinfo-gw") == 1);
  const auto& ls = att.listeners.at("istio-ingress/bookinfo-gw");
  CHECK(ls.at("http") == 2);   // bookinfo (all listeners) + typo's second parentRef
  CHECK(ls.at("https") == 1);  // bookinfo; no-host meets no hostname
  CHECK(ls.at("wild") == 2);   // wild-a, wild-any; bookinfo is from another namespace

  auto parent = [&](const std::string& key, size_t i) {
    const auto& ps = att.routes.at(key).parents;
    for (const auto& p : ps)
      if (p.index == i) return p;
    FAIL("no verdict for " << key << " parentRef " << i);
    return ps.front();
  };
  CHECK(parent("HTTPRoute/bookinfo/bookinfo", 0).accepted);
  CHECK(parent("HTTPRoute/bookinfo/bookinfo", 0).reason == "Accepted");
  CHECK(parent("HTTPRoute/bookinfo/ghost", 0).reason == "NoMatchingParent");
  CHECK_FALSE(parent("HTTPRoute/bookinfo/not-allowed", 0).accepted);
  CHECK(parent("HTTPRoute/bookinfo/not-allowed", 0).reason == "NotAllowedByListeners");
  CHECK(parent("HTTPRoute/istio-ingress/no-host", 0).reason == "NoMatchingListenerHostname");
  CHECK(parent("HTTPRoute/istio-ingress/typo", 0).reason == "NoMatchingParent");
  CHECK(parent("HTTPRoute/istio-ingress/typo", 0).message.find("htp") != std::string::npos);
  CHECK(parent("HTTPRoute/istio-ingress/typo", 1).accepted);
  CHECK(att.routes.at("HTTPRoute/istio-ingress/typo").parents.size() == 2);  // not the other vendor's Gateway

  CHECK(att.routes.at("HTTPRoute/bookinfo/bookinfo").backends_resolved);
  const auto& typo = att.routes.at("HTTPRoute/istio-ingress/typo");
  CHECK_FALSE(typo.backends_resolved);
  CHECK(typo.backend_message.find("istio-ingress/gone") != std::string::npos);
}

TEST_CASE("GRPCRoutes attach to an ingress Gateway like HTTPRoutes; allowedRoutes.kinds narrows") {
  std::string yaml = kGatewayApiMesh;
  const std::string from = "  - {name: wild, port: 8080, protocol: HTTP, hostname: \"*.example.com\"}\n";
  REQUIRE(yaml.find(from) != std::string::npos);
  yaml.replace(yaml.find(from), from.size(),
               from + "  - {name: http-only, port: 8081, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}]}}\n");
  yaml += R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: calc, namespace: istio-ingress}
spec:
  parentRefs: [{name: bookinfo-gw, sectionName: wild}, {name: bookinfo-gw, sectionName: http-only}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: calc.Calculator, method: Add}}]
    backendRefs: [{name: productpage, namespace: bookinfo, port: 9080}]
)";
  auto c = compile_yaml(yaml);
  INFO(diag_text(c.load_diags) << diag_text(c.result.diagnostics));
  const WaypointResources& r = *c.result.by_proxy.at("gw-0.istio-ingress");
  REQUIRE(r.routes.count("http.8080") == 1);
  auto rc = unpack<route::RouteConfiguration>(r.routes.at("http.8080"));
  CHECK(waypoint::xds::parse_route_configuration("http.8080", rc.SerializeAsString()));
  const auto* vh = vhost(rc, "grpc.example.com:8080");
  REQUIRE(vh);
  REQUIRE(vh->routes_size() == 1);
  CHECK(vh->routes(0).match().path() == "/calc.Calculator/Add");
  CHECK(vh->routes(0).route().cluster() == "outbound|9080||productpage.bookinfo.svc.cluster.local");

  const auto& att = c.result.attachments;
  const auto& ls = att.listeners.at("istio-ingress/bookinfo-gw");
  CHECK(ls.at("wild") == 3);  // wild-a, wild-any and the GRPCRoute
  const auto& ps = att.routes.at("GRPCRoute/istio-ingress/calc").parents;
  REQUIRE(ps.size() == 2);
  for (const auto& p : ps) {
    if (p.index == 0) CHECK(p.accepted);
    if (p.index == 1) {
      CHECK_FALSE(p.accepted);
      CHECK(p.reason == "NotAllowedByListeners");
    }
  }
}
