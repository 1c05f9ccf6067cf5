// DestinationRule traffic policy compiled for waypoints (controlplane/traffic_policy*.h):
// YAML in, the Envoy Cluster / Route / ClusterLoadAssignment fields istiod writes out, and the
// same bytes through the waypoint's own converter (waypoint/xds/convert.h), which must accept
// them and read back the values the policy asked for.
#include <catch2/catch.hpp>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "tests/unit/controlplane/waypoint_fixture.h"

using namespace controlplane;
using namespace wptest;
namespace route = envoy::config::route::v3;
namespace cluster = envoy::config::cluster::v3;
namespace endpoint = envoy::config::endpoint::v3;

namespace {

// The seeds' Calculate app behind a waypoint with two proxies in different zones, and pods in
// three localities (zone a and b of region r1, zone c of region r2).
const std::string kMesh = std::string(kWaypointMeshPrefix) + R"(---
apiVersion: v1
kind: Pod
metadata: {name: waypoint-a, namespace: demo, labels: {gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none}}
spec: {serviceAccountName: waypoint, nodeName: node-a}
status: {podIP: 10.0.0.9}
---
apiVersion: v1
kind: Pod
metadata: {name: waypoint-b, namespace: demo, labels: {gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none}}
spec: {serviceAccountName: waypoint, nodeName: node-b}
status: {podIP: 10.0.0.10}
---
apiVersion: v1
kind: Service
metadata: {name: calculate, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: calculate}
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 8080, targetPort: 80}
  - {name: grpc, port: 9090, targetPort: 90}
---
apiVersion: v1
kind: Pod
metadata: {name: cat, namespace: demo, labels: {app: calculate, version: v1}}
spec: {nodeName: node-a}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: dog, namespace: demo, labels: {app: calculate, version: v2}}
spec: {nodeName: node-b}
status: {podIP: 10.0.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: fox, namespace: demo, labels: {app: calculate, version: v2}}
spec: {nodeName: node-c}
status: {podIP: 10.0.1.3}
)";

const std::string kHost = "calculate.demo.svc.cluster.local";
const std::string kCluster8080 = "inbound-vip|8080|http|" + kHost;
const std::string kCluster9090 = "inbound-vip|9090|http|" + kHost;

// The workloads as the ztunnel compiler and the kube source's annotate() give them: the
// locality of each pod's Node.
ztunnel::LocalConfig localities() {
  ztunnel::LocalConfig cfg;
  auto add = [&](const char* pod, const char* region, const char* zone) {
    ztunnel::Workload w;
    w.uid = std::string("Kubernetes//Pod/demo/") + pod;
    w.locality.region = region;
    w.locality.zone = zone;
    cfg.workloads.push_back(w);
  };
  add("waypoint-a", "r1", "a");
  add("waypoint-b", "r1", "b");
  add("cat", "r1", "a");
  add("dog", "r1", "b");
  add("fox", "r2", "c");
  return cfg;
}

Compiled compile_yaml(const std::string& yaml) {
  const ztunnel::LocalConfig cfg = localities();
  return compile_waypoint_yaml(yaml, &cfg);
}

// Pods in different zones get per-locality copies; cases read the first waypoint pod's by default.
const std::string kProxyA = "waypoint-a.demo";

std::string dr(const std::string& spec_body, const std::string& name = "calculate") {
  return "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " + name +
         ", namespace: demo}\nspec:\n  host: calculate\n" + spec_body;
}

// Priority of each endpoint address in a load assignment.
std::map<std::string, uint32_t> priorities(const endpoint::ClusterLoadAssignment& cla) {
  std::map<std::string, uint32_t> out;
  for (const auto& l : cla.endpoints()) {
    for (const auto& e : l.lb_endpoints()) out[e.endpoint().address().socket_address().address()] = l.priority();
  }
  return out;
}

}  // namespace

TEST_CASE("the circuit-breaker story: connection pool and outlier detection become istiod's Cluster fields") {
  auto c = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 7, connectTimeout: 3s, tcpKeepalive: {probes: 3, time: 60s, interval: 10s}}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1, maxRetries: 4, idleTimeout: 30s}
    outlierDetection:
      consecutive5xxErrors: 3
      consecutiveGatewayErrors: 2
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
)"));
  CHECK(c.load_diags.empty());
  CHECK(c.result.diagnostics.empty());
  const auto& w = served_to(c, kProxyA);
  auto cl = unpack<cluster::Cluster>(w.clusters.at(kCluster8080));
  const auto& t = cl.circuit_breakers().thresholds(0);
  CHECK(t.max_connections().value() == 7);
  CHECK(t.max_pending_requests().value() == 1);
  CHECK(t.max_requests().value() == 4294967295u);  // http2MaxRequests unset: istiod's 2^32-1
  CHECK(t.max_retries().value() == 4);
  CHECK(t.track_remaining());
  CHECK(cl.connect_timeout().seconds() == 3);
  CHECK(cl.upstream_connection_options().tcp_keepalive().keepalive_probes().value() == 3);
  CHECK(cl.upstream_connection_options().tcp_keepalive().keepalive_time().value() == 60);
  CHECK(cl.upstream_connection_options().tcp_keepalive().keepalive_interval().value() == 10);
  const auto& od = cl.outlier_detection();
  CHECK(od.consecutive_5xx().value() == 3);
  CHECK(od.enforcing_consecutive_5xx().value() == 100);
  CHECK(od.consecutive_gateway_failure().value() == 2);
  CHECK(od.enforcing_consecutive_gateway_failure().value() == 100);
  CHECK(od.has_enforcing_success_rate());
  CHECK(od.enforcing_success_rate().value() == 0);
  CHECK(od.interval().seconds() == 10);
  CHECK(od.base_ejection_time().seconds() == 30);
  CHECK(od.max_ejection_percent().value() == 100);
  // minHealthPercent unset: istiod still writes the threshold, 0 = no panic mode.
  CHECK(cl.common_lb_config().has_healthy_panic_threshold());
  CHECK(cl.common_lb_config().healthy_panic_threshold().value() == 0);
  envoy::extensions::upstreams::http::v3::HttpProtocolOptions o;
  REQUIRE(
      cl.typed_extension_protocol_options().at("envoy.extensions.upstreams.http.v3.HttpProtocolOptions").UnpackTo(&o));
  CHECK(o.common_http_protocol_options().idle_timeout().seconds() == 30);
  CHECK(o.common_http_protocol_options().max_requests_per_connection().value() == 1);

  // The waypoint reads back what the policy asked for.
  const auto wc = converted_cluster(w, kCluster8080);
  CHECK(wc.connect_timeout == std::chrono::milliseconds(3000));
  CHECK(wc.policy.circuit_breakers.max_connections == 7);
  CHECK(wc.policy.circuit_breakers.max_pending_requests == 1);
  CHECK(wc.policy.circuit_breakers.max_retries == 4);
  REQUIRE(wc.policy.outlier_detection.has_value());
  CHECK(wc.policy.outlier_detection->consecutive_5xx == 3);
  CHECK(wc.policy.outlier_detection->enforcing_consecutive_gateway_failure == 100);
  CHECK(wc.policy.outlier_detection->base_ejection_time == std::chrono::milliseconds(30000));
  CHECK(wc.policy.outlier_detection->max_ejection_percent == 100);
  CHECK(wc.policy.healthy_panic_threshold_percent == 0);
  CHECK(wc.policy.idle_timeout == std::chrono::milliseconds(30000));
  CHECK(wc.policy.max_requests_per_connection == 1);
  check_waypoint_accepts(w);
}

TEST_CASE("without a traffic policy clusters keep Istio's defaults") {
  auto c = compile_yaml(kMesh);
  const auto& w = served_to(c, kProxyA);
  auto cl = unpack<cluster::Cluster>(w.clusters.at(kCluster8080));
  CHECK(cl.lb_policy() == cluster::Cluster::LEAST_REQUEST);
  CHECK(cl.connect_timeout().seconds() == 10);
  CHECK(cl.circuit_breakers().thresholds(0).max_connections().value() == 4294967295u);
  CHECK_FALSE(cl.has_outlier_detection());
  CHECK_FALSE(cl.common_lb_config().has_healthy_panic_threshold());  // Envoy's 50%
  // Without a locality policy every waypoint pod gets the same resources.
  CHECK(c.result.by_proxy.at("waypoint-a.demo") == c.result.by_proxy.at("waypoint-b.demo"));
  check_waypoint_accepts(w);
}

TEST_CASE("consistentHash: ring hash or maglev on the cluster, hash_policy on every route to it") {
  const std::string vs = R"(
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculate, namespace: demo}
spec:
  hosts: [calculate]
  http:
  - name: sticky-v2
    match: [{headers: {x-v2: {exact: "1"}}}]
    route: [{destination: {host: calculate, subset: v2, port: {number: 8080}}}]
  - name: split
    route:
    - {destination: {host: calculate, subset: v1, port: {number: 8080}}, weight: 50}
    - {destination: {host: calculate, subset: v2, port: {number: 8080}}, weight: 50}
)";
  auto c = compile_yaml(std::string(kMesh) + vs + dr(R"(  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: X-User, maglev: {tableSize: 1009}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpCookie: {name: session, path: /, ttl: 60s}
          ringHash: {minimumRingSize: 2048}
)"));
  CHECK(c.load_diags.empty());
  CHECK(c.result.diagnostics.empty());
  const auto& w = served_to(c, kProxyA);
  auto v1 = unpack<cluster::Cluster>(w.clusters.at("inbound-vip|8080|http/v1|" + kHost));
  CHECK(v1.lb_policy() == cluster::Cluster::MAGLEV);
  CHECK(v1.maglev_lb_config().table_size().value() == 1009);
  auto v2 = unpack<cluster::Cluster>(w.clusters.at("inbound-vip|8080|http/v2|" + kHost));
  CHECK(v2.lb_policy() == cluster::Cluster::RING_HASH);
  CHECK(v2.ring_hash_lb_config().minimum_ring_size().value() == 2048);

  auto rc = unpack<route::RouteConfiguration>(w.routes.at(kCluster8080));
  REQUIRE(rc.virtual_hosts(0).routes_size() == 2);
  const auto& sticky = rc.virtual_hosts(0).routes(0).route();
  REQUIRE(sticky.hash_policy_size() == 1);
  CHECK(sticky.hash_policy(0).cookie().name() == "session");
  CHECK(sticky.hash_policy(0).cookie().path() == "/");
  CHECK(sticky.hash_policy(0).cookie().ttl().seconds() == 60);
  // A hashed single destination keeps retries on the same host (no previous_hosts predicate).
  CHECK(sticky.retry_policy().retry_host_predicate_size() == 0);
  const auto& split = rc.virtual_hosts(0).routes(1).route();
  REQUIRE(split.hash_policy_size() == 2);  // one per destination, in order, as istiod appends them
  CHECK(split.hash_policy(0).header().header_name() == "x-user");
  CHECK(split.hash_policy(1).has_cookie());
  CHECK(split.retry_policy().retry_host_predicate_size() == 1);

  auto vc = converted_cluster(w, "inbound-vip|8080|http/v2|" + kHost);
  CHECK(vc.policy.lb_policy == waypoint::LbPolicy::RingHash);
  CHECK(vc.policy.ring_hash_minimum_ring_size == 2048);
  check_waypoint_accepts(w);

  // Without a VirtualService the default route carries the service's hash.
  auto d = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    loadBalancer:
      consistentHash: {useSourceIp: true}
)"));
  const auto& dw = served_to(d, kProxyA);
  auto drc = unpack<route::RouteConfiguration>(dw.routes.at(kCluster8080));
  REQUIRE(drc.virtual_hosts(0).routes(0).route().hash_policy_size() == 1);
  CHECK(drc.virtual_hosts(0).routes(0).route().hash_policy(0).connection_properties().source_ip());
  auto dcl = unpack<cluster::Cluster>(dw.clusters.at(kCluster8080));
  CHECK(dcl.lb_policy() == cluster::Cluster::RING_HASH);
  CHECK(dcl.ring_hash_lb_config().minimum_ring_size().value() == 1024);
  check_waypoint_accepts(dw);
}

TEST_CASE("subset policy merges over the top level by component; a port-level entry replaces it whole") {
  auto c = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    portLevelSettings:
    - port: {number: 9090}
      outlierDetection: {consecutive5xxErrors: 2}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
)"));
  CHECK(c.load_diags.empty());
  const auto& w = served_to(c, kProxyA);
  auto top = unpack<cluster::Cluster>(w.clusters.at(kCluster8080));
  CHECK(top.lb_policy() == cluster::Cluster::ROUND_ROBIN);
  CHECK(top.circuit_breakers().thresholds(0).max_connections().value() == 10);
  CHECK_FALSE(top.has_outlier_detection());
  // Port 9090: the port-level entry, nothing inherited (LB back to LEAST_REQUEST, no limit).
  auto port = unpack<cluster::Cluster>(w.clusters.at(kCluster9090));
  CHECK(port.lb_policy() == cluster::Cluster::LEAST_REQUEST);
  CHECK(port.circuit_breakers().thresholds(0).max_connections().value() == 4294967295u);
  CHECK(port.outlier_detection().consecutive_5xx().value() == 2);
  // Subset v2 on 8080: its loadBalancer over the top level's connection pool.
  auto v2 = unpack<cluster::Cluster>(w.clusters.at("inbound-vip|8080|http/v2|" + kHost));
  CHECK(v2.lb_policy() == cluster::Cluster::RANDOM);
  CHECK(v2.circuit_breakers().thresholds(0).max_connections().value() == 10);
  // Subset v2 on 9090: its loadBalancer over the port-level policy.
  auto v2p = unpack<cluster::Cluster>(w.clusters.at("inbound-vip|9090|http/v2|" + kHost));
  CHECK(v2p.lb_policy() == cluster::Cluster::RANDOM);
  CHECK(v2p.outlier_detection().consecutive_5xx().value() == 2);
  CHECK(v2p.circuit_breakers().thresholds(0).max_connections().value() == 4294967295u);
  check_waypoint_accepts(w);
}

TEST_CASE("locality failover: priority 0 is the waypoint pod's own zone, only with outlierDetection") {
  auto c = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
)"));
  CHECK(c.result.diagnostics.empty());
  // waypoint-a is in r1/a: cat (r1/a) 0, dog (r1/b) 1, fox (r2/c) 2.
  auto a = unpack<endpoint::ClusterLoadAssignment>(served_to(c, "waypoint-a.demo").endpoints.at(kCluster8080));
  CHECK(priorities(a) == std::map<std::string, uint32_t>{{"10.0.1.1", 0}, {"10.0.1.2", 1}, {"10.0.1.3", 2}});
  REQUIRE(a.endpoints_size() == 3);
  CHECK(a.endpoints(0).locality().region() == "r1");
  CHECK(a.endpoints(0).locality().zone() == "a");
  // waypoint-b (r1/b) sees dog first.
  auto b = unpack<endpoint::ClusterLoadAssignment>(served_to(c, "waypoint-b.demo").endpoints.at(kCluster8080));
  CHECK(priorities(b) == std::map<std::string, uint32_t>{{"10.0.1.1", 1}, {"10.0.1.2", 0}, {"10.0.1.3", 2}});
  // The default failover sets no locality-weighted config (istiod sets it for explicit failover).
  auto cl = unpack<cluster::Cluster>(served_to(c, kProxyA).clusters.at(kCluster8080));
  CHECK_FALSE(cl.common_lb_config().has_locality_weighted_lb_config());
  check_waypoint_accepts(served_to(c, "waypoint-a.demo"));
  check_waypoint_accepts(served_to(c, "waypoint-b.demo"));
  // The waypoint's model carries the priorities.
  google::protobuf::Any any;
  REQUIRE(any.ParseFromString(served_to(c, "waypoint-b.demo").endpoints.at(kCluster8080).any));
  auto la = waypoint::xds::parse_load_assignment(kCluster8080, any.value());
  REQUIRE(la.ok());
  for (const auto& e : la->endpoints)
    CHECK(e.priority == (e.address == "10.0.1.2" ? 0u : e.address == "10.0.1.1" ? 1u : 2u));

  // Explicit failover r1 -> r2 and failoverPriority by version label.
  auto f = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
    loadBalancer:
      localityLbSetting:
        failoverPriority: [version=v2]
)"));
  CHECK(f.load_diags.empty());
  auto fa = unpack<endpoint::ClusterLoadAssignment>(served_to(f, kProxyA).endpoints.at(kCluster8080));
  // version=v2 endpoints (dog, fox) first, then cat; without a failover list istiod does not add
  // proximity on top of the labels.
  CHECK(priorities(fa) == std::map<std::string, uint32_t>{{"10.0.1.1", 1}, {"10.0.1.2", 0}, {"10.0.1.3", 0}});
  // With a failover list too, proximity (and the failover region) refines each label group.
  auto g = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
    loadBalancer:
      localityLbSetting:
        failoverPriority: [version=v2]
        failover: [{from: r1, to: r2}]
)"));
  auto ga = unpack<endpoint::ClusterLoadAssignment>(served_to(g, kProxyA).endpoints.at(kCluster8080));
  CHECK(priorities(ga) == std::map<std::string, uint32_t>{{"10.0.1.1", 2}, {"10.0.1.2", 0}, {"10.0.1.3", 1}});
  auto fcl = unpack<cluster::Cluster>(served_to(f, kProxyA).clusters.at(kCluster8080));
  CHECK(fcl.common_lb_config().has_locality_weighted_lb_config());
  CHECK(converted_cluster(served_to(f, kProxyA), kCluster8080).policy.locality_weighted_lb);
  check_waypoint_accepts(served_to(f, kProxyA));

  // Without outlierDetection failover does nothing (istiod's rule), and the user is told.
  auto n = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        failover: [{from: r1, to: r2}]
)"));
  auto na = unpack<endpoint::ClusterLoadAssignment>(served_to(n, kProxyA).endpoints.at(kCluster8080));
  CHECK(priorities(na) == std::map<std::string, uint32_t>{{"10.0.1.1", 0}, {"10.0.1.2", 0}, {"10.0.1.3", 0}});
  REQUIRE(n.result.diagnostics.size() == 1);
  CHECK(n.result.diagnostics[0].severity == Severity::Warning);
  CHECK(n.result.diagnostics[0].field == "spec.trafficPolicy.loadBalancer.localityLbSetting");
  CHECK(n.result.by_proxy.at("waypoint-a.demo") == n.result.by_proxy.at("waypoint-b.demo"));

  // enabled: false turns it off even with outlierDetection.
  auto off = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
    loadBalancer: {localityLbSetting: {enabled: false}}
)"));
  auto offa = unpack<endpoint::ClusterLoadAssignment>(served_to(off, kProxyA).endpoints.at(kCluster8080));
  CHECK(priorities(offa) == std::map<std::string, uint32_t>{{"10.0.1.1", 0}, {"10.0.1.2", 0}, {"10.0.1.3", 0}});
}

TEST_CASE("locality distribute: weights per locality from the waypoint pod's point of view") {
  auto c = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: r1/a/*
          to: {"r1/a/*": 80, "r2/*": 20}
)"));
  CHECK(c.load_diags.empty());
  auto a = unpack<endpoint::ClusterLoadAssignment>(served_to(c, "waypoint-a.demo").endpoints.at(kCluster8080));
  std::map<std::string, std::pair<uint32_t, int>> by_zone;  // zone -> (weight, endpoints)
  for (const auto& l : a.endpoints())
    by_zone[l.locality().zone()] = {l.load_balancing_weight().value(), l.lb_endpoints_size()};
  CHECK(by_zone["a"] == std::make_pair(80u, 1));
  CHECK(by_zone["c"] == std::make_pair(20u, 1));
  CHECK(by_zone["b"].second == 0);  // not named by the rule: no traffic
  // waypoint-b matches no `from`: endpoints untouched.
  auto b = unpack<endpoint::ClusterLoadAssignment>(served_to(c, "waypoint-b.demo").endpoints.at(kCluster8080));
  for (const auto& l : b.endpoints()) CHECK(l.lb_endpoints_size() == 1);
  CHECK(unpack<cluster::Cluster>(served_to(c, kProxyA).clusters.at(kCluster8080))
            .common_lb_config()
            .has_locality_weighted_lb_config());
  google::protobuf::Any any;
  REQUIRE(any.ParseFromString(served_to(c, kProxyA).endpoints.at(kCluster8080).any));
  auto la = waypoint::xds::parse_load_assignment(kCluster8080, any.value());
  REQUIRE(la.ok());
  REQUIRE(la->endpoints.size() == 2);
  for (const auto& e : la->endpoints) CHECK(e.locality_weight == (e.address == "10.0.1.1" ? 80u : 20u));
  check_waypoint_accepts(served_to(c, kProxyA));
}

TEST_CASE("warmup, h2 upgrade, client protocol and stream limits") {
  auto c = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 45s}
    connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {warmup: {duration: 5s}}
      connectionPool: {http: {maxConcurrentStreams: 50, http2MaxRequests: 200}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {http: {useClientProtocol: true}}
)"));
  CHECK(c.load_diags.empty());
  const auto& w = served_to(c, kProxyA);
  using HttpOptions = envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
  auto options = [&](const cluster::Cluster& cl) {
    HttpOptions o;
    REQUIRE(cl.typed_extension_protocol_options()
                .at("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
                .UnpackTo(&o));
    return o;
  };
  auto top = unpack<cluster::Cluster>(w.clusters.at(kCluster8080));
  CHECK(top.round_robin_lb_config().slow_start_config().slow_start_window().seconds() == 45);
  CHECK(options(top).explicit_http_config().has_http2_protocol_options());  // http port upgraded
  auto wt = converted_cluster(w, kCluster8080);
  REQUIRE(wt.policy.slow_start_window.has_value());
  CHECK(*wt.policy.slow_start_window == std::chrono::milliseconds(45000));
  CHECK(wt.policy.upstream_protocol == waypoint::UpstreamProtocol::Http2);

  auto grpc = unpack<cluster::Cluster>(w.clusters.at(kCluster9090));
  CHECK(grpc.lb_policy() == cluster::Cluster::LEAST_REQUEST);
  CHECK(grpc.least_request_lb_config().slow_start_config().slow_start_window().seconds() == 5);
  CHECK(options(grpc).explicit_http_config().http2_protocol_options().max_concurrent_streams().value() == 50);
  CHECK(grpc.circuit_breakers().thresholds(0).max_requests().value() == 200);
  auto wg = converted_cluster(w, kCluster9090);
  CHECK(wg.policy.max_concurrent_streams == 50);
  CHECK(wg.policy.circuit_breakers.max_requests == 200);

  // The subset's connectionPool replaces the top level's whole (UPGRADE is not inherited).
  auto v1 = unpack<cluster::Cluster>(w.clusters.at("inbound-vip|8080|http/v1|" + kHost));
  CHECK(options(v1).has_use_downstream_protocol_config());
  CHECK(v1.round_robin_lb_config().slow_start_config().slow_start_window().seconds() == 45);  // LB inherited
  check_waypoint_accepts(w);

  auto u = compile_yaml(std::string(kMesh) + dr(R"(  trafficPolicy:
    connectionPool: {http: {useClientProtocol: true}}
    tls: {mode: ISTIO_MUTUAL}
)"));
  CHECK(u.load_diags.empty());
  auto ucl = unpack<cluster::Cluster>(served_to(u, kProxyA).clusters.at(kCluster8080));
  CHECK(options(ucl).has_use_downstream_protocol_config());
  CHECK(converted_cluster(served_to(u, kProxyA), kCluster8080).policy.upstream_protocol ==
        waypoint::UpstreamProtocol::UseDownstream);
}

TEST_CASE("a traffic policy field the waypoint does not implement is refused naming it; other objects compile") {
  struct Bad {
    const char* body;
    const char* field;
  };
  const Bad cases[] = {
      {"  trafficPolicy:\n    loadBalancer: {simple: PASSTHROUGH}\n", "spec.trafficPolicy.loadBalancer.simple"},
      {"  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n", "spec.trafficPolicy.loadBalancer.simple"},
      {"  trafficPolicy:\n    loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}\n",
       "spec.trafficPolicy.loadBalancer.consistentHash"},
      {"  trafficPolicy:\n    loadBalancer: {consistentHash: {useSourceIp: false}}\n",
       "spec.trafficPolicy.loadBalancer.consistentHash"},
      {"  trafficPolicy:\n    loadBalancer: {consistentHash: {httpCookie: {ttl: 1s}}}\n",
       "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name"},
      {"  trafficPolicy:\n    loadBalancer: {consistentHash: {httpHeaderName: x, maglev: {tableSize: 1000}}}\n",
       "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize"},
      {"  trafficPolicy:\n    loadBalancer:\n      localityLbSetting: {distribute: [{from: r1, to: {r1: 60}}]}\n",
       "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to"},
      {"  trafficPolicy:\n    loadBalancer: {warmup: {duration: 1s, aggression: 2}}\n",
       "spec.trafficPolicy.loadBalancer.warmup.aggression"},
      {"  trafficPolicy:\n    connectionPool: {tcp: {maxConnectionDuration: 1h}}\n",
       "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration"},
      {"  trafficPolicy:\n    connectionPool: {http: {h2UpgradePolicy: SOMETIMES}}\n",
       "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy"},
      {"  trafficPolicy:\n    connectionPool: {http: {maxRetires: 3}}\n",
       "spec.trafficPolicy.connectionPool.http.maxRetires"},
      {"  trafficPolicy:\n    outlierDetection: {splitExternalLocalOriginErrors: true}\n",
       "spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors"},
      {"  trafficPolicy:\n    outlierDetection: {baseEjectionTime: soon}\n",
       "spec.trafficPolicy.outlierDetection.baseEjectionTime"},
      {"  trafficPolicy:\n    tls: {mode: SIMPLE}\n", "spec.trafficPolicy.tls.mode"},
      {"  trafficPolicy:\n    proxyProtocol: {version: V1}\n", "spec.trafficPolicy.proxyProtocol"},
      {"  trafficPolicy:\n    tunnel: {protocol: CONNECT}\n", "spec.trafficPolicy.tunnel"},
      {"  trafficPolicy:\n    portLevelSettings: [{port: {number: 8080}, tls: {mode: MUTUAL}}]\n",
       "spec.trafficPolicy.portLevelSettings[0].tls.mode"},
      {"  subsets:\n  - name: v1\n    trafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}\n",
       "spec.subsets[0].trafficPolicy.outlierDetection.maxEjectionPercent"},
  };
  for (const auto& bad : cases) {
    INFO(bad.body);
    // The bad rule is for calculate; a good one for another service still applies.
    const std::string other = R"(
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: calculate}
  clusterIP: 10.96.0.11
  ports: [{name: http, port: 8080, targetPort: 80}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: other, namespace: demo}
spec:
  host: other
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
)";
    auto c = compile_yaml(std::string(kMesh) + other + dr(bad.body));
    REQUIRE(c.load_diags.size() == 1);
    CHECK(c.load_diags[0].severity == Severity::Error);
    CHECK(c.load_diags[0].object == "DestinationRule demo/calculate");
    CHECK(c.load_diags[0].file == "mesh.yaml");
    CHECK(c.load_diags[0].field == bad.field);
    const auto& w = served_to(c, kProxyA);
    auto ok = unpack<cluster::Cluster>(w.clusters.at("inbound-vip|8080|http|other.demo.svc.cluster.local"));
    CHECK(ok.lb_policy() == cluster::Cluster::RANDOM);
    // calculate compiles without the refused rule: Istio's defaults.
    auto dflt = unpack<cluster::Cluster>(w.clusters.at(kCluster8080));
    CHECK(dflt.lb_policy() == cluster::Cluster::LEAST_REQUEST);
  }
}
