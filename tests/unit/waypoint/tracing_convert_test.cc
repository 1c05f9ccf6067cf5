// Tracing from xDS (waypoint/xds/tracing_convert.h, docs/tracing.md): Route.tracing and the
// virtual host's "istio.tracing" provider convert; what the waypoint does not implement, and
// unknown fields inside the provider's payloads, are NACKs naming the field.
#include <catch2/catch.hpp>

// GCC 12 at -O2 reports a false -Wrestrict inside std::string assignment when the protobuf
// setters below are inlined (GCC bug 105329); the code is plain string copies.
#if defined(__GNUC__) && !defined(__clang__)  // clang has no -Wrestrict (and -Werror on unknown groups)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <google/protobuf/unknown_field_set.h>

#include <algorithm>
#include <string_view>

#include "envoy/config/route/v3/route.pb.h"
#include "envoy/config/trace/v3/zipkin.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "waypoint/xds/convert.h"

namespace route = envoy::config::route::v3;
namespace trace = envoy::config::trace::v3;
using Hcm = envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
using namespace waypoint;

namespace {

const char* kCollector = "outbound|9411||zipkin.istio-system.svc.cluster.local";

trace::ZipkinConfig istio_zipkin() {
  trace::ZipkinConfig z;
  z.set_collector_cluster(kCollector);
  z.set_collector_endpoint("/api/v2/spans");
  z.set_collector_endpoint_version(trace::ZipkinConfig::HTTP_JSON);
  z.set_trace_id_128bit(true);
  z.mutable_shared_span_context()->set_value(false);
  return z;
}

Hcm::Tracing provider(const trace::ZipkinConfig& z) {
  Hcm::Tracing t;
  t.mutable_max_path_tag_length()->set_value(64);
  t.mutable_provider()->set_name("envoy.tracers.zipkin");
  t.mutable_provider()->mutable_typed_config()->PackFrom(z);
  return t;
}

// Two routes sharing one Route.tracing (as the controlplane writes them) and the provider.
route::RouteConfiguration traced_route(const Hcm::Tracing& t) {
  route::RouteConfiguration rc;
  rc.set_name("inbound-vip|8080|http|calculate.demo.svc.cluster.local");
  auto* vh = rc.add_virtual_hosts();
  vh->set_name("inbound|http|8080");
  vh->add_domains("*");
  route::Tracing rt;
  rt.mutable_random_sampling()->set_numerator(125'000);
  rt.mutable_random_sampling()->set_denominator(envoy::type::v3::FractionalPercent::MILLION);
  auto* lit = rt.add_custom_tags();
  lit->set_tag("team");
  lit->mutable_literal()->set_value("calc");
  auto* hdr = rt.add_custom_tags();
  hdr->set_tag("user");
  hdr->mutable_request_header()->set_name("X-User");
  hdr->mutable_request_header()->set_default_value("nobody");
  auto* env = rt.add_custom_tags();
  env->set_tag("zone");
  env->mutable_environment()->set_name("AMBIENT_TEST_SURELY_UNSET_VARIABLE");
  env->mutable_environment()->set_default_value("unknown");
  for (const char* p : {"/a", "/"}) {
    auto* r = vh->add_routes();
    r->mutable_match()->set_prefix(p);
    r->mutable_route()->set_cluster("inbound-vip|8080|http|calculate.demo.svc.cluster.local");
    *r->mutable_tracing() = rt;
  }
  (*vh->mutable_typed_per_filter_config())["istio.tracing"].PackFrom(t);
  return rc;
}

void add_unknown(google::protobuf::Message& m, int number) {
  m.GetReflection()->MutableUnknownFields(&m)->AddVarint(number, 1);
}

}  // namespace

TEST_CASE("tracing xDS: Route.tracing and the istio.tracing provider convert") {
  auto r = xds::convert_route_configuration(traced_route(provider(istio_zipkin())));
  INFO((r.ok() ? "" : r.error()));
  REQUIRE(r.ok());
  const auto& vh = r->virtual_hosts[0];
  REQUIRE(vh.tracing);
  REQUIRE(vh.tracing->random_sampling);
  CHECK(vh.tracing->random_sampling->numerator == 125'000);
  CHECK(vh.tracing->random_sampling->denominator == 1'000'000);
  REQUIRE(vh.tracing->custom_tags.size() == 3);
  CHECK(vh.tracing->custom_tags[0].value == "calc");
  CHECK(vh.tracing->custom_tags[1].kind == TracingCustomTag::Kind::Header);
  CHECK(vh.tracing->custom_tags[1].header == "x-user");
  CHECK(vh.tracing->custom_tags[1].default_value == "nobody");
  CHECK(vh.tracing->custom_tags[2].kind == TracingCustomTag::Kind::Literal);  // environment: read once
  CHECK(vh.tracing->custom_tags[2].value == "unknown");
  REQUIRE(vh.tracing_provider);
  CHECK(vh.tracing_provider->report);
  CHECK(vh.tracing_provider->collector_cluster == kCollector);
  CHECK(vh.tracing_provider->collector_path == "/api/v2/spans");
  CHECK(vh.tracing_provider->max_path_tag_length == 64);
}

TEST_CASE("tracing xDS: no provider = span reporting disabled") {
  Hcm::Tracing t;
  auto r = xds::convert_route_configuration(traced_route(t));
  REQUIRE(r.ok());
  REQUIRE(r->virtual_hosts[0].tracing_provider);
  CHECK_FALSE(r->virtual_hosts[0].tracing_provider->report);
}

TEST_CASE("tracing xDS: NACKs name the field") {
  auto nack = [](const route::RouteConfiguration& rc) {
    auto r = xds::convert_route_configuration(rc);
    REQUIRE_FALSE(r.ok());
    return r.error();
  };
  // Error = the virtual host's istio.tracing path, then `rest` (compared in two parts: GCC 12
  // warns falsely (-Wrestrict) on the concatenated literal).
  auto at_vtpf = [](const std::string& err, std::string_view rest) {
    constexpr std::string_view vtpf = "route.virtual_hosts[0].typed_per_filter_config[istio.tracing]";
    INFO(err);
    return std::string_view(err).substr(0, vtpf.size()) == vtpf &&
           std::string_view(err).substr(std::min(err.size(), vtpf.size())).starts_with(rest);
  };
  SECTION("an unknown field in ZipkinConfig") {
    auto z = istio_zipkin();
    add_unknown(z, 8);  // trace_context_option
    CHECK(at_vtpf(nack(traced_route(provider(z))),
                  ".provider.typed_config: unknown field #8 (envoy.config.trace.v3.ZipkinConfig) is not implemented: "
                  "rejected"));
  }
  SECTION("an unknown field in the HCM Tracing (overall_sampling)") {
    auto t = provider(istio_zipkin());
    add_unknown(t, 5);
    CHECK(at_vtpf(nack(traced_route(t)), ": unknown field #5"));
  }
  SECTION("an unknown field in Route.tracing (operation)") {
    auto rc = traced_route(provider(istio_zipkin()));
    add_unknown(*rc.mutable_virtual_hosts(0)->mutable_routes(1)->mutable_tracing(), 5);
    CHECK(nack(rc).find("route.virtual_hosts[0].routes[1].tracing: unknown field #5") == 0);
  }
  SECTION("client_sampling") {
    auto rc = traced_route(provider(istio_zipkin()));
    rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_tracing()->mutable_client_sampling()->set_numerator(1);
    CHECK(nack(rc).find("route.virtual_hosts[0].routes[0].tracing.client_sampling") == 0);
  }
  SECTION("routes of one host disagreeing") {
    auto rc = traced_route(provider(istio_zipkin()));
    rc.mutable_virtual_hosts(0)->mutable_routes(1)->mutable_tracing()->mutable_random_sampling()->set_numerator(7);
    CHECK(nack(rc).find("route.virtual_hosts[0].routes[1].tracing: differs from routes[0].tracing") == 0);
  }
  SECTION("another tracer") {
    auto t = provider(istio_zipkin());
    t.mutable_provider()->set_name("envoy.tracers.opentelemetry");
    CHECK(at_vtpf(nack(traced_route(t)), ".provider.name: tracer 'envoy.tracers.opentelemetry'"));
  }
  SECTION("shared span context") {
    auto z = istio_zipkin();
    z.mutable_shared_span_context()->set_value(true);
    CHECK(at_vtpf(nack(traced_route(provider(z))), ".provider.typed_config.shared_span_context"));
  }
  SECTION("proto endpoint version") {
    auto z = istio_zipkin();
    z.set_collector_endpoint_version(trace::ZipkinConfig::HTTP_PROTO);
    CHECK(at_vtpf(nack(traced_route(provider(z))), ".provider.typed_config.collector_endpoint_version"));
  }
  SECTION("the provider on a route") {
    auto rc = traced_route(provider(istio_zipkin()));
    (*rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_typed_per_filter_config())["istio.tracing"].PackFrom(
        provider(istio_zipkin()));
    CHECK(nack(rc).find("route.virtual_hosts[0].routes[0].typed_per_filter_config[istio.tracing]: the tracing "
                        "provider is read on a virtual host only") == 0);
  }
}
