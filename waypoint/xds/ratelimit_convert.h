// Envoy rate limit configuration -> the waypoint's model (waypoint/ratelimit/rate_limit.h):
//   typed_per_filter_config["envoy.filters.http.local_ratelimit"] (LocalRateLimit),
//   typed_per_filter_config["envoy.filters.http.ratelimit"] (the RateLimit filter config: the
//     waypoint has no LDS, so the global filter's settings travel with the virtual host/route),
//   RouteAction / VirtualHost rate_limits (descriptor actions).
// Values the waypoint cannot honour are errors naming the field (the caller NACKs the resource):
// descriptors in the local filter, local_rate_limit_per_downstream_connection: true, a
// google_grpc service, stage > 10, fill_interval < 50 ms (Envoy's minimum) ...
//
// The shared conversions (header matchers, header mutations, fractions, durations) are
// convert.cc's; it passes them in as Helpers so both files name fields the same way.
// Threading: control thread (conversion); pure apart from registering stat counters.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "waypoint/ratelimit/rate_limit.h"

namespace google::protobuf {
class Any;
class Message;
class Duration;
template <typename T>
class RepeatedPtrField;
}  // namespace google::protobuf
namespace envoy::config::route::v3 {
class HeaderMatcher;
class RateLimit;
}  // namespace envoy::config::route::v3
namespace envoy::config::core::v3 {
class HeaderValueOption;
class RuntimeFractionalPercent;
}  // namespace envoy::config::core::v3

namespace waypoint::xds {

inline constexpr std::string_view kLocalRateLimitFilterName = "envoy.filters.http.local_ratelimit";
inline constexpr std::string_view kRateLimitFilterName = "envoy.filters.http.ratelimit";

// Each returns false after recording an error (path: message) through `fail`.
struct RateLimitHelpers {
  std::function<bool(const std::string& path, const std::string& message)> fail;
  std::function<bool(const envoy::config::route::v3::HeaderMatcher&, const std::string&, HeaderMatcher&)>
      header_matcher;
  std::function<bool(const google::protobuf::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>&,
                     const std::string&, std::vector<HeaderValueOption>&)>
      header_adds;
  std::function<bool(const envoy::config::core::v3::RuntimeFractionalPercent&, const std::string&, FractionalPercent&)>
      runtime_fraction;
  std::function<bool(const google::protobuf::Duration&, const std::string&, Duration&)> duration;
  std::function<std::string(const google::protobuf::Message&, const std::string&)> unsupported_field;
};

bool convert_local_ratelimit(const RateLimitHelpers& h, const google::protobuf::Any& any, const std::string& path,
                             std::shared_ptr<const ratelimit::LocalRateLimit>& out);
bool convert_global_ratelimit(const RateLimitHelpers& h, const google::protobuf::Any& any, const std::string& path,
                              std::shared_ptr<const ratelimit::GlobalRateLimit>& out);
bool convert_rate_limits(const RateLimitHelpers& h,
                         const google::protobuf::RepeatedPtrField<envoy::config::route::v3::RateLimit>& in,
                         const std::string& path, std::shared_ptr<const ratelimit::RateLimitPolicies>& out);

}  // namespace waypoint::xds
