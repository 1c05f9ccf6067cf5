// The waypoint's routing configuration model: plain C++ values mirroring the subset of Envoy v3
// RouteConfiguration / Cluster / ClusterLoadAssignment the waypoint implements
// (shared/reference/waypoint-facts.md §4), with Envoy's defaults written as member initialisers.
// Conversion from protobuf (waypoint/xds/) fills these types and rejects (NACKs) every field the
// waypoint does not implement, so anything representable here is something the router honours.
// No protobuf, gRPC or Asio here: this header is included by the data path.
//
// Threading: values are built once by the control thread during conversion, then frozen inside an
// immutable snapshot (std::shared_ptr<const ...>) and read concurrently by all workers without
// locks. Nothing here is mutated after publication.
//
// Invariants (established by the converter, relied on by waypoint/router/):
//   - header names (matchers, mutations, hash policies) are lower case;
//   - a StringMatcher with ignore_case holds a lower-cased `value`; regexes are compiled;
//   - RouteAction names exactly one cluster, or weighted_clusters with total_weight = Σ weights > 0
//     (weight-0 entries may be present; they never win);
//   - durations are >= 0; `0` means "disabled" wherever Envoy says so (route timeout, per-try);
//   - FractionalPercent numerators are capped at their denominator.
//
// Extension points: traffic policy (DestinationRule LB, circuit breakers, outlier detection) lives
// in ClusterPolicy; per-route filter configuration (fault, CORS, and later L7 authz, rate limits)
// lives in FilterConfigs, keyed by filter like Envoy's typed_per_filter_config.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "waypoint/regex.h"

namespace waypoint {

namespace authz {
struct RbacFilters;  // waypoint/authz/rbac_model.h
struct JwtConfig;    // waypoint/authz/jwt.h
struct ExtAuthzConfig;  // waypoint/authz/ext_authz.h
}  // namespace authz
namespace ratelimit {  // waypoint/ratelimit/rate_limit.h
struct LocalRateLimit;
struct GlobalRateLimit;
struct RateLimitPolicies;
}  // namespace ratelimit

using Duration = std::chrono::milliseconds;

// Envoy's RouteAction.timeout when the field is absent. Istio always writes the field (0s = none
// unless the VirtualService sets `timeout`), so under istiod this default is never used.
inline constexpr Duration kEnvoyDefaultRouteTimeout{15000};

// ---------------------------------------------------------------------------------------------
// Percentages and matchers (envoy.type.v3 / envoy.type.matcher.v3)

// FractionalPercent: numerator / denominator with denominator 100, 10'000 or 1'000'000.
// Evaluated as (random % denominator) < numerator, as Envoy's runtime featureEnabled().
struct FractionalPercent {
  uint32_t numerator = 0;
  uint32_t denominator = 100;

  static FractionalPercent all() { return {100, 100}; }
  static FractionalPercent none() { return {0, 100}; }
  friend bool operator==(const FractionalPercent&, const FractionalPercent&) = default;
};

// envoy.type.matcher.v3.StringMatcher.
struct StringMatcher {
  enum class Kind : uint8_t { Exact, Prefix, Suffix, Contains, Regex };
  Kind kind = Kind::Exact;
  std::string value;  // lower-cased when ignore_case; unused for Regex
  Regex regex;        // Kind::Regex only; always a full match, never affected by ignore_case
  bool ignore_case = false;
};

// Int64Range [start, end): the header value must parse entirely as a signed 64-bit integer.
struct Int64Range {
  int64_t start = 0;
  int64_t end = 0;
};

// present_match: true = header must be present, false = header must be absent.
struct PresentMatch {
  bool present = true;
};

// envoy.config.route.v3.HeaderMatcher. Names may be pseudo-headers (`:method`, `:authority`,
// `:path`, `:scheme`). A header with several values is matched against the values joined by ",".
// The deprecated `exact_match: ""` matches any present value in Envoy: convert it to PresentMatch.
struct HeaderMatcher {
  std::string name;
  std::variant<StringMatcher, Int64Range, PresentMatch> spec;
  bool invert_match = false;
  bool treat_missing_header_as_empty = false;
};

// envoy.config.route.v3.QueryParameterMatcher; monostate = present_match. Values are compared
// after percent-decoding; the first occurrence of the parameter is used.
struct QueryParameterMatcher {
  std::string name;
  std::variant<std::monostate, StringMatcher> spec;
};

// ---------------------------------------------------------------------------------------------
// Header mutations (core.v3.HeaderValueOption and the *_headers_to_add/remove fields)

enum class AppendAction : uint8_t {
  AppendIfExistsOrAdd = 0,
  AddIfAbsent = 1,
  OverwriteIfExistsOrAdd = 2,
  OverwriteIfExists = 3,
};

struct HeaderValueOption {
  std::string key;
  std::string value;  // literal; the converter rejects %FORMATTERS% and unescapes "%%"
  AppendAction append_action = AppendAction::AppendIfExistsOrAdd;
  bool keep_empty_value = false;
};

// One level's mutations (weighted cluster, route, virtual host or route configuration).
// At each level removals run first, then the adds.
struct HeaderMutations {
  std::vector<HeaderValueOption> request_headers_to_add;
  std::vector<std::string> request_headers_to_remove;
  std::vector<HeaderValueOption> response_headers_to_add;
  std::vector<std::string> response_headers_to_remove;

  bool empty() const {
    return request_headers_to_add.empty() && request_headers_to_remove.empty() && response_headers_to_add.empty() &&
           response_headers_to_remove.empty();
  }
};

// ---------------------------------------------------------------------------------------------
// Route match

struct RouteMatch {
  enum class PathKind : uint8_t { Prefix, Path, Regex, PathSeparatedPrefix };
  PathKind path_kind = PathKind::Prefix;
  std::string path;  // prefix / exact path / separated prefix; lower-cased when !case_sensitive
  Regex regex;       // PathKind::Regex; full match on the path without query
  bool case_sensitive = true;
  std::optional<FractionalPercent> runtime_fraction;
  std::vector<HeaderMatcher> headers;
  std::vector<QueryParameterMatcher> query_parameters;
};

// ---------------------------------------------------------------------------------------------
// Policies attached to routes

// retry_on condition bits (RetryPolicy.retry_on, a comma list in the proto).
namespace retry_on {
inline constexpr uint32_t k5xx = 1u << 0;
inline constexpr uint32_t kGatewayError = 1u << 1;
inline constexpr uint32_t kReset = 1u << 2;
inline constexpr uint32_t kResetBeforeRequest = 1u << 3;
inline constexpr uint32_t kConnectFailure = 1u << 4;
inline constexpr uint32_t kRetriable4xx = 1u << 5;
inline constexpr uint32_t kRefusedStream = 1u << 6;
inline constexpr uint32_t kRetriableStatusCodes = 1u << 7;
inline constexpr uint32_t kRetriableHeaders = 1u << 8;
inline constexpr uint32_t kEnvoyRateLimited = 1u << 9;
inline constexpr uint32_t kGrpcCancelled = 1u << 10;
inline constexpr uint32_t kGrpcDeadlineExceeded = 1u << 11;
inline constexpr uint32_t kGrpcInternal = 1u << 12;
inline constexpr uint32_t kGrpcResourceExhausted = 1u << 13;
inline constexpr uint32_t kGrpcUnavailable = 1u << 14;
}  // namespace retry_on

// envoy.config.route.v3.RetryPolicy. A RetryPolicy that exists allows num_retries retries (Envoy
// default 1) for the conditions in retry_on; no policy = no retries.
struct RetryPolicy {
  uint32_t retry_on = 0;  // retry_on::* bits
  uint32_t num_retries = 1;
  Duration per_try_timeout{0};       // 0 = none
  Duration per_try_idle_timeout{0};  // 0 = none
  std::vector<uint32_t> retriable_status_codes;
  std::vector<HeaderMatcher> retriable_headers;
  std::vector<HeaderMatcher> retriable_request_headers;  // retry only requests matching these
  bool previous_hosts_predicate = false;                 // envoy.retry_host_predicates.previous_hosts
  bool previous_priorities = false;                      // envoy.retry_priorities.previous_priorities
  int64_t host_selection_retry_max_attempts = 1;
  Duration backoff_base{25};
  Duration backoff_max{0};  // 0 = 10 x backoff_base (Envoy's default)
};

// envoy.config.route.v3.RequestMirrorPolicy. Fire-and-forget copy of the request.
struct MirrorPolicy {
  std::string cluster;
  FractionalPercent fraction = FractionalPercent::all();  // runtime_fraction absent = 100%
  bool trace_sampled = true;                              // Istio writes false
  bool disable_shadow_host_suffix_append = false;
  std::string host_rewrite_literal;
};

// envoy.config.route.v3.RouteAction.HashPolicy (one entry).
struct HashPolicy {
  enum class Kind : uint8_t { Header, Cookie, SourceIp, QueryParameter };
  Kind kind = Kind::Header;
  std::string name;                    // header (lower case), cookie or query parameter name
  std::optional<Duration> cookie_ttl;  // Cookie: present = generate the cookie when absent
  std::string cookie_path;
  bool terminal = false;
};

// Per-route HTTPFault (envoy.extensions.filters.http.fault.v3). Percentages absent in the proto
// mean 100% for Envoy; Istio always writes them (and omits a fault that has none).
struct FaultDelay {
  Duration fixed_delay{0};
  bool header_delay = false;  // delay from x-envoy-fault-delay-request (ms)
  FractionalPercent percentage = FractionalPercent::all();
};

struct FaultAbort {
  enum class Kind : uint8_t { Http, Grpc, Header };
  Kind kind = Kind::Http;
  uint32_t http_status = 0;  // Kind::Http
  uint32_t grpc_status = 0;  // Kind::Grpc: answered as HTTP 200 + grpc-status trailers-only
  FractionalPercent percentage = FractionalPercent::all();
};

struct FaultPolicy {
  std::optional<FaultDelay> delay;
  std::optional<FaultAbort> abort;
  std::vector<HeaderMatcher> headers;         // all must match for any fault to apply
  std::vector<std::string> downstream_nodes;  // x-envoy-downstream-service-node must be one of these
  std::optional<uint32_t> max_active_faults;  // none = unlimited
};

// envoy.config.route.v3.CorsPolicy (per-route `envoy.filters.http.cors`).
struct CorsPolicy {
  std::vector<StringMatcher> allow_origin;
  std::string allow_methods;   // comma list, copied to access-control-allow-methods
  std::string allow_headers;   // access-control-allow-headers
  std::string expose_headers;  // access-control-expose-headers
  std::string max_age;         // access-control-max-age (seconds, as text)
  std::optional<bool> allow_credentials;
  bool allow_private_network_access = false;
  bool forward_not_matching_preflights = true;  // Istio unmatchedPreflights FORWARD (default)
  FractionalPercent filter_enabled = FractionalPercent::all();
};

// Per-filter route configuration (typed_per_filter_config). New filters (L7 authz, local rate
// limit) add an optional member here; absent = the filter does nothing for this route.
struct FilterConfigs {
  std::optional<FaultPolicy> fault;
  std::optional<CorsPolicy> cors;
  // L7 authorization (the RBAC filter instances, keys envoy.filters.http.rbac.{deny,allow,audit});
  // shared because the same policies are attached to every route config of a service.
  std::shared_ptr<const authz::RbacFilters> rbac;
  // RequestAuthentication (envoy.filters.http.jwt_authn): runs before RBAC.
  std::shared_ptr<const authz::JwtConfig> jwt;
  // envoy.filters.http.local_ratelimit / envoy.filters.http.ratelimit (waypoint/ratelimit/).
  // Shared, not copied: the local limit's token bucket is one per configuration.
  std::shared_ptr<const ratelimit::LocalRateLimit> local_ratelimit;
  std::shared_ptr<const ratelimit::GlobalRateLimit> ratelimit;
  // envoy.filters.http.ext_authz (CUSTOM AuthorizationPolicy): the service the requests the
  // RbacFilters::custom instance selects are checked with.
  std::shared_ptr<const authz::ExtAuthzConfig> ext_authz;
};

// ---------------------------------------------------------------------------------------------
// Route actions

struct ClusterWeight {
  std::string name;
  uint32_t weight = 0;
  HeaderMutations headers;           // applied before the route's own mutations
  std::string host_rewrite_literal;  // overrides the route's when set
  FilterConfigs filters;             // per-cluster typed_per_filter_config (most specific)
};

struct RegexRewrite {
  Regex pattern;
  std::string substitution;  // \N back-references
};

// envoy.config.route.v3.RouteAction.
struct RouteAction {
  enum class NotFoundCode : uint16_t { ServiceUnavailable = 503, NotFound = 404, InternalServerError = 500 };

  std::string cluster;                           // single destination, or
  std::vector<ClusterWeight> weighted_clusters;  // weighted destinations (in config order)
  uint64_t total_weight = 0;                     // Σ weighted_clusters[i].weight
  std::string weighted_random_header;            // WeightedCluster.header_name: random value source
  NotFoundCode cluster_not_found_response_code = NotFoundCode::ServiceUnavailable;

  std::string prefix_rewrite;                 // replaces the matched prefix (whole path for Path/Regex)
  std::optional<RegexRewrite> regex_rewrite;  // on the path without query
  std::string host_rewrite_literal;
  bool auto_host_rewrite = false;  // :authority = the chosen endpoint's hostname (data path)
  bool append_x_forwarded_host = false;

  Duration timeout = kEnvoyDefaultRouteTimeout;  // 0 = disabled
  std::optional<Duration> idle_timeout;
  std::optional<Duration> max_grpc_timeout;  // absent = ignore grpc-timeout; 0 = honour uncapped
  std::optional<Duration> grpc_timeout_offset;

  std::optional<RetryPolicy> retry_policy;    // absent = the virtual host's
  std::vector<MirrorPolicy> mirror_policies;  // empty = the virtual host's
  std::vector<HashPolicy> hash_policy;
  std::vector<std::string> upgrade_types;  // enabled upgrades, lower case ("websocket")
  // Global rate limit descriptors (rate_limits); null = none. include_vh_rate_limits adds the
  // virtual host's too (else they apply only when the route has none, Envoy's OVERRIDE).
  std::shared_ptr<const ratelimit::RateLimitPolicies> rate_limits;
  bool include_vh_rate_limits = false;
};

// envoy.config.route.v3.RedirectAction.
struct RedirectAction {
  enum class PathKind : uint8_t { Keep, Path, PrefixRewrite, RegexRewrite };
  std::string scheme;  // empty = keep the request's; https_redirect is stored as "https"
  std::string host;    // empty = keep the request's
  uint32_t port = 0;   // 0 = keep
  PathKind path_kind = PathKind::Keep;
  std::string path;  // Path: the new path (may carry its own query); PrefixRewrite: new prefix
  std::optional<RegexRewrite> regex_rewrite;
  uint16_t response_code = 301;  // 301, 302, 303, 307 or 308
  bool strip_query = false;
};

// envoy.config.route.v3.DirectResponseAction (body inline).
struct DirectResponseAction {
  uint16_t status = 200;
  std::string body;
};

// ---------------------------------------------------------------------------------------------
// Tracing (docs/tracing.md): what Istio's Telemetry API compiles to.

// envoy.type.tracing.v3.CustomTag. An `environment` tag is read once at conversion and stored
// as a Literal (the waypoint's environment does not change while it runs).
struct TracingCustomTag {
  enum class Kind : uint8_t { Literal, Header };
  std::string tag;
  Kind kind = Kind::Literal;
  std::string value;          // Literal
  std::string header;         // Header: lower case
  std::string default_value;  // Header: when the request lacks it ("" = no tag)
  friend bool operator==(const TracingCustomTag&, const TracingCustomTag&) = default;
};

// envoy.config.route.v3.Tracing (Route.tracing): sampling of new traces and custom tags.
struct RouteTracing {
  std::optional<FractionalPercent> random_sampling;  // absent = the waypoint's own setting
  std::vector<TracingCustomTag> custom_tags;
  friend bool operator==(const RouteTracing&, const RouteTracing&) = default;
};

// The virtual host's "istio.tracing" config (HCM Tracing with a Zipkin provider): where spans
// go. `report == false` (no provider) = Telemetry disableSpanReporting: no spans, headers
// pass through.
struct TracingProvider {
  bool report = false;
  std::string collector_cluster;                  // ZipkinConfig.collector_cluster
  std::string collector_path = "/api/v2/spans";  // ZipkinConfig.collector_endpoint
  uint32_t max_path_tag_length = 256;             // Envoy's default
};

struct Route {
  std::string name;
  RouteMatch match;
  std::variant<RouteAction, RedirectAction, DirectResponseAction> action;
  HeaderMutations headers;
  FilterConfigs filters;
  std::string stat_prefix;
  std::shared_ptr<const RouteTracing> tracing;  // Route.tracing; null = none
};

struct VirtualHost {
  std::string name;
  std::vector<std::string> domains;  // lower case; "*", "*.suffix", "prefix.*" or exact
  std::vector<Route> routes;         // first match wins
  HeaderMutations headers;
  std::optional<RetryPolicy> retry_policy;
  std::vector<MirrorPolicy> mirror_policies;
  FilterConfigs filters;
  // Global rate limit descriptors (rate_limits); null = none.
  std::shared_ptr<const ratelimit::RateLimitPolicies> rate_limits;
  bool include_request_attempt_count = false;      // x-envoy-attempt-count upstream
  bool include_attempt_count_in_response = false;  // x-envoy-attempt-count downstream
  // require_tls ALL (an Istio Gateway server's tls.httpsRedirect): a request whose
  // x-forwarded-proto is not https gets 301 to https://<host><path>, as Envoy's SSL redirect.
  bool require_tls = false;
  // Tracing for requests to this host: the routes' Route.tracing (the converter requires them
  // equal, so the span can be started before the route is chosen) and the "istio.tracing"
  // provider. Both null = the waypoint's environment settings (PROXY_CONFIG, ZIPKIN_ADDRESS).
  std::shared_ptr<const RouteTracing> tracing;
  std::shared_ptr<const TracingProvider> tracing_provider;
};

// envoy.config.route.v3.RouteConfiguration. At a waypoint: one per service port, named
// `inbound-vip|<port>|http|<hostname>`, one virtual host with domains ["*"].
struct RouteConfig {
  std::string name;
  std::vector<VirtualHost> virtual_hosts;
  HeaderMutations headers;
  bool most_specific_header_mutations_wins = false;
  bool ignore_port_in_host_matching = false;
};

// ---------------------------------------------------------------------------------------------
// Clusters and endpoints

enum class LbPolicy : uint8_t { RoundRobin, LeastRequest, RingHash, Random, Maglev, ClusterProvided };

enum class HealthStatus : uint8_t { Unknown, Healthy, Unhealthy, Draining, Timeout, Degraded };

enum class UpstreamProtocol : uint8_t { Http1, Http2, UseDownstream };

struct Locality {
  std::string region;
  std::string zone;
  std::string sub_zone;
};

// One LbEndpoint. At a waypoint: `address:port` = podIP:targetPort (from a socket_address or from
// istiod's internal-address endpoint_id); the data path looks the pod up in the workload model to
// choose HBONE or plain TCP.
struct Endpoint {
  std::string address;
  // `address` parsed once when the resource is converted (nullopt: not an IP, or an endpoint
  // built by hand); the data path falls back to parsing `address` itself.
  std::optional<boost::asio::ip::address> ip;
  uint16_t port = 0;
  uint32_t weight = 1;
  HealthStatus health = HealthStatus::Unknown;
  Locality locality;
  uint32_t priority = 0;
  std::string hostname;
  std::map<std::string, std::string> labels;  // for subset selection and telemetry
  uint32_t locality_weight = 0;               // its LocalityLbEndpoints.load_balancing_weight (distribute); 0 = unset
};

struct ClusterLoadAssignment {
  std::string cluster_name;
  std::vector<Endpoint> endpoints;
  uint32_t overprovisioning_factor = 140;
};

// CircuitBreakers.Thresholds (DEFAULT priority). Envoy defaults; Istio writes 2^32-1 to all.
struct CircuitBreakerThresholds {
  uint32_t max_connections = 1024;
  uint32_t max_pending_requests = 1024;
  uint32_t max_requests = 1024;
  uint32_t max_retries = 3;
};

// OutlierDetection (consecutive-error ejection; success-rate ejection is not implemented).
struct OutlierDetection {
  uint32_t consecutive_5xx = 5;
  uint32_t consecutive_gateway_failure = 5;
  uint32_t enforcing_consecutive_5xx = 100;
  uint32_t enforcing_consecutive_gateway_failure = 0;
  Duration interval{10000};
  Duration base_ejection_time{30000};
  uint32_t max_ejection_percent = 10;
  Duration max_ejection_time{300000};  // cap on base_ejection_time x ejections (Envoy default 300s)
};

// Everything DestinationRule traffic policy compiles into; read by the load balancer and the
// upstream connection pools (data path), never by route matching.
struct ClusterPolicy {
  LbPolicy lb_policy = LbPolicy::RoundRobin;  // Envoy's default; istiod writes LEAST_REQUEST
  uint32_t least_request_choice_count = 2;
  uint64_t ring_hash_minimum_ring_size = 1024;
  uint64_t maglev_table_size = 65537;
  uint32_t healthy_panic_threshold_percent = 50;
  CircuitBreakerThresholds circuit_breakers;
  std::optional<OutlierDetection> outlier_detection;
  UpstreamProtocol upstream_protocol = UpstreamProtocol::Http1;
  Duration idle_timeout{3600000};            // upstream connection idle timeout (Envoy default 1h)
  uint32_t max_requests_per_connection = 0;  // 0 = unlimited
  // DestinationRule extras the controlplane writes (warmupDurationSecs, localityLbSetting
  // distribute/failover, http.maxConcurrentStreams).
  std::optional<Duration> slow_start_window;  // round_robin / least_request slow_start_config
  bool locality_weighted_lb = false;          // common_lb_config.locality_weighted_lb_config
  uint32_t max_concurrent_streams = 0;        // upstream HTTP/2 streams per connection; 0 = peer's limit
};

struct Cluster {
  enum class Discovery : uint8_t { Static, Eds, OriginalDst };
  std::string name;  // `inbound-vip|<port>|http|<host>` or `inbound-vip|<port>|http/<subset>|<host>`
  Discovery discovery = Discovery::Eds;
  std::string eds_service_name;  // empty = the cluster's name
  Duration connect_timeout{5000};
  ClusterPolicy policy;
  std::optional<ClusterLoadAssignment> load_assignment;  // inline endpoints (Static)
  // A TCP cluster's network RBAC (Istio's policies compiled for TCP: no HTTP attributes); null =
  // no policy. Evaluated once per relayed connection (proxy.cc).
  std::shared_ptr<const authz::RbacFilters> network_rbac;
};

}  // namespace waypoint
