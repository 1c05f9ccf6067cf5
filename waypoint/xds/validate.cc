#include "waypoint/xds/validate.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/unknown_field_set.h>

#include <set>
#include <string_view>
#include <utility>
#include <vector>

namespace waypoint::xds {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Modelled fields whose behaviour the waypoint does not implement. Setting one is a NACK:
// silently ignoring it would route differently from Envoy.
const std::set<std::string_view>& not_implemented() {
  static const std::set<std::string_view> k = {
      // Routes.
      "envoy.config.route.v3.Route.filter_action",
      "envoy.config.route.v3.Route.non_forwarding_action",
      "envoy.config.route.v3.RouteMatch.connect_matcher",
      "envoy.config.route.v3.RouteMatch.path_match_policy",
      "envoy.config.route.v3.RouteMatch.grpc",
      "envoy.type.matcher.v3.StringMatcher.custom",
      "envoy.config.route.v3.RouteAction.cluster_header",
      "envoy.config.route.v3.RouteAction.host_rewrite_header",
      "envoy.config.route.v3.RouteAction.host_rewrite_path_regex",
      "envoy.config.route.v3.RouteAction.max_stream_duration",
      "envoy.config.route.v3.RouteAction.UpgradeConfig.connect_config",
      "envoy.config.route.v3.WeightedCluster.runtime_key_prefix",
      "envoy.config.route.v3.WeightedCluster.use_hash_policy",
      "envoy.config.route.v3.WeightedCluster.ClusterWeight.cluster_header",
      "envoy.config.route.v3.RouteAction.RequestMirrorPolicy.cluster_header",
      "envoy.config.route.v3.RouteAction.HashPolicy.filter_state",
      "envoy.config.route.v3.RouteAction.HashPolicy.Header.regex_rewrite",
      "envoy.config.route.v3.RouteAction.HashPolicy.Cookie.attributes",
      "envoy.config.route.v3.RouteConfiguration.typed_per_filter_config",
      "envoy.config.route.v3.RetryPolicy.per_try_idle_timeout",
      "envoy.config.route.v3.Tracing.client_sampling",
      // Data sources: only inline bodies (a waypoint reads no local files for config).
      "envoy.config.core.v3.DataSource.filename",
      "envoy.config.core.v3.DataSource.environment_variable",
      "envoy.config.core.v3.DataSource.watched_directory",
      // Addresses.
      "envoy.config.core.v3.Address.pipe",
      "envoy.config.core.v3.SocketAddress.named_port",
      "envoy.config.core.v3.SocketAddress.resolver_name",
      "envoy.config.core.v3.SocketAddress.network_namespace_filepath",
      // Endpoints.
      "envoy.config.endpoint.v3.LbEndpoint.endpoint_name",
      "envoy.config.endpoint.v3.Endpoint.health_check_config",
      "envoy.config.endpoint.v3.Endpoint.additional_addresses",
      "envoy.config.endpoint.v3.ClusterLoadAssignment.named_endpoints",
      "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy.drop_overloads",
      "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy.endpoint_stale_after",
      // Clusters.
      "envoy.config.cluster.v3.Cluster.cluster_type",
      "envoy.config.cluster.v3.Cluster.original_dst_lb_config",
      "envoy.config.cluster.v3.CircuitBreakers.per_host_thresholds",
      "envoy.config.cluster.v3.CircuitBreakers.Thresholds.retry_budget",
      "envoy.config.cluster.v3.CircuitBreakers.Thresholds.max_connection_pools",
      "envoy.config.cluster.v3.OutlierDetection.success_rate_minimum_hosts",
      "envoy.config.cluster.v3.OutlierDetection.success_rate_request_volume",
      "envoy.config.cluster.v3.OutlierDetection.success_rate_stdev_factor",
      "envoy.config.cluster.v3.OutlierDetection.split_external_local_origin_errors",
      "envoy.config.cluster.v3.OutlierDetection.consecutive_local_origin_failure",
      "envoy.config.cluster.v3.OutlierDetection.enforcing_consecutive_local_origin_failure",
      "envoy.config.cluster.v3.OutlierDetection.enforcing_local_origin_success_rate",
      "envoy.config.cluster.v3.OutlierDetection.failure_percentage_threshold",
      "envoy.config.cluster.v3.OutlierDetection.enforcing_failure_percentage",
      "envoy.config.cluster.v3.OutlierDetection.enforcing_failure_percentage_local_origin",
      "envoy.config.cluster.v3.OutlierDetection.failure_percentage_minimum_hosts",
      "envoy.config.cluster.v3.OutlierDetection.failure_percentage_request_volume",
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.auto_config",
      "envoy.config.core.v3.HttpProtocolOptions.max_headers_count",
      "envoy.config.core.v3.HttpProtocolOptions.max_connection_duration",
      "envoy.config.core.v3.HttpProtocolOptions.max_stream_duration",
      // Filters.
      "envoy.extensions.filters.http.cors.v3.CorsPolicy.shadow_enabled",
  };
  return k;
}

// Unknown field numbers (not in our protos) accepted without a NACK, per message. Each is
// harmless for a waypoint:
//   Cluster #17 dns_lookup_family: only used by DNS-resolved clusters, which are NACKed anyway
//     (the waypoint accepts EDS/STATIC), so for an accepted cluster it has no effect.
//   Route #15 tracing: per-route span sampling overrides; the waypoint's tracer samples with its
//     process-wide settings (docs/tracing.md), so the override is not read.
//   VirtualHost #24 metadata is modelled; RouteConfiguration #3 (internal_only_headers, a
//     deprecated list also unused by Istio's waypoint) is NOT allowed.
const std::vector<std::pair<std::string_view, int>>& harmless_unknown() {
  static const std::vector<std::pair<std::string_view, int>> k = {
      {"envoy.config.cluster.v3.Cluster", 17},
      {"envoy.config.route.v3.Route", 15},
  };
  return k;
}

bool unknown_allowed(std::string_view message, int number) {
  for (const auto& [m, n] : harmless_unknown()) {
    if (m == message && n == number) return true;
  }
  return false;
}

std::string walk(const Message& m, const std::string& path, int depth) {
  if (depth > 64) return path + ": message nested too deeply";
  const Reflection* r = m.GetReflection();
  const std::string& type = m.GetDescriptor()->full_name();
  const auto& unknown = r->GetUnknownFields(m);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const int number = unknown.field(i).number();
    if (!unknown_allowed(type, number)) {
      return path + ": unknown field #" + std::to_string(number) + " (" + type + ") is not implemented";
    }
  }
  if (type == "google.protobuf.Any") return "";  // the converter unpacks and checks payloads
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (not_implemented().count(f->full_name())) {
      return path + "." + f->name() + ": field not implemented by the waypoint (" + f->full_name() + " = " +
             std::to_string(f->number()) + ")";
    }
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_map()) {
      // map<string, Message>: the entry's key field is a string; name entries by key.
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        const Message& entry = r->GetRepeatedMessage(m, f, i);
        const FieldDescriptor* key = entry.GetDescriptor()->FindFieldByNumber(1);
        const FieldDescriptor* value = entry.GetDescriptor()->FindFieldByNumber(2);
        std::string k = key && key->cpp_type() == FieldDescriptor::CPPTYPE_STRING
                            ? entry.GetReflection()->GetString(entry, key)
                            : std::to_string(i);
        if (value && value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          auto e =
              walk(entry.GetReflection()->GetMessage(entry, value), path + "." + f->name() + "[" + k + "]", depth + 1);
          if (!e.empty()) return e;
        }
      }
    } else if (f->is_repeated()) {
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        auto e =
            walk(r->GetRepeatedMessage(m, f, i), path + "." + f->name() + "[" + std::to_string(i) + "]", depth + 1);
        if (!e.empty()) return e;
      }
    } else {
      auto e = walk(r->GetMessage(m, f), path + "." + f->name(), depth + 1);
      if (!e.empty()) return e;
    }
  }
  return "";
}

}  // namespace

std::string find_unsupported_field(const Message& message, const std::string& path) {
  return walk(message, path, 0);
}

}  // namespace waypoint::xds
