// The waypoint router's decisions, as pure functions over the immutable route model
// (waypoint/route_model.h) and one request: which virtual host and route match, which cluster a
// weighted route picks, how the request is rewritten and its headers mutated, what local response
// a redirect / direct response / CORS preflight / fault abort produces, whether a failed attempt
// is retried, how long each attempt may take, and which mirrors fire. They reproduce Envoy's
// documented semantics (shared/reference/waypoint-facts.md §5).
//
// The data path (wp-data) executes these decisions: it owns sockets, timers, connection pools and
// load balancing; nothing here does I/O, allocates a timer or reads a clock.
//
// Threading: every function is reentrant and reads only its arguments; config objects are the
// immutable snapshot's, shared by all workers. Randomness comes in as a parameter (a Random owned
// by the calling worker, or a value drawn from it), so outcomes are reproducible in tests.
// Errors: none are thrown; absence is expressed with nullptr / nullopt / enum values.
// Lifetimes: returned pointers and string_views point into the RouteConfig (or the request)
// passed in and live as long as that snapshot (or request).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "waypoint/route_model.h"
#include "waypoint/router/http_message.h"
#include "waypoint/router/random.h"

namespace waypoint::router {

// ---------------------------------------------------------------------------------------------
// Matching (facts §5.1)

// Envoy's StringMatcher on one value.
bool string_matches(const StringMatcher& m, std::string_view value);
// One HeaderMatcher against a request's headers (pseudo-headers included) or a response's.
bool header_matches(const HeaderMatcher& m, const HttpRequest& request);
bool header_matches(const HeaderMatcher& m, const HeaderList& headers);
// All matchers must match (an empty list matches).
bool headers_match(std::span<const HeaderMatcher> matchers, const HttpRequest& request);
bool headers_match(std::span<const HeaderMatcher> matchers, const HeaderList& headers);
bool query_parameter_matches(const QueryParameterMatcher& m, std::string_view query);

// Path AND headers AND query parameters AND runtime fraction. `random_value` is drawn once per
// request (Envoy uses one value for every runtime_fraction of the request).
bool route_matches(const RouteMatch& match, const HttpRequest& request, uint64_t random_value);

// Virtual host by :authority: exact domain, then the longest "*.suffix", then the longest
// "prefix.*", then "*" (wildcards match at least one character). Case-insensitive. The port is
// part of the name ("foo:80" does not match domain "foo") unless ignore_port_in_host_matching.
const VirtualHost* select_virtual_host(const RouteConfig& config, std::string_view authority);

// First matching route of the virtual host, or nullptr (= 404, flag NR).
const Route* select_route(const VirtualHost& vhost, const HttpRequest& request, uint64_t random_value);

struct RouteSelection {
  const VirtualHost* vhost = nullptr;
  const Route* route = nullptr;  // nullptr = no route: 404 NR
};
RouteSelection select(const RouteConfig& config, const HttpRequest& request, uint64_t random_value);

// ---------------------------------------------------------------------------------------------
// Cluster choice (facts §5.2)

struct ClusterChoice {
  std::string_view cluster;                 // empty only if the action has no usable cluster
  const ClusterWeight* weighted = nullptr;  // the chosen entry of a weighted route
};

// Single cluster, or weighted pick: v = random_value % total_weight (or the value of
// weighted_random_header when it parses as an unsigned integer); the first cluster whose running
// sum of weights exceeds v wins. Done once per request, before retries.
ClusterChoice choose_cluster(const RouteAction& action, const HttpRequest& request, uint64_t random_value);

// ---------------------------------------------------------------------------------------------
// Rewrites and header mutations (facts §5.6)

// Path rewrite (prefix_rewrite / regex_rewrite, query kept; sets x-envoy-original-path when the
// path changes) and host rewrite (cluster weight's literal, else the route's; the old host goes
// to x-forwarded-host when append_x_forwarded_host). Call after choose_cluster.
void apply_rewrites(const RouteMatch& match, const RouteAction& action, const ClusterWeight* weighted,
                    HttpRequest& request);

// One level's request or response mutations: removals first, then adds; add conditions are
// judged on the headers as they were before this level's adds; overwrites land before appends.
// Pseudo-headers and `host` are never removed or added (Envoy rejects such config).
void apply_header_options(std::span<const HeaderValueOption> add, std::span<const std::string> remove,
                          HeaderList& headers);

// All levels in Envoy's order: weighted cluster, route, virtual host, route configuration (the
// least specific applied last, so it wins on overwrite), reversed when
// most_specific_header_mutations_wins. `weighted` may be null.
void apply_request_headers(const RouteConfig& config, const VirtualHost& vhost, const Route& route,
                           const ClusterWeight* weighted, HeaderList& headers);
void apply_response_headers(const RouteConfig& config, const VirtualHost& vhost, const Route& route,
                            const ClusterWeight* weighted, HeaderList& headers);

// ---------------------------------------------------------------------------------------------
// Local responses

// 30x with `location` = scheme://host[:port]/path built as Envoy's RedirectAction; `match` is the
// route's match (prefix_rewrite replaces the matched prefix).
LocalResponse build_redirect(const RedirectAction& redirect, const RouteMatch& match, const HttpRequest& request);
// Status and inline body; content-type text/plain when the body is not empty.
LocalResponse build_direct_response(const DirectResponseAction& direct);

// ---------------------------------------------------------------------------------------------
// Retries (facts §5.3)

// Parses RetryPolicy.retry_on ("5xx,gateway-error,..."); an unknown token is an error naming it.
common::Result<uint32_t> parse_retry_on(std::string_view list);

// The route's policy, else the virtual host's, else nullptr (no retries).
const RetryPolicy* effective_retry_policy(const VirtualHost& vhost, const RouteAction& action);

// Why an attempt ended without a usable response.
enum class AttemptFailure : uint8_t {
  None,            // a response arrived (status/headers below)
  ConnectFailure,  // TCP/TLS/HBONE connect failed or timed out
  Reset,           // upstream reset / disconnect before a full response
  RefusedStream,   // HTTP/2 REFUSED_STREAM
  PerTryTimeout,   // the attempt's per-try timer fired
  Overflow,        // circuit breaker / pool overflow (never retried)
};

struct AttemptOutcome {
  AttemptFailure failure = AttemptFailure::None;
  uint16_t status = 0;                           // response status when failure == None
  const HeaderList* response_headers = nullptr;  // for grpc-status, retriable_headers, ratelimited
  bool request_sent = true;                      // request headers had reached the upstream
};

enum class RetryDecision : uint8_t {
  NoRetry,           // outcome is final (success or a non-retriable failure)
  Retry,             // try again (after retry_backoff)
  RetriesExhausted,  // retriable, but num_retries already used: final, flag URX
};

// `retries_done` = retries already made for this request (0 after the first attempt).
// `request` is consulted for retriable_request_headers.
RetryDecision should_retry(const RetryPolicy& policy, const AttemptOutcome& outcome, uint32_t retries_done,
                           const HttpRequest& request);

// Fully jittered exponential back-off before retry number `retry_number` (1-based):
// uniform in [0, min((2^n - 1) * base, max)).
Duration retry_backoff(const RetryPolicy& policy, uint32_t retry_number, uint64_t random_value);

// previous_hosts predicate: true when `host` ("ip:port") was already tried and another choice
// should be made; the data path re-picks up to host_selection_retry_max_attempts times.
bool should_select_another_host(const RetryPolicy& policy, std::string_view host,
                                std::span<const std::string> previous_hosts);

// x-envoy-attempt-count: set on the upstream request (attempt = 1 for the first try, +1 per
// retry) only when the virtual host has include_request_attempt_count, and on the downstream
// response only with include_attempt_count_in_response. Istio's waypoint vhost sets neither.
void set_request_attempt_count(const VirtualHost& vhost, uint32_t attempt, HeaderList& request_headers);
void set_response_attempt_count(const VirtualHost& vhost, uint32_t attempts, HeaderList& response_headers);

// ---------------------------------------------------------------------------------------------
// Timeouts (facts §5.4)

struct Timeouts {
  Duration global{0};   // whole request incl. retries and back-off, from end of downstream request; 0 = none
  Duration per_try{0};  // each attempt until response headers; 0 = none
  // Value for x-envoy-expected-rq-timeout-ms (per-try if set, else global); 0 = do not send.
  Duration expected{0};
};

// Route timeout (or the gRPC rules with max_grpc_timeout / grpc-timeout / offset) and the retry
// policy's per-try timeout; a per-try timeout >= the global one is dropped (it can never fire
// first). `policy` may be null.
Timeouts compute_timeouts(const RouteAction& action, const RetryPolicy* policy, const HttpRequest& request, bool grpc);

// Parses a gRPC `grpc-timeout` value ("<1-8 digits><H|M|S|m|u|n>"); nullopt when malformed.
std::optional<Duration> parse_grpc_timeout(std::string_view value);

// The timer for the next attempt, given the time already spent since the downstream request
// ended. `expired` = the global timeout has passed: answer 504 UT, no further attempt.
struct AttemptTimer {
  Duration timeout{0};   // 0 = no timer
  bool per_try = false;  // the timer that fires is the per-try one (retriable) rather than the global
  bool expired = false;
};
AttemptTimer attempt_timer(const Timeouts& timeouts, Duration elapsed);

// ---------------------------------------------------------------------------------------------
// Fault injection (facts §5.5): delay decided first, then (after it) abort, independently.

// True when `fraction` fires for this random value: (random_value % denominator) < numerator.
bool fraction_enabled(const FractionalPercent& fraction, uint64_t random_value);

// Whether the fault policy applies to this request at all (headers, downstream nodes, active
// faults below max_active_faults).
bool fault_applies(const FaultPolicy& policy, const HttpRequest& request, uint64_t active_faults);

// The delay to inject (nullopt = none). Header delays read x-envoy-fault-delay-request(-percentage).
std::optional<Duration> decide_fault_delay(const FaultPolicy& policy, const HttpRequest& request,
                                           uint64_t random_value);

// The abort reply (nullopt = forward the request). Body "fault filter abort"; gRPC aborts answer
// HTTP 200 with grpc-status. Header aborts read x-envoy-fault-abort-request(-percentage) /
// x-envoy-fault-abort-grpc-request.
std::optional<LocalResponse> decide_fault_abort(const FaultPolicy& policy, const HttpRequest& request,
                                                uint64_t random_value, bool grpc);

// The per-route fault policy: the chosen weighted cluster's, else the route's, else the virtual
// host's (most specific typed_per_filter_config wins). nullptr = no fault filter config.
const FaultPolicy* effective_fault_policy(const VirtualHost& vhost, const Route& route, const ClusterWeight* weighted);

// ---------------------------------------------------------------------------------------------
// Mirroring

// The mirror policies of the route (else the virtual host's) that fire for this request, each
// with its own random draw.
std::vector<const MirrorPolicy*> decide_mirrors(const VirtualHost& vhost, const RouteAction& action, Random& random);

// The mirrored request's :authority: "host-shadow[:port]" unless disabled; host_rewrite_literal
// replaces it when set.
std::string shadow_authority(const MirrorPolicy& mirror, std::string_view authority);

// ---------------------------------------------------------------------------------------------
// CORS

const CorsPolicy* effective_cors_policy(const VirtualHost& vhost, const Route& route);

struct CorsDecision {
  enum class Kind : uint8_t {
    NotCors,    // no Origin, or filter disabled: forward untouched
    Preflight,  // answer locally with `response` (200 + access-control-* headers)
    Forward,    // forward; add `response_headers` to the upstream response
  };
  Kind kind = Kind::NotCors;
  LocalResponse response;       // Preflight
  HeaderList response_headers;  // Forward: access-control-allow-origin etc. (empty if origin not allowed)
};
CorsDecision decide_cors(const CorsPolicy& policy, const HttpRequest& request, uint64_t random_value);

}  // namespace waypoint::router
