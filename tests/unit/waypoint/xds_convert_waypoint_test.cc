// Envoy v3 resources -> waypoint route model: what converts, and what is NACKed with which
// field named (waypoint/xds/convert.h, waypoint/xds/validate.h).
#include <catch2/catch.hpp>

#include <google/protobuf/unknown_field_set.h>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "waypoint/xds/convert.h"

namespace route = envoy::config::route::v3;
namespace cluster = envoy::config::cluster::v3;
namespace endpoint = envoy::config::endpoint::v3;
using namespace waypoint;

namespace {

// What istiod writes for a VirtualService with a header match, 90/10 weights, a timeout, a
// retry policy and an abort fault (waypoint-facts §1.2).
route::RouteConfiguration istio_like_route() {
  route::RouteConfiguration rc;
  rc.set_name("inbound-vip|8080|http|calculate.demo.svc.cluster.local");
  auto* vh = rc.add_virtual_hosts();
  vh->set_name("inbound|http|8080");
  vh->add_domains("*");
  auto* r = vh->add_routes();
  r->set_name("dark-launch");
  r->mutable_match()->set_prefix("/");
  auto* h = r->mutable_match()->add_headers();
  h->set_name("Version");
  h->mutable_string_match()->set_exact("dog");
  auto* a = r->mutable_route();
  auto* w = a->mutable_weighted_clusters();
  auto* c1 = w->add_clusters();
  c1->set_name("inbound-vip|8080|http/cat-with-plus|calculate.demo.svc.cluster.local");
  c1->mutable_weight()->set_value(90);
  auto* c2 = w->add_clusters();
  c2->set_name("inbound-vip|8080|http/dog-with-multi|calculate.demo.svc.cluster.local");
  c2->mutable_weight()->set_value(10);
  a->mutable_timeout()->set_seconds(2);
  auto* rp = a->mutable_retry_policy();
  rp->set_retry_on("connect-failure,refused-stream,5xx");
  rp->mutable_num_retries()->set_value(3);
  rp->mutable_per_try_timeout()->set_nanos(500'000'000);
  rp->add_retriable_status_codes(503);
  rp->add_retry_host_predicate()->set_name("envoy.retry_host_predicates.previous_hosts");
  rp->set_host_selection_retry_max_attempts(5);
  envoy::extensions::filters::http::fault::v3::HTTPFault fault;
  fault.mutable_abort()->set_http_status(503);
  fault.mutable_abort()->mutable_percentage()->set_numerator(250000);
  fault.mutable_abort()->mutable_percentage()->set_denominator(envoy::type::v3::FractionalPercent::MILLION);
  (*r->mutable_typed_per_filter_config())["envoy.filters.http.fault"].PackFrom(fault);
  auto* add = r->add_request_headers_to_add();
  add->mutable_header()->set_key("X-Canary");
  add->mutable_header()->set_value("100%%");
  add->set_append_action(envoy::config::core::v3::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
  return rc;
}

// Appends an unknown varint field to `m` (what a newer Envoy API field looks like to us).
void add_unknown(google::protobuf::Message& m, int number) {
  m.GetReflection()->MutableUnknownFields(&m)->AddVarint(number, 1);
}

}  // namespace

TEST_CASE("an Istio-style RouteConfiguration converts with Envoy's semantics") {
  auto r = xds::convert_route_configuration(istio_like_route());
  REQUIRE(r.ok());
  const RouteConfig& rc = *r;
  CHECK(rc.name == "inbound-vip|8080|http|calculate.demo.svc.cluster.local");
  REQUIRE(rc.virtual_hosts.size() == 1);
  CHECK(rc.virtual_hosts[0].domains == std::vector<std::string>{"*"});
  REQUIRE(rc.virtual_hosts[0].routes.size() == 1);
  const Route& route = rc.virtual_hosts[0].routes[0];
  CHECK(route.match.path_kind == RouteMatch::PathKind::Prefix);
  CHECK(route.match.case_sensitive);
  REQUIRE(route.match.headers.size() == 1);
  CHECK(route.match.headers[0].name == "version");  // lower-cased
  const auto& sm = std::get<StringMatcher>(route.match.headers[0].spec);
  CHECK(sm.kind == StringMatcher::Kind::Exact);
  CHECK(sm.value == "dog");
  const auto& action = std::get<RouteAction>(route.action);
  REQUIRE(action.weighted_clusters.size() == 2);
  CHECK(action.total_weight == 100);
  CHECK(action.weighted_clusters[1].weight == 10);
  CHECK(action.timeout == Duration(2000));
  REQUIRE(action.retry_policy);
  CHECK(action.retry_policy->num_retries == 3);
  CHECK(action.retry_policy->per_try_timeout == Duration(500));
  CHECK(action.retry_policy->retry_on == (retry_on::kConnectFailure | retry_on::kRefusedStream | retry_on::k5xx));
  CHECK(action.retry_policy->retriable_status_codes == std::vector<uint32_t>{503});
  CHECK(action.retry_policy->previous_hosts_predicate);
  CHECK(action.retry_policy->host_selection_retry_max_attempts == 5);
  REQUIRE(route.filters.fault);
  REQUIRE(route.filters.fault->abort);
  CHECK(route.filters.fault->abort->http_status == 503);
  CHECK(route.filters.fault->abort->percentage.numerator == 250000);
  CHECK(route.filters.fault->abort->percentage.denominator == 1000000);
  CHECK_FALSE(route.filters.fault->delay);
  REQUIRE(route.headers.request_headers_to_add.size() == 1);
  CHECK(route.headers.request_headers_to_add[0].key == "x-canary");
  CHECK(route.headers.request_headers_to_add[0].value == "100%");
  CHECK(route.headers.request_headers_to_add[0].append_action == AppendAction::OverwriteIfExistsOrAdd);
}

TEST_CASE("absent timeout keeps Envoy's 15 s default; 0s disables") {
  auto rc = istio_like_route();
  rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_route()->clear_timeout();
  auto r = xds::convert_route_configuration(rc);
  REQUIRE(r.ok());
  CHECK(std::get<RouteAction>(r->virtual_hosts[0].routes[0].action).timeout == kEnvoyDefaultRouteTimeout);
  rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_route()->mutable_timeout()->set_seconds(0);
  r = xds::convert_route_configuration(rc);
  REQUIRE(r.ok());
  CHECK(std::get<RouteAction>(r->virtual_hosts[0].routes[0].action).timeout == Duration(0));
}

TEST_CASE("an unknown field is NACKed with its number and message path") {
  auto rc = istio_like_route();
  add_unknown(*rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_route(), 34);  // internal_redirect_policy
  auto r = xds::convert_route_configuration(rc);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() ==
        "route.virtual_hosts[0].routes[0].route: unknown field #34 (envoy.config.route.v3.RouteAction) is not "
        "implemented");
}

TEST_CASE("a modelled field the waypoint does not implement is NACKed by name") {
  auto rc = istio_like_route();
  rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_route()->set_cluster_header("x-cluster");
  auto r = xds::convert_route_configuration(rc);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("route.virtual_hosts[0].routes[0].route.cluster_header: field not implemented") == 0);
}

TEST_CASE("typed_per_filter_config for a filter the waypoint does not run is NACKed naming the filter") {
  auto rc = istio_like_route();
  google::protobuf::Any any;
  any.set_type_url("type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor");
  (*rc.mutable_virtual_hosts(0)
        ->mutable_routes(0)
        ->mutable_typed_per_filter_config())["envoy.filters.http.compressor"] = any;
  auto r = xds::convert_route_configuration(rc);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("typed_per_filter_config[envoy.filters.http.compressor]") != std::string::npos);
  CHECK(r.error().find("not implemented") != std::string::npos);
}

TEST_CASE("an unknown field inside a fault filter payload is NACKed") {
  auto rc = istio_like_route();
  envoy::extensions::filters::http::fault::v3::HTTPFault fault;
  fault.mutable_abort()->set_http_status(500);
  add_unknown(fault, 7);  // response_rate_limit
  (*rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_typed_per_filter_config())["envoy.filters.http.fault"]
      .PackFrom(fault);
  auto r = xds::convert_route_configuration(rc);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("unknown field #7 (envoy.extensions.filters.http.fault.v3.HTTPFault)") != std::string::npos);
}

TEST_CASE("bad values name their field") {
  SECTION("regex") {
    auto rc = istio_like_route();
    rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_match()->mutable_safe_regex()->set_regex("(unclosed");
    auto r = xds::convert_route_configuration(rc);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("route.virtual_hosts[0].routes[0].match.safe_regex.regex: invalid regex") == 0);
  }
  SECTION("retry_on") {
    auto rc = istio_like_route();
    rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_route()->mutable_retry_policy()->set_retry_on("5xx,bogus");
    auto r = xds::convert_route_configuration(rc);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "route.virtual_hosts[0].routes[0].route.retry_policy.retry_on: unknown retry condition 'bogus'");
  }
  SECTION("header formatter") {
    auto rc = istio_like_route();
    rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_request_headers_to_add(0)->mutable_header()->set_value(
        "%DOWNSTREAM_REMOTE_ADDRESS%");
    auto r = xds::convert_route_configuration(rc);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("request_headers_to_add[0].header.value: header value formatters") != std::string::npos);
  }
  SECTION("all weights zero") {
    auto rc = istio_like_route();
    auto* w = rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_route()->mutable_weighted_clusters();
    w->mutable_clusters(0)->mutable_weight()->set_value(0);
    w->mutable_clusters(1)->mutable_weight()->set_value(0);
    auto r = xds::convert_route_configuration(rc);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("weighted_clusters: the sum of weights must be > 0") != std::string::npos);
  }
  SECTION("require_tls EXTERNAL_ONLY (ALL is an Istio Gateway's httpsRedirect)") {
    auto rc = istio_like_route();
    rc.mutable_virtual_hosts(0)->set_require_tls(route::VirtualHost::EXTERNAL_ONLY);
    auto r = xds::convert_route_configuration(rc);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("route.virtual_hosts[0].require_tls") == 0);
    rc.mutable_virtual_hosts(0)->set_require_tls(route::VirtualHost::ALL);
    auto all = xds::convert_route_configuration(rc);
    REQUIRE(all.ok());
    CHECK(all.value().virtual_hosts[0].require_tls);
  }
}

TEST_CASE("redirect and direct response") {
  route::RouteConfiguration rc;
  rc.set_name("rc");
  auto* vh = rc.add_virtual_hosts();
  vh->set_name("vh");
  vh->add_domains("*");
  auto* r1 = vh->add_routes();
  r1->mutable_match()->set_path("/old");
  r1->mutable_redirect()->set_path_redirect("/new");
  r1->mutable_redirect()->set_response_code(route::RedirectAction::PERMANENT_REDIRECT);
  auto* r2 = vh->add_routes();
  r2->mutable_match()->set_path_separated_prefix("/api");
  r2->mutable_match()->mutable_case_sensitive()->set_value(false);
  r2->mutable_direct_response()->set_status(418);
  r2->mutable_direct_response()->mutable_body()->set_inline_string("teapot");
  auto r = xds::convert_route_configuration(rc);
  REQUIRE(r.ok());
  const auto& red = std::get<RedirectAction>(r->virtual_hosts[0].routes[0].action);
  CHECK(red.response_code == 308);
  CHECK(red.path_kind == RedirectAction::PathKind::Path);
  CHECK(red.path == "/new");
  const auto& dr = std::get<DirectResponseAction>(r->virtual_hosts[0].routes[1].action);
  CHECK(dr.status == 418);
  CHECK(dr.body == "teapot");
  CHECK_FALSE(r->virtual_hosts[0].routes[1].match.case_sensitive);

  r2->mutable_direct_response()->mutable_body()->set_filename("/etc/passwd");
  auto bad = xds::convert_route_configuration(rc);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("route.virtual_hosts[0].routes[1].direct_response.body.filename: field not implemented") == 0);
}

namespace {
cluster::Cluster istio_like_cluster() {
  cluster::Cluster c;
  c.set_name("inbound-vip|8080|http|calculate.demo.svc.cluster.local");
  c.set_type(cluster::Cluster::EDS);
  c.mutable_eds_cluster_config()->mutable_eds_config()->mutable_ads();
  c.mutable_connect_timeout()->set_seconds(10);
  c.set_lb_policy(cluster::Cluster::LEAST_REQUEST);
  auto* t = c.mutable_circuit_breakers()->add_thresholds();
  t->mutable_max_connections()->set_value(4294967295u);
  t->mutable_max_requests()->set_value(4294967295u);
  envoy::extensions::upstreams::http::v3::HttpProtocolOptions o;
  o.mutable_explicit_http_config()->mutable_http2_protocol_options();
  o.mutable_common_http_protocol_options()->mutable_idle_timeout()->set_seconds(3600);
  (*c.mutable_typed_extension_protocol_options())[std::string(xds::kHttpProtocolOptionsKey)].PackFrom(o);
  return c;
}
}  // namespace

TEST_CASE("an Istio-style EDS cluster converts") {
  auto r = xds::convert_cluster(istio_like_cluster());
  REQUIRE(r.ok());
  CHECK(r->discovery == Cluster::Discovery::Eds);
  CHECK(r->connect_timeout == Duration(10000));
  CHECK(r->policy.lb_policy == LbPolicy::LeastRequest);
  CHECK(r->policy.circuit_breakers.max_connections == 4294967295u);
  CHECK(r->policy.circuit_breakers.max_pending_requests == 1024);  // Envoy default kept
  CHECK(r->policy.upstream_protocol == UpstreamProtocol::Http2);
  CHECK(r->policy.idle_timeout == Duration(3600000));
}

TEST_CASE("cluster rejections name the field; known-harmless unknown fields pass") {
  SECTION("STRICT_DNS") {
    auto c = istio_like_cluster();
    c.set_type(cluster::Cluster::STRICT_DNS);
    auto r = xds::convert_cluster(c);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "cluster.type: STRICT_DNS is not implemented (EDS or STATIC)");
  }
  SECTION("dns_lookup_family (#17) is allowed") {
    auto c = istio_like_cluster();
    add_unknown(c, 17);
    CHECK(xds::convert_cluster(c).ok());
  }
  SECTION("health_checks (#8) is not") {
    auto c = istio_like_cluster();
    add_unknown(c, 8);
    auto r = xds::convert_cluster(c);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "cluster: unknown field #8 (envoy.config.cluster.v3.Cluster) is not implemented");
  }
  SECTION("TLS transport socket") {
    auto c = istio_like_cluster();
    c.mutable_transport_socket()->set_name("envoy.transport_sockets.tls");
    auto r = xds::convert_cluster(c);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("cluster.transport_socket") == 0);
  }
  SECTION("retry budget") {
    auto c = istio_like_cluster();
    c.mutable_circuit_breakers()->mutable_thresholds(0)->mutable_retry_budget();
    auto r = xds::convert_cluster(c);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("cluster.circuit_breakers.thresholds[0].retry_budget: field not implemented") == 0);
  }
}

TEST_CASE("endpoints: socket addresses and istiod's internal-address endpoint ids") {
  endpoint::ClusterLoadAssignment cla;
  cla.set_cluster_name("inbound-vip|8080|http|calculate.demo.svc.cluster.local");
  auto* l = cla.add_endpoints();
  l->mutable_locality()->set_zone("z1");
  auto* e1 = l->add_lb_endpoints();
  e1->mutable_endpoint()->mutable_address()->mutable_socket_address()->set_address("10.1.0.5");
  e1->mutable_endpoint()->mutable_address()->mutable_socket_address()->set_port_value(8080);
  e1->set_health_status(envoy::config::core::v3::HEALTHY);
  auto* e2 = l->add_lb_endpoints();
  e2->mutable_endpoint()->mutable_address()->mutable_envoy_internal_address()->set_server_listener_name(
      "connect_originate");
  e2->mutable_endpoint()->mutable_address()->mutable_envoy_internal_address()->set_endpoint_id("[fd00::7]:9090");
  e2->mutable_load_balancing_weight()->set_value(3);
  auto r = xds::convert_load_assignment(cla);
  REQUIRE(r.ok());
  REQUIRE(r->endpoints.size() == 2);
  CHECK(r->endpoints[0].address == "10.1.0.5");
  CHECK(r->endpoints[0].port == 8080);
  CHECK(r->endpoints[0].health == HealthStatus::Healthy);
  CHECK(r->endpoints[0].locality.zone == "z1");
  CHECK(r->endpoints[1].address == "fd00::7");
  CHECK(r->endpoints[1].port == 9090);
  CHECK(r->endpoints[1].weight == 3);

  e2->mutable_endpoint()->mutable_address()->mutable_envoy_internal_address()->set_endpoint_id("nonsense");
  auto bad = xds::convert_load_assignment(cla);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find(
            "endpoints.endpoints[0].lb_endpoints[1].endpoint.address.envoy_internal_address.endpoint_id") == 0);
}

TEST_CASE("parse_* checks the resource name and the bytes") {
  auto rc = istio_like_route();
  const std::string bytes = rc.SerializeAsString();
  CHECK(xds::parse_route_configuration(rc.name(), bytes).ok());
  auto wrong = xds::parse_route_configuration("other", bytes);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().find("differs from the resource name") != std::string::npos);
  CHECK_FALSE(xds::parse_cluster("x", "\xff\xff\xff").ok());
}

TEST_CASE("deprecated exact_match \"\" means presence, as in Envoy") {
  auto rc = istio_like_route();
  auto* h = rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_match()->mutable_headers(0);
  h->set_exact_match("");
  auto r = xds::convert_route_configuration(rc);
  REQUIRE(r.ok());
  const auto& m = r->virtual_hosts[0].routes[0].match.headers[0];
  REQUIRE(std::holds_alternative<PresentMatch>(m.spec));
  CHECK(std::get<PresentMatch>(m.spec).present);
}

TEST_CASE("traffic policy fields: outlier max_ejection_time, maglev table size must be prime") {
  SECTION("max_ejection_time is parsed (Envoy default 300 s otherwise)") {
    auto c = istio_like_cluster();
    auto* od = c.mutable_outlier_detection();
    od->mutable_consecutive_5xx()->set_value(3);
    od->mutable_base_ejection_time()->set_seconds(2);
    auto r = xds::convert_cluster(c);
    REQUIRE(r.ok());
    REQUIRE(r->policy.outlier_detection);
    CHECK(r->policy.outlier_detection->max_ejection_time == Duration(300000));
    od->mutable_max_ejection_time()->set_seconds(20);
    r = xds::convert_cluster(c);
    REQUIRE(r.ok());
    CHECK(r->policy.outlier_detection->max_ejection_time == Duration(20000));
    CHECK(r->policy.outlier_detection->base_ejection_time == Duration(2000));
  }
  SECTION("maglev") {
    auto c = istio_like_cluster();
    c.set_lb_policy(cluster::Cluster::MAGLEV);
    c.mutable_maglev_lb_config()->mutable_table_size()->set_value(1009);
    auto r = xds::convert_cluster(c);
    REQUIRE(r.ok());
    CHECK(r->policy.maglev_table_size == 1009);
    c.mutable_maglev_lb_config()->mutable_table_size()->set_value(1000);
    r = xds::convert_cluster(c);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "cluster.maglev_lb_config.table_size: must be a prime <= 5000011");
  }
}
