#include "controlplane/tracing_envoy.h"

#include <cmath>

#include "envoy/config/route/v3/route.pb.h"
#include "envoy/config/trace/v3/zipkin.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"

namespace controlplane {

void attach_tracing(envoy::config::route::v3::RouteConfiguration& rc, const ResolvedTracing& t,
                    const std::string& collector_cluster) {
  namespace route = envoy::config::route::v3;
  using envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
  route::Tracing rt;
  // Per million, as istiod writes it: Telemetry allows fractions such as 0.01 %.
  auto* rs = rt.mutable_random_sampling();
  rs->set_denominator(envoy::type::v3::FractionalPercent::MILLION);
  rs->set_numerator(static_cast<uint32_t>(std::lround(t.sampling_percent * 10'000.0)));
  for (const auto& [name, tag] : t.custom_tags) {
    auto* c = rt.add_custom_tags();
    c->set_tag(name);
    switch (tag.kind) {
      case TelemetryCustomTag::Kind::Literal:
        c->mutable_literal()->set_value(tag.value);
        break;
      case TelemetryCustomTag::Kind::Header:
        c->mutable_request_header()->set_name(tag.name);
        c->mutable_request_header()->set_default_value(tag.default_value);
        break;
      case TelemetryCustomTag::Kind::Environment:
        c->mutable_environment()->set_name(tag.name);
        c->mutable_environment()->set_default_value(tag.default_value);
        break;
    }
  }
  HttpConnectionManager::Tracing ht;
  if (t.provider) ht.mutable_max_path_tag_length()->set_value(t.provider->max_tag_length);
  if (t.report && t.provider) {
    envoy::config::trace::v3::ZipkinConfig z;
    z.set_collector_cluster(collector_cluster);
    z.set_collector_endpoint("/api/v2/spans");
    z.set_collector_endpoint_version(envoy::config::trace::v3::ZipkinConfig::HTTP_JSON);
    z.set_trace_id_128bit(true);
    z.mutable_shared_span_context()->set_value(false);
    ht.mutable_provider()->set_name("envoy.tracers.zipkin");
    ht.mutable_provider()->mutable_typed_config()->PackFrom(z);
  }
  for (auto& vh : *rc.mutable_virtual_hosts()) {
    for (auto& r : *vh.mutable_routes()) *r.mutable_tracing() = rt;
    (*vh.mutable_typed_per_filter_config())[std::string(kTracingConfigKey)].PackFrom(ht);
  }
}

}  // namespace controlplane
