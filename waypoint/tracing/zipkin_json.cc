#include <nlohmann/json.hpp>

#include "waypoint/tracing/span.h"

namespace waypoint::tracing {

std::string zipkin_json(const std::vector<Span*>& spans, const LocalEndpoint& local) {
  nlohmann::json endpoint = {{"serviceName", local.service_name}};
  if (!local.ipv4.empty()) endpoint["ipv4"] = local.ipv4;
  if (!local.ipv6.empty()) endpoint["ipv6"] = local.ipv6;
  nlohmann::json out = nlohmann::json::array();
  for (const Span* s : spans) {
    nlohmann::json tags = nlohmann::json::object();
    for (const auto& [k, v] : local.tags) tags[k] = v;
    for (const auto& [k, v] : s->tags) tags[k] = v;
    nlohmann::json j = {{"traceId", s->trace_id.hex()},
                        {"id", hex64(s->id)},
                        {"name", s->name},
                        {"kind", "SERVER"},
                        {"timestamp", s->timestamp_us},
                        {"duration", s->duration_us},
                        {"localEndpoint", endpoint},
                        {"tags", std::move(tags)}};
    if (s->parent_id != 0) j["parentId"] = hex64(s->parent_id);
    if (s->debug) j["debug"] = true;
    out.push_back(std::move(j));
  }
  // Tag values come from requests (paths, user agents): replace invalid UTF-8, never throw.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace waypoint::tracing
