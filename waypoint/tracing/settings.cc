#include "waypoint/tracing/settings.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace waypoint::tracing {

namespace {

common::Result<double> parse_percent(std::string_view var, std::string_view s) {
  double v = 0;
  const std::string text(s);
  char* end = nullptr;
  v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(v >= 0.0 && v <= 100.0)) {
    return common::make_error(common::env::invalid_var(var, s, "expected a percentage between 0 and 100"));
  }
  return v;
}

}  // namespace

common::Result<std::optional<TracerOptions>> tracing_from_env(const common::env::EnvLookup& e, const Config& cfg) {
  std::optional<std::string> address;
  std::optional<double> sampling;
  if (auto pc = e("PROXY_CONFIG"); pc && !pc->empty()) {
    auto j = nlohmann::json::parse(*pc, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return common::make_error(common::env::invalid_var("PROXY_CONFIG", *pc, "expected a JSON object (ProxyConfig)"));
    }
    if (auto t = j.find("tracing"); t != j.end()) {
      if (!t->is_object()) return common::make_error("PROXY_CONFIG: tracing: expected an object");
      if (auto z = t->find("zipkin"); z != t->end()) {
        if (!z->is_object()) return common::make_error("PROXY_CONFIG: tracing.zipkin: expected an object");
        if (auto a = z->find("address"); a != z->end()) {
          if (!a->is_string()) return common::make_error("PROXY_CONFIG: tracing.zipkin.address: expected a string");
          address = a->get<std::string>();
        }
      }
      if (auto s = t->find("sampling"); s != t->end()) {
        if (!s->is_number() || s->get<double>() < 0.0 || s->get<double>() > 100.0) {
          return common::make_error("PROXY_CONFIG: tracing.sampling: expected a percentage between 0 and 100");
        }
        sampling = s->get<double>();
      }
    }
  }
  if (auto v = e("ZIPKIN_ADDRESS"); v) address = *v;
  if (auto v = e("TRACING_SAMPLING"); v && !v->empty()) {
    auto p = parse_percent("TRACING_SAMPLING", *v);
    if (!p) return common::make_error(p.error());
    sampling = p.value();
  }
  TracerOptions o;
  if (address && !address->empty()) {  // else only xDS (Telemetry) can name a collector
    auto ca = parse_collector_address(*address);
    if (!ca) return common::make_error("ZIPKIN_ADDRESS / tracing.zipkin.address: " + ca.error());
    o.collector = ca.value();
  }
  if (sampling) o.sampling_percent = *sampling;
  {
    auto d = common::env::get_duration(e, "TRACING_FLUSH_INTERVAL", o.flush_interval);
    if (!d) return common::make_error(d.error());
    if (d.value().count() <= 0) {
      return common::make_error(common::env::invalid_var("TRACING_FLUSH_INTERVAL",
                                                         e("TRACING_FLUSH_INTERVAL").value_or(""), "must be positive"));
    }
    o.flush_interval = d.value();
    auto b = common::env::get_unsigned_max(e, "TRACING_BATCH_SIZE", o.batch_size, 10000);
    if (!b) return common::make_error(b.error());
    if (b.value() == 0)
      return common::make_error(common::env::invalid_var("TRACING_BATCH_SIZE", "0", "must be positive"));
    o.batch_size = b.value();
  }
  // Istio's service cluster for a waypoint: "<gateway name>.<namespace>" (the waypoint runs
  // under the Gateway's service account, named after the Gateway).
  o.local.service_name = cfg.service_account + "." + cfg.pod_namespace;
  if (cfg.instance_ip.find(':') != std::string::npos) {
    o.local.ipv6 = cfg.instance_ip;
  } else {
    o.local.ipv4 = cfg.instance_ip;
  }
  o.local.tags = {{"node_id", cfg.node_id()},
                  {"istio.canonical_service", cfg.service_account},
                  {"istio.canonical_revision", "latest"},
                  {"istio.namespace", cfg.pod_namespace},
                  {"istio.mesh_id", cfg.trust_domain},
                  {"istio.cluster_id", cfg.cluster_id}};
  return std::optional<TracerOptions>(std::move(o));
}

}  // namespace waypoint::tracing
