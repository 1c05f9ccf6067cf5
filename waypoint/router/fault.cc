// Fault-injection decisions as Envoy's envoy.filters.http.fault (waypoint-facts §5.5): the delay
// is decided first; the abort is decided separately (the data path asks after the delay elapsed).
#include <algorithm>

#include "waypoint/router/grpc_status.h"
#include "waypoint/router/router.h"
#include "waypoint/router/strings.h"

namespace waypoint::router {

namespace {

// A header percentage replaces the numerator but can only lower it (Envoy caps it at the
// configured one); the denominator stays the configured one.
FractionalPercent header_percentage(const FractionalPercent& configured, const HttpRequest& request,
                                    std::string_view header) {
  FractionalPercent p = configured;
  if (auto v = request.headers.get(header)) {
    if (auto n = parse_uint64(*v)) p.numerator = static_cast<uint32_t>(std::min<uint64_t>(*n, configured.numerator));
  }
  return p;
}

}  // namespace

bool fraction_enabled(const FractionalPercent& fraction, uint64_t random_value) {
  if (fraction.denominator == 0) return false;
  return (random_value % fraction.denominator) < fraction.numerator;
}

bool fault_applies(const FaultPolicy& policy, const HttpRequest& request, uint64_t active_faults) {
  if (policy.max_active_faults && active_faults >= *policy.max_active_faults) return false;
  if (!headers_match(policy.headers, request)) return false;
  if (!policy.downstream_nodes.empty()) {
    auto node = request.headers.get("x-envoy-downstream-service-node");
    if (!node) return false;
    if (std::find(policy.downstream_nodes.begin(), policy.downstream_nodes.end(), *node) ==
        policy.downstream_nodes.end()) {
      return false;
    }
  }
  return true;
}

std::optional<Duration> decide_fault_delay(const FaultPolicy& policy, const HttpRequest& request,
                                           uint64_t random_value) {
  if (!policy.delay) return std::nullopt;
  const FaultDelay& d = *policy.delay;
  FractionalPercent pct = d.header_delay
                              ? header_percentage(d.percentage, request, "x-envoy-fault-delay-request-percentage")
                              : d.percentage;
  if (!fraction_enabled(pct, random_value)) return std::nullopt;
  Duration delay = d.fixed_delay;
  if (d.header_delay) {
    auto v = request.headers.get("x-envoy-fault-delay-request");
    auto ms = v ? parse_uint64(*v) : std::nullopt;
    if (!ms) return std::nullopt;
    delay = Duration{static_cast<int64_t>(std::min<uint64_t>(*ms, INT64_MAX))};
  }
  // A zero delay is no delay (no DI flag).
  if (delay <= Duration{0}) return std::nullopt;
  return delay;
}

std::optional<LocalResponse> decide_fault_abort(const FaultPolicy& policy, const HttpRequest& request,
                                                uint64_t random_value, bool grpc) {
  if (!policy.abort) return std::nullopt;
  const FaultAbort& a = *policy.abort;
  FractionalPercent pct = a.kind == FaultAbort::Kind::Header
                              ? header_percentage(a.percentage, request, "x-envoy-fault-abort-request-percentage")
                              : a.percentage;
  if (!fraction_enabled(pct, random_value)) return std::nullopt;

  LocalResponse r;
  r.body = "fault filter abort";
  r.headers.add("content-type", "text/plain");
  std::optional<uint32_t> http_status;
  std::optional<uint32_t> grpc_status;
  switch (a.kind) {
    case FaultAbort::Kind::Http:
      http_status = a.http_status;
      break;
    case FaultAbort::Kind::Grpc:
      grpc_status = a.grpc_status;
      break;
    case FaultAbort::Kind::Header: {
      if (auto v = request.headers.get("x-envoy-fault-abort-request")) {
        auto n = parse_uint64(*v);
        if (n && *n >= 200 && *n < 600) http_status = static_cast<uint32_t>(*n);
      }
      if (!http_status) {
        if (auto v = request.headers.get("x-envoy-fault-abort-grpc-request")) {
          if (auto n = parse_uint64(*v); n && *n <= 16) grpc_status = static_cast<uint32_t>(*n);
        }
      }
      if (!http_status && !grpc_status) return std::nullopt;
      break;
    }
  }
  if (grpc_status) {
    r.status = 200;
    r.grpc_status = grpc_status;
  } else {
    r.status = static_cast<uint16_t>(*http_status);
    if (grpc) r.grpc_status = grpc_status_of_http(*http_status);
  }
  return r;
}

const FaultPolicy* effective_fault_policy(const VirtualHost& vhost, const Route& route, const ClusterWeight* weighted) {
  if (weighted && weighted->filters.fault) return &*weighted->filters.fault;
  if (route.filters.fault) return &*route.filters.fault;
  if (vhost.filters.fault) return &*vhost.filters.fault;
  return nullptr;
}

}  // namespace waypoint::router
