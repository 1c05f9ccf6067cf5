#include "waypoint/xds/tracing_convert.h"

#include <algorithm>
#include <cstdlib>

#include "envoy/config/route/v3/route.pb.h"
#include "envoy/config/trace/v3/zipkin.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "waypoint/xds/validate.h"

namespace waypoint::xds {

using common::make_error;
namespace hcm = envoy::extensions::filters::network::http_connection_manager::v3;
namespace trace = envoy::config::trace::v3;

common::Result<std::shared_ptr<const RouteTracing>> convert_route_tracing(const envoy::config::route::v3::Tracing& t,
                                                                          const std::string& path) {
  auto out = std::make_shared<RouteTracing>();
  if (t.has_client_sampling())
    return make_error(path + ".client_sampling: not implemented (x-client-trace-id forced tracing)");
  if (t.has_random_sampling()) {
    const auto& p = t.random_sampling();
    FractionalPercent f;
    switch (p.denominator()) {
      case envoy::type::v3::FractionalPercent::HUNDRED:
        f.denominator = 100;
        break;
      case envoy::type::v3::FractionalPercent::TEN_THOUSAND:
        f.denominator = 10'000;
        break;
      case envoy::type::v3::FractionalPercent::MILLION:
        f.denominator = 1'000'000;
        break;
      default:
        return make_error(path + ".random_sampling.denominator: unknown value " + std::to_string(p.denominator()));
    }
    f.numerator = std::min(p.numerator(), f.denominator);
    out->random_sampling = f;
  }
  for (int i = 0; i < t.custom_tags_size(); ++i) {
    const auto& c = t.custom_tags(i);
    const std::string p = path + ".custom_tags[" + std::to_string(i) + "]";
    if (c.tag().empty()) return make_error(p + ".tag: required");
    TracingCustomTag tag;
    tag.tag = c.tag();
    switch (c.type_case()) {
      case envoy::type::tracing::v3::CustomTag::kLiteral:
        tag.value = c.literal().value();
        break;
      case envoy::type::tracing::v3::CustomTag::kEnvironment: {
        if (c.environment().name().empty()) return make_error(p + ".environment.name: required");
        const char* v = std::getenv(c.environment().name().c_str());
        tag.value = v ? v : c.environment().default_value();
        break;
      }
      case envoy::type::tracing::v3::CustomTag::kRequestHeader: {
        if (c.request_header().name().empty()) return make_error(p + ".request_header.name: required");
        tag.kind = TracingCustomTag::Kind::Header;
        tag.header = c.request_header().name();
        std::transform(tag.header.begin(), tag.header.end(), tag.header.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        tag.default_value = c.request_header().default_value();
        break;
      }
      default:
        return make_error(p + ": one of literal, environment, request_header is required");
    }
    out->custom_tags.push_back(std::move(tag));
  }
  return std::shared_ptr<const RouteTracing>(std::move(out));
}

common::Result<std::shared_ptr<const TracingProvider>> convert_tracing_provider(const google::protobuf::Any& any,
                                                                                const std::string& path) {
  hcm::HttpConnectionManager::Tracing t;
  if (!any.Is<hcm::HttpConnectionManager::Tracing>() || !any.UnpackTo(&t))
    return make_error(path + ": expected envoy.extensions.filters.network.http_connection_manager.v3."
                             "HttpConnectionManager.Tracing, got " +
                      any.type_url());
  if (auto e = find_unsupported_field(t, path); !e.empty()) return make_error(e + ": rejected");
  auto out = std::make_shared<TracingProvider>();
  if (t.has_max_path_tag_length()) {
    if (t.max_path_tag_length().value() == 0) return make_error(path + ".max_path_tag_length: must be > 0");
    out->max_path_tag_length = t.max_path_tag_length().value();
  }
  if (!t.has_provider()) return std::shared_ptr<const TracingProvider>(std::move(out));  // reporting off
  const std::string pp = path + ".provider";
  if (t.provider().name() != kZipkinTracerName)
    return make_error(pp + ".name: tracer '" + t.provider().name() + "' is not implemented (only " +
                      std::string(kZipkinTracerName) + ")");
  trace::ZipkinConfig z;
  if (!t.provider().has_typed_config() || !t.provider().typed_config().Is<trace::ZipkinConfig>() ||
      !t.provider().typed_config().UnpackTo(&z))
    return make_error(pp + ".typed_config: expected envoy.config.trace.v3.ZipkinConfig");
  const std::string zp = pp + ".typed_config";
  if (auto e = find_unsupported_field(z, zp); !e.empty()) return make_error(e + ": rejected");
  if (z.collector_cluster().empty()) return make_error(zp + ".collector_cluster: required");
  if (z.collector_endpoint_version() != trace::ZipkinConfig::HTTP_JSON)
    return make_error(zp + ".collector_endpoint_version: only HTTP_JSON is implemented");
  if (!z.trace_id_128bit()) return make_error(zp + ".trace_id_128bit: only 128-bit trace ids are implemented");
  if (!z.has_shared_span_context() || z.shared_span_context().value())
    return make_error(zp + ".shared_span_context: only false is implemented (a span per hop, as Istio sets)");
  if (z.split_spans_for_request()) return make_error(zp + ".split_spans_for_request: not implemented");
  if (!z.collector_hostname().empty()) return make_error(zp + ".collector_hostname: not implemented");
  out->report = true;
  out->collector_cluster = z.collector_cluster();
  if (!z.collector_endpoint().empty()) {
    if (z.collector_endpoint().front() != '/') return make_error(zp + ".collector_endpoint: must start with '/'");
    out->collector_path = z.collector_endpoint();
  }
  return std::shared_ptr<const TracingProvider>(std::move(out));
}

}  // namespace waypoint::xds
