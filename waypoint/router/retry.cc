// Retry evaluation as Envoy's RetryStateImpl (waypoint-facts §5.3): which outcomes are retriable
// under retry_on, the retry budget, jittered back-off and the previous-hosts predicate.
#include <algorithm>
#include <array>

#include "waypoint/router/retry_on.h"
#include "waypoint/router/router.h"
#include "waypoint/router/strings.h"

namespace waypoint::router {

namespace {

struct RetryOnName {
  std::string_view name;
  uint32_t bit;
};

constexpr std::array<RetryOnName, 15> kRetryOnNames{{
    {"5xx", retry_on::k5xx},
    {"gateway-error", retry_on::kGatewayError},
    {"reset", retry_on::kReset},
    {"reset-before-request", retry_on::kResetBeforeRequest},
    {"connect-failure", retry_on::kConnectFailure},
    {"retriable-4xx", retry_on::kRetriable4xx},
    {"refused-stream", retry_on::kRefusedStream},
    {"retriable-status-codes", retry_on::kRetriableStatusCodes},
    {"retriable-headers", retry_on::kRetriableHeaders},
    {"envoy-ratelimited", retry_on::kEnvoyRateLimited},
    {"cancelled", retry_on::kGrpcCancelled},
    {"deadline-exceeded", retry_on::kGrpcDeadlineExceeded},
    {"internal", retry_on::kGrpcInternal},
    {"resource-exhausted", retry_on::kGrpcResourceExhausted},
    {"unavailable", retry_on::kGrpcUnavailable},
}};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool would_retry_headers(const RetryPolicy& p, const AttemptOutcome& o) {
  const uint32_t on = p.retry_on;
  // x-envoy-ratelimited comes from an upstream Envoy; only envoy-ratelimited retries it, and its
  // presence decides alone.
  if (o.response_headers && o.response_headers->contains("x-envoy-ratelimited")) {
    return (on & retry_on::kEnvoyRateLimited) != 0;
  }
  const uint16_t s = o.status;
  if ((on & retry_on::k5xx) && s >= 500 && s < 600) return true;
  if ((on & retry_on::kGatewayError) && (s == 502 || s == 503 || s == 504)) return true;
  if ((on & retry_on::kRetriable4xx) && s == 409) return true;
  if ((on & retry_on::kRetriableStatusCodes) &&
      std::find(p.retriable_status_codes.begin(), p.retriable_status_codes.end(), s) !=
          p.retriable_status_codes.end()) {
    return true;
  }
  if ((on & retry_on::kRetriableHeaders) && o.response_headers) {
    for (const auto& m : p.retriable_headers) {
      if (header_matches(m, *o.response_headers)) return true;
    }
  }
  constexpr uint32_t kGrpcBits = retry_on::kGrpcCancelled | retry_on::kGrpcDeadlineExceeded | retry_on::kGrpcInternal |
                                 retry_on::kGrpcResourceExhausted | retry_on::kGrpcUnavailable;
  if ((on & kGrpcBits) && o.response_headers) {
    // Only grpc-status in the response *headers* (trailers-only responses) counts.
    if (auto v = o.response_headers->get("grpc-status")) {
      if (auto code = parse_uint64(*v)) {
        switch (*code) {
          case 1:
            return (on & retry_on::kGrpcCancelled) != 0;
          case 4:
            return (on & retry_on::kGrpcDeadlineExceeded) != 0;
          case 8:
            return (on & retry_on::kGrpcResourceExhausted) != 0;
          case 13:
            return (on & retry_on::kGrpcInternal) != 0;
          case 14:
            return (on & retry_on::kGrpcUnavailable) != 0;
          default:
            break;
        }
      }
    }
  }
  return false;
}

bool would_retry_reset(const RetryPolicy& p, const AttemptOutcome& o) {
  const uint32_t on = p.retry_on;
  if (o.failure == AttemptFailure::Overflow) return false;
  bool started = o.request_sent;
  if (o.failure == AttemptFailure::ConnectFailure) {
    if (on & retry_on::kConnectFailure) return true;
    started = false;  // nothing reached the upstream; fall through to the reset classes
  }
  if ((on & retry_on::kResetBeforeRequest) && !started) return true;
  if (on & retry_on::kReset) return true;
  // An upstream reset (or a per-try timeout, which resets the attempt) counts as a 5xx.
  if (on & (retry_on::k5xx | retry_on::kGatewayError)) return true;
  if ((on & retry_on::kRefusedStream) && o.failure == AttemptFailure::RefusedStream) return true;
  return false;
}

}  // namespace

std::optional<uint32_t> retry_on_bit(std::string_view name) {
  auto it =
      std::find_if(kRetryOnNames.begin(), kRetryOnNames.end(), [&](const RetryOnName& n) { return n.name == name; });
  if (it == kRetryOnNames.end()) return std::nullopt;
  return it->bit;
}

common::Result<uint32_t> parse_retry_on(std::string_view list) {
  uint32_t bits = 0;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view token = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (token.empty()) continue;
    auto bit = retry_on_bit(token);
    if (!bit) return common::make_error("retry_on: unsupported condition '" + std::string(token) + "'");
    bits |= *bit;
  }
  return bits;
}

const RetryPolicy* effective_retry_policy(const VirtualHost& vhost, const RouteAction& action) {
  if (action.retry_policy) return &*action.retry_policy;
  if (vhost.retry_policy) return &*vhost.retry_policy;
  return nullptr;
}

RetryDecision should_retry(const RetryPolicy& policy, const AttemptOutcome& outcome, uint32_t retries_done,
                           const HttpRequest& request) {
  // Requests not matching retriable_request_headers get no retry state at all.
  if (!policy.retriable_request_headers.empty()) {
    bool any = false;
    for (const auto& m : policy.retriable_request_headers) {
      if (header_matches(m, request)) {
        any = true;
        break;
      }
    }
    if (!any) return RetryDecision::NoRetry;
  }
  const bool would = outcome.failure == AttemptFailure::None ? would_retry_headers(policy, outcome)
                                                             : would_retry_reset(policy, outcome);
  if (!would) return RetryDecision::NoRetry;
  if (retries_done >= policy.num_retries) return RetryDecision::RetriesExhausted;
  return RetryDecision::Retry;
}

Duration retry_backoff(const RetryPolicy& policy, uint32_t retry_number, uint64_t random_value) {
  const uint64_t base = static_cast<uint64_t>(policy.backoff_base.count());
  if (base == 0 || retry_number == 0) return Duration{0};
  const uint64_t max = policy.backoff_max.count() > 0 ? static_cast<uint64_t>(policy.backoff_max.count()) : 10 * base;
  const uint64_t multiplier = retry_number >= 63 ? UINT64_MAX : (uint64_t{1} << retry_number) - 1;
  const uint64_t ceiling = multiplier > max / base ? max : multiplier * base;
  if (ceiling == 0) return Duration{0};
  return Duration{static_cast<int64_t>(std::min(random_value % ceiling, max))};
}

bool should_select_another_host(const RetryPolicy& policy, std::string_view host,
                                std::span<const std::string> previous_hosts) {
  if (!policy.previous_hosts_predicate) return false;
  return std::find(previous_hosts.begin(), previous_hosts.end(), host) != previous_hosts.end();
}

void set_request_attempt_count(const VirtualHost& vhost, uint32_t attempt, HeaderList& request_headers) {
  if (vhost.include_request_attempt_count) request_headers.set("x-envoy-attempt-count", std::to_string(attempt));
}

void set_response_attempt_count(const VirtualHost& vhost, uint32_t attempts, HeaderList& response_headers) {
  if (vhost.include_attempt_count_in_response) {
    response_headers.set("x-envoy-attempt-count", std::to_string(attempts));
  }
}

}  // namespace waypoint::router
