#include "waypoint/xds/ratelimit_convert.h"

#include <algorithm>

#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.pb.h"
#include "envoy/extensions/filters/http/ratelimit/v3/rate_limit.pb.h"
#include "waypoint/ratelimit/stats.h"

namespace waypoint::xds {

namespace lrl = envoy::extensions::filters::http::local_ratelimit::v3;
namespace grl = envoy::extensions::filters::http::ratelimit::v3;
namespace route = envoy::config::route::v3;

namespace {

bool status_code(const RateLimitHelpers& h, int32_t code, const std::string& path, uint16_t& out) {
  if (code < 100 || code > 599) return h.fail(path, "not an HTTP status code");
  out = static_cast<uint16_t>(code);
  return true;
}

}  // namespace

bool convert_local_ratelimit(const RateLimitHelpers& h, const google::protobuf::Any& any, const std::string& path,
                             std::shared_ptr<const ratelimit::LocalRateLimit>& out) {
  lrl::LocalRateLimit m;
  if (!any.Is<lrl::LocalRateLimit>() || !any.UnpackTo(&m))
    return h.fail(path,
                  "expected envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, got " + any.type_url());
  if (auto e = h.unsupported_field(m, path); !e.empty()) return h.fail(e, "rejected");
  auto c = std::make_shared<ratelimit::LocalRateLimit>();
  c->stat_prefix = m.stat_prefix();
  if (c->stat_prefix.empty()) return h.fail(path + ".stat_prefix", "required");
  if (m.has_status()) {
    // Envoy: a status below 400 means 429.
    if (!status_code(h, m.status().code(), path + ".status.code", c->status)) return false;
    if (c->status < 400) c->status = 429;
  }
  if (!m.has_token_bucket()) return h.fail(path + ".token_bucket", "required");
  const auto& tb = m.token_bucket();
  if (tb.max_tokens() == 0) return h.fail(path + ".token_bucket.max_tokens", "must be > 0");
  c->max_tokens = tb.max_tokens();
  c->tokens_per_fill = tb.has_tokens_per_fill() ? tb.tokens_per_fill().value() : 1;
  if (c->tokens_per_fill == 0) return h.fail(path + ".token_bucket.tokens_per_fill", "must be > 0");
  if (!tb.has_fill_interval()) return h.fail(path + ".token_bucket.fill_interval", "required");
  if (!h.duration(tb.fill_interval(), path + ".token_bucket.fill_interval", c->fill_interval)) return false;
  if (c->fill_interval.count() < 50) return h.fail(path + ".token_bucket.fill_interval", "must be at least 50ms");
  if (m.has_filter_enabled() && !h.runtime_fraction(m.filter_enabled(), path + ".filter_enabled", c->filter_enabled))
    return false;
  if (m.has_filter_enforced() &&
      !h.runtime_fraction(m.filter_enforced(), path + ".filter_enforced", c->filter_enforced))
    return false;
  if (!h.header_adds(m.response_headers_to_add(), path + ".response_headers_to_add", c->response_headers_to_add))
    return false;
  if (!h.header_adds(m.request_headers_to_add_when_not_enforced(), path + ".request_headers_to_add_when_not_enforced",
                     c->request_headers_to_add_when_not_enforced))
    return false;
  if (m.descriptors_size() > 0)
    return h.fail(path + ".descriptors", "per-descriptor local limits are not implemented (use the token_bucket)");
  if (m.stage() != 0) return h.fail(path + ".stage", "only stage 0 is implemented");
  // One bucket per process is what the waypoint has; a per-connection bucket would need state
  // on each HBONE stream, which no supported source writes.
  if (m.local_rate_limit_per_downstream_connection())
    return h.fail(path + ".local_rate_limit_per_downstream_connection", "true is not implemented");
  switch (m.enable_x_ratelimit_headers()) {
    case envoy::extensions::common::ratelimit::v3::OFF:
      break;
    case envoy::extensions::common::ratelimit::v3::DRAFT_VERSION_03:
      c->x_ratelimit_headers = true;
      break;
    default:
      return h.fail(path + ".enable_x_ratelimit_headers", "unknown value");
  }
  if (m.vh_rate_limits() != envoy::extensions::common::ratelimit::v3::OVERRIDE)
    return h.fail(path + ".vh_rate_limits", "only OVERRIDE (the default) is implemented");
  c->bucket = std::make_unique<ratelimit::TokenBucket>(
      c->max_tokens, c->tokens_per_fill, std::chrono::duration_cast<std::chrono::nanoseconds>(c->fill_interval),
      ratelimit::TokenBucket::now_ns());
  c->stats = ratelimit::stats_for(c->stat_prefix);
  out = std::move(c);
  return true;
}

bool convert_global_ratelimit(const RateLimitHelpers& h, const google::protobuf::Any& any, const std::string& path,
                              std::shared_ptr<const ratelimit::GlobalRateLimit>& out) {
  grl::RateLimit m;
  if (!any.Is<grl::RateLimit>() || !any.UnpackTo(&m))
    return h.fail(path, "expected envoy.extensions.filters.http.ratelimit.v3.RateLimit, got " + any.type_url());
  if (auto e = h.unsupported_field(m, path); !e.empty()) return h.fail(e, "rejected");
  auto c = std::make_shared<ratelimit::GlobalRateLimit>();
  c->domain = m.domain();
  if (c->domain.empty()) return h.fail(path + ".domain", "required");
  if (m.stage() > 10) return h.fail(path + ".stage", "must be in [0, 10]");
  c->stage = m.stage();
  if (!m.request_type().empty() && m.request_type() != "both")
    return h.fail(path + ".request_type", "only \"both\" (the default) is implemented");
  if (m.has_timeout()) {
    Duration d;
    if (!h.duration(m.timeout(), path + ".timeout", d)) return false;
    if (d.count() == 0) return h.fail(path + ".timeout", "must be > 0");
    c->timeout = d;
  }
  c->failure_mode_deny = m.failure_mode_deny();
  if (m.rate_limited_as_resource_exhausted())
    return h.fail(path + ".rate_limited_as_resource_exhausted", "true is not implemented");
  if (!m.has_rate_limit_service() || !m.rate_limit_service().has_grpc_service() ||
      !m.rate_limit_service().grpc_service().has_envoy_grpc())
    return h.fail(path + ".rate_limit_service.grpc_service.envoy_grpc", "required (a cluster the waypoint knows)");
  const auto& rls = m.rate_limit_service();
  if (rls.transport_api_version() != envoy::config::core::v3::V3)
    return h.fail(path + ".rate_limit_service.transport_api_version", "must be V3");
  c->cluster = rls.grpc_service().envoy_grpc().cluster_name();
  if (c->cluster.empty()) return h.fail(path + ".rate_limit_service.grpc_service.envoy_grpc.cluster_name", "required");
  c->authority = rls.grpc_service().envoy_grpc().authority();
  if (rls.grpc_service().has_timeout()) {
    // GrpcService.timeout bounds the call too; the smaller one wins.
    Duration d;
    if (!h.duration(rls.grpc_service().timeout(), path + ".rate_limit_service.grpc_service.timeout", d)) return false;
    if (d.count() > 0) c->timeout = std::min(c->timeout, d);
  }
  switch (m.enable_x_ratelimit_headers()) {
    case grl::RateLimit::OFF:
      break;
    case grl::RateLimit::DRAFT_VERSION_03:
      c->x_ratelimit_headers = true;
      break;
    default:
      return h.fail(path + ".enable_x_ratelimit_headers", "unknown value");
  }
  c->disable_x_envoy_ratelimited_header = m.disable_x_envoy_ratelimited_header();
  if (m.has_rate_limited_status()) {
    if (!status_code(h, m.rate_limited_status().code(), path + ".rate_limited_status.code", c->rate_limited_status))
      return false;
    if (c->rate_limited_status < 400) c->rate_limited_status = 429;
  }
  if (m.has_status_on_error()) {
    if (!status_code(h, m.status_on_error().code(), path + ".status_on_error.code", c->status_on_error)) return false;
    if (c->status_on_error < 400) c->status_on_error = 500;
  }
  if (!h.header_adds(m.response_headers_to_add(), path + ".response_headers_to_add", c->response_headers_to_add))
    return false;
  c->stat_prefix = m.stat_prefix().empty() ? c->domain : m.stat_prefix();
  c->stats = ratelimit::stats_for(c->stat_prefix);
  out = std::move(c);
  return true;
}

bool convert_rate_limits(const RateLimitHelpers& h, const google::protobuf::RepeatedPtrField<route::RateLimit>& in,
                         const std::string& path, std::shared_ptr<const ratelimit::RateLimitPolicies>& out) {
  if (in.empty()) return true;
  auto p = std::make_shared<ratelimit::RateLimitPolicies>();
  for (int i = 0; i < in.size(); ++i) {
    const auto& rl = in[i];
    const std::string rp = path + "[" + std::to_string(i) + "]";
    ratelimit::RateLimitEntry e;
    if (rl.has_stage()) {
      if (rl.stage().value() > 10) return h.fail(rp + ".stage", "must be in [0, 10]");
      e.stage = rl.stage().value();
    }
    if (!rl.disable_key().empty()) return h.fail(rp + ".disable_key", "runtime keys are not implemented");
    if (rl.actions_size() == 0) return h.fail(rp + ".actions", "at least one action required");
    for (int j = 0; j < rl.actions_size(); ++j) {
      const auto& a = rl.actions(j);
      const std::string ap = rp + ".actions[" + std::to_string(j) + "]";
      ratelimit::RateLimitAction out_a;
      using K = ratelimit::RateLimitAction::Kind;
      switch (a.action_specifier_case()) {
        case route::RateLimit::Action::kSourceCluster:
          out_a.kind = K::SourceCluster;
          break;
        case route::RateLimit::Action::kDestinationCluster:
          out_a.kind = K::DestinationCluster;
          break;
        case route::RateLimit::Action::kRequestHeaders: {
          const auto& r = a.request_headers();
          out_a.kind = K::RequestHeaders;
          if (r.header_name().empty()) return h.fail(ap + ".request_headers.header_name", "required");
          if (r.descriptor_key().empty()) return h.fail(ap + ".request_headers.descriptor_key", "required");
          out_a.header_name = r.header_name();
          std::transform(out_a.header_name.begin(), out_a.header_name.end(), out_a.header_name.begin(),
                         [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
          out_a.descriptor_key = r.descriptor_key();
          out_a.skip_if_absent = r.skip_if_absent();
          break;
        }
        case route::RateLimit::Action::kRemoteAddress:
          out_a.kind = K::RemoteAddress;
          break;
        case route::RateLimit::Action::kGenericKey:
          out_a.kind = K::GenericKey;
          if (a.generic_key().descriptor_value().empty())
            return h.fail(ap + ".generic_key.descriptor_value", "required");
          out_a.descriptor_value = a.generic_key().descriptor_value();
          out_a.descriptor_key = a.generic_key().descriptor_key();
          break;
        case route::RateLimit::Action::kHeaderValueMatch: {
          const auto& m = a.header_value_match();
          out_a.kind = K::HeaderValueMatch;
          if (m.descriptor_value().empty()) return h.fail(ap + ".header_value_match.descriptor_value", "required");
          if (m.headers_size() == 0) return h.fail(ap + ".header_value_match.headers", "at least one required");
          out_a.descriptor_value = m.descriptor_value();
          out_a.descriptor_key = m.descriptor_key();
          out_a.expect_match = !m.has_expect_match() || m.expect_match().value();
          for (int k = 0; k < m.headers_size(); ++k) {
            HeaderMatcher hm;
            if (!h.header_matcher(m.headers(k), ap + ".header_value_match.headers[" + std::to_string(k) + "]", hm))
              return false;
            out_a.headers.push_back(std::move(hm));
          }
          break;
        }
        default:
          return h.fail(ap,
                        "an action (source_cluster, destination_cluster, request_headers, remote_address, "
                        "generic_key, header_value_match) is required");
      }
      e.actions.push_back(std::move(out_a));
    }
    p->entries.push_back(std::move(e));
  }
  out = std::move(p);
  return true;
}

}  // namespace waypoint::xds
