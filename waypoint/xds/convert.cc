#include "waypoint/xds/convert.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "common/model/model.h"
#include "waypoint/router/retry_on.h"
#include "waypoint/xds/ext_authz_convert.h"
#include "waypoint/xds/jwt_convert.h"
#include "waypoint/xds/ratelimit_convert.h"
#include "waypoint/xds/rbac_convert.h"
#include "waypoint/xds/tracing_convert.h"
#include "waypoint/xds/validate.h"

namespace waypoint::xds {
namespace {

namespace route = envoy::config::route::v3;
namespace core = envoy::config::core::v3;
namespace matcher = envoy::type::matcher::v3;
namespace cluster = envoy::config::cluster::v3;
namespace endpoint = envoy::config::endpoint::v3;

using common::make_error;

// Internal: conversion fails by returning a non-empty error string from each step; the path is
// built as we descend so the NACK names the exact field.
struct Ctx {
  std::string err;
  bool fail(const std::string& path, const std::string& message) {
    if (err.empty()) err = path + ": " + message;
    return false;
  }
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool duration(Ctx& ctx, const google::protobuf::Duration& d, const std::string& path, Duration& out) {
  if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() > 999'999'999)
    return ctx.fail(path, "negative or invalid duration");
  if (d.seconds() > 315'576'000'000LL) return ctx.fail(path, "duration too large");
  out = Duration(d.seconds() * 1000 + d.nanos() / 1'000'000);
  if (out.count() == 0 && d.nanos() > 0) out = Duration(1);  // sub-millisecond rounds up, never to "disabled"
  return true;
}

bool fraction(Ctx& ctx, const envoy::type::v3::FractionalPercent& p, const std::string& path, FractionalPercent& out) {
  switch (p.denominator()) {
    case envoy::type::v3::FractionalPercent::HUNDRED:
      out.denominator = 100;
      break;
    case envoy::type::v3::FractionalPercent::TEN_THOUSAND:
      out.denominator = 10'000;
      break;
    case envoy::type::v3::FractionalPercent::MILLION:
      out.denominator = 1'000'000;
      break;
    default:
      return ctx.fail(path + ".denominator", "unknown denominator " + std::to_string(p.denominator()));
  }
  out.numerator = std::min(p.numerator(), out.denominator);
  return true;
}

bool runtime_fraction(Ctx& ctx, const core::RuntimeFractionalPercent& p, const std::string& path,
                      FractionalPercent& out) {
  // runtime_key names an override in Envoy's runtime, which the waypoint has none of: Envoy
  // then uses default_value, and so do we.
  return fraction(ctx, p.default_value(), path + ".default_value", out);
}

bool regex(Ctx& ctx, const matcher::RegexMatcher& m, const std::string& path, Regex& out) {
  auto r = Regex::compile(m.regex());
  if (!r) return ctx.fail(path + ".regex", "invalid regex: " + r.error());
  out = std::move(*r);
  return true;
}

bool string_matcher(Ctx& ctx, const matcher::StringMatcher& m, const std::string& path, StringMatcher& out) {
  out.ignore_case = m.ignore_case();
  switch (m.match_pattern_case()) {
    case matcher::StringMatcher::kExact:
      out.kind = StringMatcher::Kind::Exact;
      out.value = m.exact();
      break;
    case matcher::StringMatcher::kPrefix:
      out.kind = StringMatcher::Kind::Prefix;
      out.value = m.prefix();
      break;
    case matcher::StringMatcher::kSuffix:
      out.kind = StringMatcher::Kind::Suffix;
      out.value = m.suffix();
      break;
    case matcher::StringMatcher::kContains:
      out.kind = StringMatcher::Kind::Contains;
      out.value = m.contains();
      break;
    case matcher::StringMatcher::kSafeRegex:
      out.kind = StringMatcher::Kind::Regex;
      return regex(ctx, m.safe_regex(), path + ".safe_regex", out.regex);
    default:
      return ctx.fail(path, "no match pattern set");
  }
  if (out.ignore_case) out.value = lower(out.value);
  return true;
}

bool valid_header_name(std::string_view n) {
  if (n.empty() || n.size() > 256) return false;
  for (char c : n) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == ',' || c == ';' || c == '"') return false;
  }
  return true;
}

bool header_matcher(Ctx& ctx, const route::HeaderMatcher& h, const std::string& path, HeaderMatcher& out) {
  if (!valid_header_name(h.name())) return ctx.fail(path + ".name", "invalid header name '" + h.name() + "'");
  out.name = lower(h.name());
  out.invert_match = h.invert_match();
  out.treat_missing_header_as_empty = h.treat_missing_header_as_empty();
  StringMatcher sm;
  switch (h.header_match_specifier_case()) {
    case route::HeaderMatcher::kExactMatch:
      // Deprecated exact_match "" matches any present value in Envoy (see route_model.h).
      if (h.exact_match().empty()) {
        out.spec = PresentMatch{true};
        break;
      }
      sm.value = h.exact_match();
      out.spec = sm;
      break;
    case route::HeaderMatcher::kPrefixMatch:
      sm.kind = StringMatcher::Kind::Prefix, sm.value = h.prefix_match(), out.spec = sm;
      break;
    case route::HeaderMatcher::kSuffixMatch:
      sm.kind = StringMatcher::Kind::Suffix, sm.value = h.suffix_match(), out.spec = sm;
      break;
    case route::HeaderMatcher::kContainsMatch:
      sm.kind = StringMatcher::Kind::Contains, sm.value = h.contains_match(), out.spec = sm;
      break;
    case route::HeaderMatcher::kSafeRegexMatch:
      sm.kind = StringMatcher::Kind::Regex;
      if (!regex(ctx, h.safe_regex_match(), path + ".safe_regex_match", sm.regex)) return false;
      out.spec = sm;
      break;
    case route::HeaderMatcher::kStringMatch:
      if (!string_matcher(ctx, h.string_match(), path + ".string_match", sm)) return false;
      out.spec = sm;
      break;
    case route::HeaderMatcher::kRangeMatch:
      if (h.range_match().start() >= h.range_match().end())
        return ctx.fail(path + ".range_match", "start must be below end");
      out.spec = Int64Range{h.range_match().start(), h.range_match().end()};
      break;
    case route::HeaderMatcher::kPresentMatch:
      out.spec = PresentMatch{h.present_match()};
      break;
    default:
      // Envoy: no specifier = the header must be present.
      out.spec = PresentMatch{true};
      break;
  }
  return true;
}

// Header values: literal text only. Envoy expands %VAR% formatters in header values; the
// waypoint does not, so any single '%' that is not "%%" is refused rather than sent literally.
bool header_value(Ctx& ctx, const std::string& v, const std::string& path, std::string& out) {
  out.clear();
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%') {
      if (i + 1 < v.size() && v[i + 1] == '%') {
        out.push_back('%');
        ++i;
        continue;
      }
      return ctx.fail(path, "header value formatters (%...%) are not implemented; write a literal % as %%");
    }
    if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0') return ctx.fail(path, "header value contains CR, LF or NUL");
    out.push_back(v[i]);
  }
  return true;
}

bool header_adds(Ctx& ctx, const google::protobuf::RepeatedPtrField<core::HeaderValueOption>& in,
                 const std::string& path, std::vector<HeaderValueOption>& out) {
  for (int i = 0; i < in.size(); ++i) {
    const auto& o = in[i];
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (!valid_header_name(o.header().key())) return ctx.fail(p + ".header.key", "invalid header name");
    HeaderValueOption v;
    v.key = lower(o.header().key());
    if (v.key.front() == ':' || v.key == "host")
      return ctx.fail(p + ".header.key", "pseudo-headers and host cannot be mutated");
    const std::string& raw = o.header().raw_value().empty() ? o.header().value() : o.header().raw_value();
    if (!header_value(ctx, raw, p + ".header.value", v.value)) return false;
    if (o.has_append()) {
      // Deprecated `append`: true = append, false = overwrite; only meaningful with the default action.
      if (o.append_action() != core::HeaderValueOption::APPEND_IF_EXISTS_OR_ADD)
        return ctx.fail(p + ".append", "append and append_action are mutually exclusive");
      v.append_action = o.append().value() ? AppendAction::AppendIfExistsOrAdd : AppendAction::OverwriteIfExistsOrAdd;
    } else {
      switch (o.append_action()) {
        case core::HeaderValueOption::APPEND_IF_EXISTS_OR_ADD:
          v.append_action = AppendAction::AppendIfExistsOrAdd;
          break;
        case core::HeaderValueOption::ADD_IF_ABSENT:
          v.append_action = AppendAction::AddIfAbsent;
          break;
        case core::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD:
          v.append_action = AppendAction::OverwriteIfExistsOrAdd;
          break;
        case core::HeaderValueOption::OVERWRITE_IF_EXISTS:
          v.append_action = AppendAction::OverwriteIfExists;
          break;
        default:
          return ctx.fail(p + ".append_action", "unknown value " + std::to_string(o.append_action()));
      }
    }
    v.keep_empty_value = o.keep_empty_value();
    out.push_back(std::move(v));
  }
  return true;
}

bool header_removes(Ctx& ctx, const google::protobuf::RepeatedPtrField<std::string>& in, const std::string& path,
                    std::vector<std::string>& out) {
  for (int i = 0; i < in.size(); ++i) {
    if (!valid_header_name(in[i])) return ctx.fail(path + "[" + std::to_string(i) + "]", "invalid header name");
    std::string n = lower(in[i]);
    if (n.front() == ':' || n == "host")
      return ctx.fail(path + "[" + std::to_string(i) + "]", "pseudo-headers and host cannot be removed");
    out.push_back(std::move(n));
  }
  return true;
}

template <typename M>
bool mutations(Ctx& ctx, const M& m, const std::string& path, HeaderMutations& out) {
  return header_adds(ctx, m.request_headers_to_add(), path + ".request_headers_to_add", out.request_headers_to_add) &&
         header_removes(ctx, m.request_headers_to_remove(), path + ".request_headers_to_remove",
                        out.request_headers_to_remove) &&
         header_adds(ctx, m.response_headers_to_add(), path + ".response_headers_to_add",
                     out.response_headers_to_add) &&
         header_removes(ctx, m.response_headers_to_remove(), path + ".response_headers_to_remove",
                        out.response_headers_to_remove);
}

bool regex_rewrite(Ctx& ctx, const matcher::RegexMatchAndSubstitute& r, const std::string& path,
                   std::optional<RegexRewrite>& out) {
  RegexRewrite rw;
  if (!regex(ctx, r.pattern(), path + ".pattern", rw.pattern)) return false;
  auto s = rw.pattern.check_substitution(r.substitution());
  if (!s) return ctx.fail(path + ".substitution", s.error());
  rw.substitution = r.substitution();
  out = std::move(rw);
  return true;
}

bool retry_on(Ctx& ctx, const std::string& list, const std::string& path, uint32_t& bits) {
  bits = 0;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string tok = list.substr(start, end - start);
    tok.erase(0, tok.find_first_not_of(' '));
    if (auto e = tok.find_last_not_of(' '); e != std::string::npos) tok.erase(e + 1);
    start = end + 1;
    if (tok.empty()) continue;
    auto bit = router::retry_on_bit(tok);
    if (!bit) return ctx.fail(path, "unknown retry condition '" + tok + "'");
    bits |= *bit;
  }
  return true;
}

bool retry_policy(Ctx& ctx, const route::RetryPolicy& r, const std::string& path, RetryPolicy& out) {
  if (!retry_on(ctx, r.retry_on(), path + ".retry_on", out.retry_on)) return false;
  if (r.has_num_retries()) out.num_retries = r.num_retries().value();
  if (r.has_per_try_timeout() && !duration(ctx, r.per_try_timeout(), path + ".per_try_timeout", out.per_try_timeout))
    return false;
  for (int i = 0; i < r.retriable_status_codes_size(); ++i) {
    uint32_t c = r.retriable_status_codes(i);
    if (c < 100 || c > 599)
      return ctx.fail(path + ".retriable_status_codes[" + std::to_string(i) + "]", "not an HTTP status");
    out.retriable_status_codes.push_back(c);
  }
  for (int i = 0; i < r.retriable_headers_size(); ++i) {
    HeaderMatcher h;
    if (!header_matcher(ctx, r.retriable_headers(i), path + ".retriable_headers[" + std::to_string(i) + "]", h))
      return false;
    out.retriable_headers.push_back(std::move(h));
  }
  for (int i = 0; i < r.retriable_request_headers_size(); ++i) {
    HeaderMatcher h;
    if (!header_matcher(ctx, r.retriable_request_headers(i),
                        path + ".retriable_request_headers[" + std::to_string(i) + "]", h))
      return false;
    out.retriable_request_headers.push_back(std::move(h));
  }
  for (int i = 0; i < r.retry_host_predicate_size(); ++i) {
    const auto& p = r.retry_host_predicate(i);
    if (p.name() != "envoy.retry_host_predicates.previous_hosts")
      return ctx.fail(path + ".retry_host_predicate[" + std::to_string(i) + "]",
                      "retry host predicate '" + p.name() + "' is not implemented");
    out.previous_hosts_predicate = true;
  }
  if (r.has_retry_priority()) {
    if (r.retry_priority().name() != "envoy.retry_priorities.previous_priorities")
      return ctx.fail(path + ".retry_priority",
                      "retry priority '" + r.retry_priority().name() + "' is not implemented");
    out.previous_priorities = true;
  }
  if (r.host_selection_retry_max_attempts() < 0)
    return ctx.fail(path + ".host_selection_retry_max_attempts", "must not be negative");
  if (r.host_selection_retry_max_attempts() > 0)
    out.host_selection_retry_max_attempts = r.host_selection_retry_max_attempts();
  if (r.has_retry_back_off()) {
    const auto& b = r.retry_back_off();
    if (!b.has_base_interval()) return ctx.fail(path + ".retry_back_off.base_interval", "required");
    if (!duration(ctx, b.base_interval(), path + ".retry_back_off.base_interval", out.backoff_base)) return false;
    if (out.backoff_base.count() <= 0) return ctx.fail(path + ".retry_back_off.base_interval", "must be > 0");
    if (b.has_max_interval()) {
      if (!duration(ctx, b.max_interval(), path + ".retry_back_off.max_interval", out.backoff_max)) return false;
      if (out.backoff_max < out.backoff_base)
        return ctx.fail(path + ".retry_back_off.max_interval", "must be >= base_interval");
    }
  }
  return true;
}

bool mirror_policy(Ctx& ctx, const route::RouteAction::RequestMirrorPolicy& m, const std::string& path,
                   MirrorPolicy& out) {
  if (m.cluster().empty()) return ctx.fail(path + ".cluster", "required");
  out.cluster = m.cluster();
  if (m.has_runtime_fraction() &&
      !runtime_fraction(ctx, m.runtime_fraction(), path + ".runtime_fraction", out.fraction))
    return false;
  if (m.has_trace_sampled()) out.trace_sampled = m.trace_sampled().value();
  out.disable_shadow_host_suffix_append = m.disable_shadow_host_suffix_append();
  out.host_rewrite_literal = m.host_rewrite_literal();
  return true;
}

bool fault_policy(Ctx& ctx, const envoy::extensions::filters::http::fault::v3::HTTPFault& f, const std::string& path,
                  FaultPolicy& out) {
  if (!f.upstream_cluster().empty())
    return ctx.fail(path + ".upstream_cluster", "per-upstream-cluster faults are not implemented");
  if (f.has_delay()) {
    FaultDelay d;
    const auto& in = f.delay();
    if (in.has_fixed_delay()) {
      if (!duration(ctx, in.fixed_delay(), path + ".delay.fixed_delay", d.fixed_delay)) return false;
    } else if (in.has_header_delay()) {
      d.header_delay = true;
    } else {
      return ctx.fail(path + ".delay", "fixed_delay or header_delay required");
    }
    if (in.has_percentage() && !fraction(ctx, in.percentage(), path + ".delay.percentage", d.percentage)) return false;
    out.delay = d;
  }
  if (f.has_abort()) {
    FaultAbort a;
    const auto& in = f.abort();
    switch (in.error_type_case()) {
      case envoy::extensions::filters::http::fault::v3::FaultAbort::kHttpStatus:
        if (in.http_status() < 200 || in.http_status() > 599)
          return ctx.fail(path + ".abort.http_status", "must be in [200, 600)");
        a.kind = FaultAbort::Kind::Http, a.http_status = in.http_status();
        break;
      case envoy::extensions::filters::http::fault::v3::FaultAbort::kGrpcStatus:
        if (in.grpc_status() > 16) return ctx.fail(path + ".abort.grpc_status", "not a gRPC status code");
        a.kind = FaultAbort::Kind::Grpc, a.grpc_status = in.grpc_status();
        break;
      case envoy::extensions::filters::http::fault::v3::FaultAbort::kHeaderAbort:
        a.kind = FaultAbort::Kind::Header;
        break;
      default:
        return ctx.fail(path + ".abort", "http_status, grpc_status or header_abort required");
    }
    if (in.has_percentage() && !fraction(ctx, in.percentage(), path + ".abort.percentage", a.percentage)) return false;
    out.abort = a;
  }
  for (int i = 0; i < f.headers_size(); ++i) {
    HeaderMatcher h;
    if (!header_matcher(ctx, f.headers(i), path + ".headers[" + std::to_string(i) + "]", h)) return false;
    out.headers.push_back(std::move(h));
  }
  out.downstream_nodes.assign(f.downstream_nodes().begin(), f.downstream_nodes().end());
  if (f.has_max_active_faults()) out.max_active_faults = f.max_active_faults().value();
  return true;
}

bool cors_policy(Ctx& ctx, const envoy::extensions::filters::http::cors::v3::CorsPolicy& c, const std::string& path,
                 CorsPolicy& out) {
  for (int i = 0; i < c.allow_origin_string_match_size(); ++i) {
    StringMatcher m;
    if (!string_matcher(ctx, c.allow_origin_string_match(i),
                        path + ".allow_origin_string_match[" + std::to_string(i) + "]", m))
      return false;
    out.allow_origin.push_back(std::move(m));
  }
  out.allow_methods = c.allow_methods();
  out.allow_headers = c.allow_headers();
  out.expose_headers = c.expose_headers();
  out.max_age = c.max_age();
  if (c.has_allow_credentials()) out.allow_credentials = c.allow_credentials().value();
  if (c.has_allow_private_network_access()) out.allow_private_network_access = c.allow_private_network_access().value();
  if (c.has_filter_enabled() &&
      !runtime_fraction(ctx, c.filter_enabled(), path + ".filter_enabled", out.filter_enabled))
    return false;
  return true;
}

// convert.cc's shared conversions, for the rate limit converter (ratelimit_convert.h).
RateLimitHelpers rate_limit_helpers(Ctx& ctx) {
  RateLimitHelpers h;
  h.fail = [&ctx](const std::string& p, const std::string& m) { return ctx.fail(p, m); };
  h.header_matcher = [&ctx](const route::HeaderMatcher& m, const std::string& p, HeaderMatcher& o) {
    return header_matcher(ctx, m, p, o);
  };
  h.header_adds = [&ctx](const google::protobuf::RepeatedPtrField<core::HeaderValueOption>& in, const std::string& p,
                         std::vector<HeaderValueOption>& o) { return header_adds(ctx, in, p, o); };
  h.runtime_fraction = [&ctx](const core::RuntimeFractionalPercent& f, const std::string& p, FractionalPercent& o) {
    return runtime_fraction(ctx, f, p, o);
  };
  h.duration = [&ctx](const google::protobuf::Duration& d, const std::string& p, Duration& o) {
    return duration(ctx, d, p, o);
  };
  h.unsupported_field = [](const google::protobuf::Message& m, const std::string& p) {
    return find_unsupported_field(m, p);
  };
  return h;
}

// typed_per_filter_config: only the filters the waypoint runs; anything else is a NACK naming
// the filter. The payload is validated like a resource (unknown fields refused).
bool filter_configs(Ctx& ctx, const google::protobuf::Map<std::string, google::protobuf::Any>& in,
                    const std::string& path, FilterConfigs& out) {
  // Sorted for a deterministic first error.
  std::vector<std::string> keys;
  for (const auto& [k, v] : in) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  std::shared_ptr<authz::RbacFilters> rbac;
  for (const auto& key : keys) {
    const auto& any = in.at(key);
    const std::string p = path + "[" + key + "]";
    if (key == kFaultFilterName) {
      envoy::extensions::filters::http::fault::v3::HTTPFault f;
      if (!any.Is<envoy::extensions::filters::http::fault::v3::HTTPFault>() || !any.UnpackTo(&f))
        return ctx.fail(p, "expected envoy.extensions.filters.http.fault.v3.HTTPFault, got " + any.type_url());
      if (auto e = find_unsupported_field(f, p); !e.empty()) return ctx.fail(e, "rejected");
      FaultPolicy fp;
      if (!fault_policy(ctx, f, p, fp)) return false;
      out.fault = std::move(fp);
    } else if (key == kCorsFilterName) {
      envoy::extensions::filters::http::cors::v3::CorsPolicy c;
      if (!any.Is<envoy::extensions::filters::http::cors::v3::CorsPolicy>() || !any.UnpackTo(&c))
        return ctx.fail(p, "expected envoy.extensions.filters.http.cors.v3.CorsPolicy, got " + any.type_url());
      if (auto e = find_unsupported_field(c, p); !e.empty()) return ctx.fail(e, "rejected");
      CorsPolicy cp;
      if (!cors_policy(ctx, c, p, cp)) return false;
      out.cors = std::move(cp);
    } else if (key == kJwtAuthnFilterName) {
      auto j = convert_jwt_authn(any, p);
      if (!j) {
        if (ctx.err.empty()) ctx.err = j.error();
        return false;
      }
      out.jwt = std::move(*j);
    } else if (is_rbac_filter_key(key)) {
      if (!rbac) rbac = std::make_shared<authz::RbacFilters>();
      if (auto st = convert_rbac_per_route(key, any, p, *rbac); !st) {
        if (ctx.err.empty()) ctx.err = st.error();
        return false;
      }
    } else if (key == kExtAuthzFilterName) {
      auto e = convert_ext_authz(any, p);
      if (!e) {
        if (ctx.err.empty()) ctx.err = e.error();
        return false;
      }
      out.ext_authz = std::move(*e);
    } else if (key == kLocalRateLimitFilterName) {
      if (!convert_local_ratelimit(rate_limit_helpers(ctx), any, p, out.local_ratelimit)) return false;
    } else if (key == kRateLimitFilterName) {
      if (!convert_global_ratelimit(rate_limit_helpers(ctx), any, p, out.ratelimit)) return false;
    } else if (key == kTracingConfigKey) {
      return ctx.fail(p, "the tracing provider is read on a virtual host only");
    } else {
      return ctx.fail(p, "filter '" + key + "' is not implemented by the waypoint");
    }
  }
  if (rbac) out.rbac = std::move(rbac);
  return true;
}

bool route_match(Ctx& ctx, const route::RouteMatch& m, const std::string& path, RouteMatch& out) {
  out.case_sensitive = !m.has_case_sensitive() || m.case_sensitive().value();
  switch (m.path_specifier_case()) {
    case route::RouteMatch::kPrefix:
      out.path_kind = RouteMatch::PathKind::Prefix;
      out.path = m.prefix();
      break;
    case route::RouteMatch::kPath:
      out.path_kind = RouteMatch::PathKind::Path;
      out.path = m.path();
      break;
    case route::RouteMatch::kPathSeparatedPrefix:
      out.path_kind = RouteMatch::PathKind::PathSeparatedPrefix;
      out.path = m.path_separated_prefix();
      if (out.path.empty() || out.path.front() != '/' || (out.path.size() > 1 && out.path.back() == '/') ||
          out.path.find_first_of("?#") != std::string::npos)
        return ctx.fail(path + ".path_separated_prefix", "must start with '/', not end with '/', and have no ? or #");
      break;
    case route::RouteMatch::kSafeRegex:
      out.path_kind = RouteMatch::PathKind::Regex;
      if (!regex(ctx, m.safe_regex(), path + ".safe_regex", out.regex)) return false;
      break;
    default:
      return ctx.fail(path, "a path specifier (prefix, path, safe_regex, path_separated_prefix) is required");
  }
  if (!out.case_sensitive) out.path = lower(out.path);
  if (m.has_runtime_fraction()) {
    FractionalPercent f;
    if (!runtime_fraction(ctx, m.runtime_fraction(), path + ".runtime_fraction", f)) return false;
    out.runtime_fraction = f;
  }
  for (int i = 0; i < m.headers_size(); ++i) {
    HeaderMatcher h;
    if (!header_matcher(ctx, m.headers(i), path + ".headers[" + std::to_string(i) + "]", h)) return false;
    out.headers.push_back(std::move(h));
  }
  for (int i = 0; i < m.query_parameters_size(); ++i) {
    const auto& q = m.query_parameters(i);
    const std::string p = path + ".query_parameters[" + std::to_string(i) + "]";
    if (q.name().empty()) return ctx.fail(p + ".name", "required");
    QueryParameterMatcher qm;
    qm.name = q.name();
    if (q.has_string_match()) {
      StringMatcher sm;
      if (!string_matcher(ctx, q.string_match(), p + ".string_match", sm)) return false;
      qm.spec = std::move(sm);
    } else if (q.query_parameter_match_specifier_case() == route::QueryParameterMatcher::kPresentMatch &&
               !q.present_match()) {
      return ctx.fail(p + ".present_match", "present_match: false is not a valid matcher");
    }
    out.query_parameters.push_back(std::move(qm));
  }
  return true;
}

bool route_action(Ctx& ctx, const route::RouteAction& a, const std::string& path, RouteAction& out) {
  switch (a.cluster_specifier_case()) {
    case route::RouteAction::kCluster:
      if (a.cluster().empty()) return ctx.fail(path + ".cluster", "must not be empty");
      out.cluster = a.cluster();
      break;
    case route::RouteAction::kWeightedClusters: {
      const auto& w = a.weighted_clusters();
      const std::string wp = path + ".weighted_clusters";
      if (w.clusters_size() == 0) return ctx.fail(wp + ".clusters", "at least one cluster required");
      for (int i = 0; i < w.clusters_size(); ++i) {
        const auto& cw = w.clusters(i);
        const std::string p = wp + ".clusters[" + std::to_string(i) + "]";
        if (cw.name().empty()) return ctx.fail(p + ".name", "required");
        ClusterWeight out_cw;
        out_cw.name = cw.name();
        out_cw.weight = cw.has_weight() ? cw.weight().value() : 0;
        if (!mutations(ctx, cw, p, out_cw.headers)) return false;
        out_cw.host_rewrite_literal = cw.host_rewrite_literal();
        if (!filter_configs(ctx, cw.typed_per_filter_config(), p + ".typed_per_filter_config", out_cw.filters))
          return false;
        if (out_cw.filters.local_ratelimit || out_cw.filters.ratelimit)
          return ctx.fail(p + ".typed_per_filter_config", "rate limits per weighted cluster are not implemented");
        out.total_weight += out_cw.weight;
        out.weighted_clusters.push_back(std::move(out_cw));
      }
      if (out.total_weight == 0) return ctx.fail(wp, "the sum of weights must be > 0");
      if (out.total_weight > std::numeric_limits<uint32_t>::max()) return ctx.fail(wp, "the sum of weights overflows");
      if (w.has_total_weight() && w.total_weight().value() != out.total_weight)
        return ctx.fail(wp + ".total_weight", "does not equal the sum of the weights");
      out.weighted_random_header = lower(w.header_name());
      break;
    }
    default:
      return ctx.fail(path, "cluster or weighted_clusters required");
  }
  if (!convert_rate_limits(rate_limit_helpers(ctx), a.rate_limits(), path + ".rate_limits", out.rate_limits))
    return false;
  out.include_vh_rate_limits = a.has_include_vh_rate_limits() && a.include_vh_rate_limits().value();
  switch (a.cluster_not_found_response_code()) {
    case route::RouteAction::SERVICE_UNAVAILABLE:
      break;
    case route::RouteAction::NOT_FOUND:
      out.cluster_not_found_response_code = RouteAction::NotFoundCode::NotFound;
      break;
    case route::RouteAction::INTERNAL_SERVER_ERROR:
      out.cluster_not_found_response_code = RouteAction::NotFoundCode::InternalServerError;
      break;
    default:
      return ctx.fail(path + ".cluster_not_found_response_code", "unknown value");
  }
  out.prefix_rewrite = a.prefix_rewrite();
  if (a.has_regex_rewrite()) {
    if (!out.prefix_rewrite.empty())
      return ctx.fail(path + ".regex_rewrite", "prefix_rewrite and regex_rewrite are exclusive");
    if (!regex_rewrite(ctx, a.regex_rewrite(), path + ".regex_rewrite", out.regex_rewrite)) return false;
  }
  if (a.host_rewrite_specifier_case() == route::RouteAction::kHostRewriteLiteral)
    out.host_rewrite_literal = a.host_rewrite_literal();
  if (a.host_rewrite_specifier_case() == route::RouteAction::kAutoHostRewrite)
    out.auto_host_rewrite = a.auto_host_rewrite().value();
  out.append_x_forwarded_host = a.append_x_forwarded_host();
  if (a.has_timeout() && !duration(ctx, a.timeout(), path + ".timeout", out.timeout)) return false;
  if (a.has_idle_timeout()) {
    Duration d;
    if (!duration(ctx, a.idle_timeout(), path + ".idle_timeout", d)) return false;
    out.idle_timeout = d;
  }
  if (a.has_max_grpc_timeout()) {
    Duration d;
    if (!duration(ctx, a.max_grpc_timeout(), path + ".max_grpc_timeout", d)) return false;
    out.max_grpc_timeout = d;
  }
  if (a.has_grpc_timeout_offset()) {
    Duration d;
    if (!duration(ctx, a.grpc_timeout_offset(), path + ".grpc_timeout_offset", d)) return false;
    out.grpc_timeout_offset = d;
  }
  if (a.has_retry_policy()) {
    RetryPolicy r;
    if (!retry_policy(ctx, a.retry_policy(), path + ".retry_policy", r)) return false;
    out.retry_policy = std::move(r);
  }
  for (int i = 0; i < a.request_mirror_policies_size(); ++i) {
    MirrorPolicy m;
    if (!mirror_policy(ctx, a.request_mirror_policies(i), path + ".request_mirror_policies[" + std::to_string(i) + "]",
                       m))
      return false;
    out.mirror_policies.push_back(std::move(m));
  }
  for (int i = 0; i < a.hash_policy_size(); ++i) {
    const auto& h = a.hash_policy(i);
    const std::string p = path + ".hash_policy[" + std::to_string(i) + "]";
    HashPolicy hp;
    hp.terminal = h.terminal();
    switch (h.policy_specifier_case()) {
      case route::RouteAction::HashPolicy::kHeader:
        if (!valid_header_name(h.header().header_name()))
          return ctx.fail(p + ".header.header_name", "invalid header name");
        hp.kind = HashPolicy::Kind::Header, hp.name = lower(h.header().header_name());
        break;
      case route::RouteAction::HashPolicy::kCookie:
        if (h.cookie().name().empty()) return ctx.fail(p + ".cookie.name", "required");
        hp.kind = HashPolicy::Kind::Cookie, hp.name = h.cookie().name(), hp.cookie_path = h.cookie().path();
        if (h.cookie().has_ttl()) {
          Duration d;
          if (!duration(ctx, h.cookie().ttl(), p + ".cookie.ttl", d)) return false;
          hp.cookie_ttl = d;
        }
        break;
      case route::RouteAction::HashPolicy::kConnectionProperties:
        if (!h.connection_properties().source_ip())
          return ctx.fail(p + ".connection_properties.source_ip", "must be true");
        hp.kind = HashPolicy::Kind::SourceIp;
        break;
      case route::RouteAction::HashPolicy::kQueryParameter:
        if (h.query_parameter().name().empty()) return ctx.fail(p + ".query_parameter.name", "required");
        hp.kind = HashPolicy::Kind::QueryParameter, hp.name = h.query_parameter().name();
        break;
      default:
        return ctx.fail(p, "a hash policy kind is required");
    }
    out.hash_policy.push_back(std::move(hp));
  }
  for (int i = 0; i < a.upgrade_configs_size(); ++i) {
    const auto& u = a.upgrade_configs(i);
    if (u.upgrade_type().empty())
      return ctx.fail(path + ".upgrade_configs[" + std::to_string(i) + "].upgrade_type", "required");
    if (!u.has_enabled() || u.enabled().value()) out.upgrade_types.push_back(lower(u.upgrade_type()));
  }
  return true;
}

bool redirect_action(Ctx& ctx, const route::RedirectAction& r, const std::string& path, RedirectAction& out) {
  if (r.scheme_rewrite_specifier_case() == route::RedirectAction::kHttpsRedirect && r.https_redirect())
    out.scheme = "https";
  if (r.scheme_rewrite_specifier_case() == route::RedirectAction::kSchemeRedirect)
    out.scheme = lower(r.scheme_redirect());
  out.host = r.host_redirect();
  if (r.port_redirect() > 65535) return ctx.fail(path + ".port_redirect", "not a port");
  out.port = r.port_redirect();
  switch (r.path_rewrite_specifier_case()) {
    case route::RedirectAction::kPathRedirect:
      out.path_kind = RedirectAction::PathKind::Path;
      out.path = r.path_redirect();
      break;
    case route::RedirectAction::kPrefixRewrite:
      out.path_kind = RedirectAction::PathKind::PrefixRewrite;
      out.path = r.prefix_rewrite();
      break;
    case route::RedirectAction::kRegexRewrite:
      out.path_kind = RedirectAction::PathKind::RegexRewrite;
      if (!regex_rewrite(ctx, r.regex_rewrite(), path + ".regex_rewrite", out.regex_rewrite)) return false;
      break;
    default:
      break;
  }
  switch (r.response_code()) {
    case route::RedirectAction::MOVED_PERMANENTLY:
      out.response_code = 301;
      break;
    case route::RedirectAction::FOUND:
      out.response_code = 302;
      break;
    case route::RedirectAction::SEE_OTHER:
      out.response_code = 303;
      break;
    case route::RedirectAction::TEMPORARY_REDIRECT:
      out.response_code = 307;
      break;
    case route::RedirectAction::PERMANENT_REDIRECT:
      out.response_code = 308;
      break;
    default:
      return ctx.fail(path + ".response_code", "unknown value " + std::to_string(r.response_code()));
  }
  out.strip_query = r.strip_query();
  return true;
}

bool route_entry(Ctx& ctx, const route::Route& r, const std::string& path, Route& out) {
  out.name = r.name();
  out.stat_prefix = r.stat_prefix();
  if (!r.has_match()) return ctx.fail(path + ".match", "required");
  if (!route_match(ctx, r.match(), path + ".match", out.match)) return false;
  switch (r.action_case()) {
    case route::Route::kRoute: {
      RouteAction a;
      if (!route_action(ctx, r.route(), path + ".route", a)) return false;
      out.action = std::move(a);
      break;
    }
    case route::Route::kRedirect: {
      RedirectAction a;
      if (!redirect_action(ctx, r.redirect(), path + ".redirect", a)) return false;
      out.action = std::move(a);
      break;
    }
    case route::Route::kDirectResponse: {
      const auto& d = r.direct_response();
      if (d.status() < 200 || d.status() > 599)
        return ctx.fail(path + ".direct_response.status", "must be in [200, 600)");
      DirectResponseAction a;
      a.status = static_cast<uint16_t>(d.status());
      if (d.has_body()) {
        if (d.body().specifier_case() == core::DataSource::kInlineString)
          a.body = d.body().inline_string();
        else if (d.body().specifier_case() == core::DataSource::kInlineBytes)
          a.body = d.body().inline_bytes();
        else
          return ctx.fail(path + ".direct_response.body", "only inline_string or inline_bytes");
        if (a.body.size() > 4096)
          return ctx.fail(path + ".direct_response.body", "larger than max_direct_response_body_size_bytes (4096)");
      }
      out.action = std::move(a);
      break;
    }
    default:
      return ctx.fail(path, "an action (route, redirect, direct_response) is required");
  }
  if (!mutations(ctx, r, path, out.headers)) return false;
  if (r.has_tracing()) {
    auto t = convert_route_tracing(r.tracing(), path + ".tracing");
    if (!t) {
      if (ctx.err.empty()) ctx.err = t.error();
      return false;
    }
    out.tracing = std::move(*t);
  }
  return filter_configs(ctx, r.typed_per_filter_config(), path + ".typed_per_filter_config", out.filters);
}

bool virtual_host(Ctx& ctx, const route::VirtualHost& v, const std::string& path, VirtualHost& out) {
  if (v.name().empty()) return ctx.fail(path + ".name", "required");
  out.name = v.name();
  if (v.domains_size() == 0) return ctx.fail(path + ".domains", "at least one domain required");
  for (int i = 0; i < v.domains_size(); ++i) {
    const std::string d = lower(v.domains(i));
    if (d.empty()) return ctx.fail(path + ".domains[" + std::to_string(i) + "]", "must not be empty");
    if (d != "*" && d.find('*') != std::string::npos && d.front() != '*' && d.back() != '*')
      return ctx.fail(path + ".domains[" + std::to_string(i) + "]", "a wildcard must be a prefix or a suffix");
    out.domains.push_back(d);
  }
  if (v.require_tls() == route::VirtualHost::ALL) {
    out.require_tls = true;
  } else if (v.require_tls() != route::VirtualHost::NONE) {
    return ctx.fail(path + ".require_tls", "only NONE and ALL are implemented (EXTERNAL_ONLY is not)");
  }
  for (int i = 0; i < v.routes_size(); ++i) {
    Route r;
    if (!route_entry(ctx, v.routes(i), path + ".routes[" + std::to_string(i) + "]", r)) return false;
    out.routes.push_back(std::move(r));
  }
  if (!mutations(ctx, v, path, out.headers)) return false;
  if (v.has_retry_policy()) {
    RetryPolicy r;
    if (!retry_policy(ctx, v.retry_policy(), path + ".retry_policy", r)) return false;
    out.retry_policy = std::move(r);
  }
  for (int i = 0; i < v.request_mirror_policies_size(); ++i) {
    MirrorPolicy m;
    if (!mirror_policy(ctx, v.request_mirror_policies(i), path + ".request_mirror_policies[" + std::to_string(i) + "]",
                       m))
      return false;
    out.mirror_policies.push_back(std::move(m));
  }
  if (!convert_rate_limits(rate_limit_helpers(ctx), v.rate_limits(), path + ".rate_limits", out.rate_limits))
    return false;
  out.include_request_attempt_count = v.include_request_attempt_count();
  out.include_attempt_count_in_response = v.include_attempt_count_in_response();
  // The span starts before a route is chosen (the upstream must see its context), so the
  // routes of one host must agree on Route.tracing; the controlplane writes it per host.
  for (size_t i = 1; i < out.routes.size(); ++i) {
    const auto& a = out.routes[0].tracing;
    const auto& b = out.routes[i].tracing;
    if (static_cast<bool>(a) != static_cast<bool>(b) || (a && !(*a == *b)))
      return ctx.fail(path + ".routes[" + std::to_string(i) + "].tracing",
                      "differs from routes[0].tracing: tracing per route within one virtual host is not implemented");
  }
  if (!out.routes.empty()) out.tracing = out.routes[0].tracing;
  const std::string fpath = path + ".typed_per_filter_config";
  if (auto it = v.typed_per_filter_config().find(std::string(kTracingConfigKey));
      it != v.typed_per_filter_config().end()) {
    auto t = convert_tracing_provider(it->second, fpath + "[" + std::string(kTracingConfigKey) + "]");
    if (!t) {
      if (ctx.err.empty()) ctx.err = t.error();
      return false;
    }
    out.tracing_provider = std::move(*t);
    auto rest = v.typed_per_filter_config();
    rest.erase(std::string(kTracingConfigKey));
    return filter_configs(ctx, rest, fpath, out.filters);
  }
  return filter_configs(ctx, v.typed_per_filter_config(), fpath, out.filters);
}

// "10.0.0.1:8080" or "[fd00::1]:8080" (istiod's internal-address endpoint_id).
bool host_port(std::string_view s, std::string& host, uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view h = s.substr(0, colon), p = s.substr(colon + 1);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return false;
    h = h.substr(1, h.size() - 2);
  }
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || ptr != p.data() + p.size() || v == 0 || v > 65535) return false;
  host = std::string(h);
  port = static_cast<uint16_t>(v);
  return true;
}

bool endpoint_address(Ctx& ctx, const core::Address& a, const std::string& path, Endpoint& out) {
  switch (a.address_case()) {
    case core::Address::kSocketAddress: {
      const auto& s = a.socket_address();
      if (s.protocol() != core::SocketAddress::TCP) return ctx.fail(path + ".socket_address.protocol", "only TCP");
      if (s.address().empty()) return ctx.fail(path + ".socket_address.address", "required");
      if (s.port_value() == 0 || s.port_value() > 65535)
        return ctx.fail(path + ".socket_address.port_value", "not a port");
      out.address = s.address();
      out.port = static_cast<uint16_t>(s.port_value());
      return true;
    }
    case core::Address::kEnvoyInternalAddress: {
      // istiod's waypoint endpoints: connect_originate + endpoint_id "podIP:targetPort".
      const auto& i = a.envoy_internal_address();
      if (!host_port(i.endpoint_id(), out.address, out.port))
        return ctx.fail(path + ".envoy_internal_address.endpoint_id",
                        "expected podIP:port, got '" + i.endpoint_id() + "'");
      return true;
    }
    default:
      return ctx.fail(path, "socket_address or envoy_internal_address required");
  }
}

template <typename T>
common::Result<T> finish(Ctx& ctx, T value) {
  if (!ctx.err.empty()) return make_error(ctx.err);
  return value;
}

}  // namespace

common::Status convert_string_matcher(const matcher::StringMatcher& m, const std::string& path, StringMatcher& out) {
  Ctx ctx;
  if (!string_matcher(ctx, m, path, out)) return make_error(ctx.err);
  return common::ok_status();
}

common::Status convert_header_matcher(const route::HeaderMatcher& m, const std::string& path, HeaderMatcher& out) {
  Ctx ctx;
  if (!header_matcher(ctx, m, path, out)) return make_error(ctx.err);
  return common::ok_status();
}

common::Result<RouteConfig> convert_route_configuration(const route::RouteConfiguration& rc) {
  if (auto e = find_unsupported_field(rc, "route"); !e.empty()) return make_error(e);
  Ctx ctx;
  RouteConfig out;
  out.name = rc.name();
  if (out.name.empty()) return make_error("route.name: required");
  for (int i = 0; i < rc.virtual_hosts_size(); ++i) {
    VirtualHost v;
    if (!virtual_host(ctx, rc.virtual_hosts(i), "route.virtual_hosts[" + std::to_string(i) + "]", v)) break;
    out.virtual_hosts.push_back(std::move(v));
  }
  if (ctx.err.empty()) mutations(ctx, rc, "route", out.headers);
  out.most_specific_header_mutations_wins = rc.most_specific_header_mutations_wins();
  out.ignore_port_in_host_matching = rc.ignore_port_in_host_matching();
  return finish(ctx, std::move(out));
}

common::Result<ClusterLoadAssignment> convert_load_assignment(const endpoint::ClusterLoadAssignment& cla) {
  if (auto e = find_unsupported_field(cla, "endpoints"); !e.empty()) return make_error(e);
  Ctx ctx;
  ClusterLoadAssignment out;
  out.cluster_name = cla.cluster_name();
  if (out.cluster_name.empty()) return make_error("endpoints.cluster_name: required");
  if (cla.policy().has_overprovisioning_factor()) {
    if (cla.policy().overprovisioning_factor().value() == 0)
      return make_error("endpoints.policy.overprovisioning_factor: must be > 0");
    out.overprovisioning_factor = cla.policy().overprovisioning_factor().value();
  }
  for (int i = 0; i < cla.endpoints_size() && ctx.err.empty(); ++i) {
    const auto& l = cla.endpoints(i);
    const std::string lp = "endpoints.endpoints[" + std::to_string(i) + "]";
    for (int j = 0; j < l.lb_endpoints_size(); ++j) {
      const auto& e = l.lb_endpoints(j);
      const std::string p = lp + ".lb_endpoints[" + std::to_string(j) + "]";
      if (!e.has_endpoint()) {
        ctx.fail(p + ".endpoint", "required");
        break;
      }
      Endpoint ep;
      if (!endpoint_address(ctx, e.endpoint().address(), p + ".endpoint.address", ep)) break;
      ep.ip = ztunnel::parse_ip(ep.address);
      ep.hostname = e.endpoint().hostname();
      if (e.has_load_balancing_weight()) {
        if (e.load_balancing_weight().value() == 0) {
          ctx.fail(p + ".load_balancing_weight", "must be > 0");
          break;
        }
        ep.weight = e.load_balancing_weight().value();
      }
      switch (e.health_status()) {
        case core::UNKNOWN:
          ep.health = HealthStatus::Unknown;
          break;
        case core::HEALTHY:
          ep.health = HealthStatus::Healthy;
          break;
        case core::UNHEALTHY:
          ep.health = HealthStatus::Unhealthy;
          break;
        case core::DRAINING:
          ep.health = HealthStatus::Draining;
          break;
        case core::TIMEOUT:
          ep.health = HealthStatus::Timeout;
          break;
        case core::DEGRADED:
          ep.health = HealthStatus::Degraded;
          break;
        default:
          ctx.fail(p + ".health_status", "unknown value");
      }
      if (!ctx.err.empty()) break;
      ep.locality = {l.locality().region(), l.locality().zone(), l.locality().sub_zone()};
      ep.priority = l.priority();
      if (l.has_load_balancing_weight()) ep.locality_weight = l.load_balancing_weight().value();
      // Endpoint labels for subsets/telemetry travel in metadata filter_metadata["istio"].
      if (auto it = e.metadata().filter_metadata().find("istio"); it != e.metadata().filter_metadata().end()) {
        for (const auto& [k, v] : it->second.fields()) {
          if (v.kind_case() == google::protobuf::Value::kStringValue) ep.labels[k] = v.string_value();
        }
      }
      out.endpoints.push_back(std::move(ep));
    }
  }
  return finish(ctx, std::move(out));
}

namespace {
// DestinationRule fields added after the first converter: slow start (warmupDurationSecs),
// locality-weighted LB, upstream keepalive (accepted; the HBONE pool keeps its own keepalive).
bool cluster_policy_extras(Ctx& ctx, const cluster::Cluster& c, ClusterPolicy& p) {
  const cluster::Cluster::SlowStartConfig* slow = nullptr;
  std::string slow_path;
  if (c.has_round_robin_lb_config() && c.round_robin_lb_config().has_slow_start_config()) {
    slow = &c.round_robin_lb_config().slow_start_config();
    slow_path = "cluster.round_robin_lb_config.slow_start_config";
  } else if (c.has_least_request_lb_config() && c.least_request_lb_config().has_slow_start_config()) {
    slow = &c.least_request_lb_config().slow_start_config();
    slow_path = "cluster.least_request_lb_config.slow_start_config";
  }
  if (slow && slow->has_slow_start_window()) {
    Duration d;
    if (!duration(ctx, slow->slow_start_window(), slow_path + ".slow_start_window", d)) return false;
    p.slow_start_window = d;
  }
  p.locality_weighted_lb = c.common_lb_config().has_locality_weighted_lb_config();
  return true;
}
}  // namespace

common::Result<Cluster> convert_cluster(const cluster::Cluster& c) {
  if (auto e = find_unsupported_field(c, "cluster"); !e.empty()) return make_error(e);
  Ctx ctx;
  Cluster out;
  out.name = c.name();
  if (out.name.empty()) return make_error("cluster.name: required");
  switch (c.type()) {
    case cluster::Cluster::EDS:
      out.discovery = Cluster::Discovery::Eds;
      if (!c.has_eds_cluster_config()) break;  // eds_config defaults to ADS for our client
      if (c.eds_cluster_config().has_eds_config() &&
          c.eds_cluster_config().eds_config().config_source_specifier_case() ==
              core::ConfigSource::CONFIG_SOURCE_SPECIFIER_NOT_SET)
        return make_error("cluster.eds_cluster_config.eds_config: only ads or self config sources");
      out.eds_service_name = c.eds_cluster_config().service_name();
      break;
    case cluster::Cluster::STATIC:
      out.discovery = Cluster::Discovery::Static;
      if (!c.has_load_assignment()) return make_error("cluster.load_assignment: required for a STATIC cluster");
      break;
    default:
      return make_error("cluster.type: " + cluster::Cluster::DiscoveryType_Name(c.type()) +
                        " is not implemented (EDS or STATIC)");
  }
  if (c.has_load_assignment()) {
    auto la = convert_load_assignment(c.load_assignment());
    if (!la) return make_error("cluster.load_assignment: " + la.error());
    out.load_assignment = std::move(*la);
  }
  if (c.has_connect_timeout() && !duration(ctx, c.connect_timeout(), "cluster.connect_timeout", out.connect_timeout))
    return make_error(ctx.err);
  auto& p = out.policy;
  switch (c.lb_policy()) {
    case cluster::Cluster::ROUND_ROBIN:
      p.lb_policy = LbPolicy::RoundRobin;
      break;
    case cluster::Cluster::LEAST_REQUEST:
      p.lb_policy = LbPolicy::LeastRequest;
      break;
    case cluster::Cluster::RING_HASH:
      p.lb_policy = LbPolicy::RingHash;
      break;
    case cluster::Cluster::RANDOM:
      p.lb_policy = LbPolicy::Random;
      break;
    case cluster::Cluster::MAGLEV:
      p.lb_policy = LbPolicy::Maglev;
      break;
    default:
      return make_error("cluster.lb_policy: " + cluster::Cluster::LbPolicy_Name(c.lb_policy()) + " is not implemented");
  }
  if (c.has_least_request_lb_config() && c.least_request_lb_config().has_choice_count()) {
    if (c.least_request_lb_config().choice_count().value() < 2)
      return make_error("cluster.least_request_lb_config.choice_count: must be >= 2");
    p.least_request_choice_count = c.least_request_lb_config().choice_count().value();
  }
  if (c.has_ring_hash_lb_config() && c.ring_hash_lb_config().has_minimum_ring_size())
    p.ring_hash_minimum_ring_size = c.ring_hash_lb_config().minimum_ring_size().value();
  if (c.has_maglev_lb_config() && c.maglev_lb_config().has_table_size()) {
    p.maglev_table_size = c.maglev_lb_config().table_size().value();
    // Maglev's permutation needs a prime table size; Envoy caps it at 5000011.
    auto prime = [](uint64_t n) {
      if (n < 2) return false;
      for (uint64_t d = 2; d * d <= n; ++d) {
        if (n % d == 0) return false;
      }
      return true;
    };
    if (!prime(p.maglev_table_size) || p.maglev_table_size > 5000011)
      return make_error("cluster.maglev_lb_config.table_size: must be a prime <= 5000011");
  }
  if (c.common_lb_config().has_healthy_panic_threshold()) {
    double v = c.common_lb_config().healthy_panic_threshold().value();
    if (!(v >= 0 && v <= 100))
      return make_error("cluster.common_lb_config.healthy_panic_threshold: must be in [0, 100]");
    p.healthy_panic_threshold_percent = static_cast<uint32_t>(v);
  }
  for (int i = 0; i < c.circuit_breakers().thresholds_size(); ++i) {
    const auto& t = c.circuit_breakers().thresholds(i);
    if (t.priority() != core::DEFAULT) continue;  // HIGH applies to high-priority routes only; we have none
    if (t.has_max_connections()) p.circuit_breakers.max_connections = t.max_connections().value();
    if (t.has_max_pending_requests()) p.circuit_breakers.max_pending_requests = t.max_pending_requests().value();
    if (t.has_max_requests()) p.circuit_breakers.max_requests = t.max_requests().value();
    if (t.has_max_retries()) p.circuit_breakers.max_retries = t.max_retries().value();
  }
  if (c.has_outlier_detection()) {
    const auto& o = c.outlier_detection();
    if (o.has_enforcing_success_rate() && o.enforcing_success_rate().value() != 0)
      return make_error(
          "cluster.outlier_detection.enforcing_success_rate: success-rate ejection is not implemented (set 0)");
    OutlierDetection od;
    if (o.has_consecutive_5xx()) od.consecutive_5xx = o.consecutive_5xx().value();
    if (o.has_consecutive_gateway_failure()) od.consecutive_gateway_failure = o.consecutive_gateway_failure().value();
    if (o.has_enforcing_consecutive_5xx())
      od.enforcing_consecutive_5xx = std::min(100u, o.enforcing_consecutive_5xx().value());
    if (o.has_enforcing_consecutive_gateway_failure())
      od.enforcing_consecutive_gateway_failure = std::min(100u, o.enforcing_consecutive_gateway_failure().value());
    if (o.has_interval() && !duration(ctx, o.interval(), "cluster.outlier_detection.interval", od.interval))
      return make_error(ctx.err);
    if (o.has_base_ejection_time() &&
        !duration(ctx, o.base_ejection_time(), "cluster.outlier_detection.base_ejection_time", od.base_ejection_time))
      return make_error(ctx.err);
    if (o.has_max_ejection_percent()) od.max_ejection_percent = std::min(100u, o.max_ejection_percent().value());
    if (o.has_max_ejection_time() &&
        !duration(ctx, o.max_ejection_time(), "cluster.outlier_detection.max_ejection_time", od.max_ejection_time))
      return make_error(ctx.err);
    p.outlier_detection = od;
  }
  if (!cluster_policy_extras(ctx, c, p)) return make_error(ctx.err);
  if (c.has_transport_socket()) {
    // istiod's waypoint clusters carry internal_upstream (the HBONE hop is ours); TLS
    // origination inside the tunnel (DestinationRule SIMPLE/MUTUAL) is not implemented yet.
    const std::string& n = c.transport_socket().name();
    if (n != "envoy.transport_sockets.internal_upstream" && n != "internal_upstream")
      return make_error("cluster.transport_socket: '" + n + "' is not implemented");
  }
  for (const auto& [key, any] : c.typed_extension_protocol_options()) {
    if (key != kHttpProtocolOptionsKey)
      return make_error("cluster.typed_extension_protocol_options[" + key + "]: not implemented");
    envoy::extensions::upstreams::http::v3::HttpProtocolOptions o;
    if (!any.Is<envoy::extensions::upstreams::http::v3::HttpProtocolOptions>() || !any.UnpackTo(&o))
      return make_error("cluster.typed_extension_protocol_options[" + key + "]: wrong type " + any.type_url());
    const std::string path = "cluster.typed_extension_protocol_options[" + key + "]";
    if (auto e = find_unsupported_field(o, path); !e.empty()) return make_error(e);
    if (o.has_explicit_http_config()) {
      p.upstream_protocol =
          o.explicit_http_config().has_http2_protocol_options() ? UpstreamProtocol::Http2 : UpstreamProtocol::Http1;
    } else if (o.has_use_downstream_protocol_config()) {
      p.upstream_protocol = UpstreamProtocol::UseDownstream;
    }
    const auto& common = o.common_http_protocol_options();
    if (common.has_idle_timeout() &&
        !duration(ctx, common.idle_timeout(), path + ".common_http_protocol_options.idle_timeout", p.idle_timeout))
      return make_error(ctx.err);
    if (common.has_max_requests_per_connection())
      p.max_requests_per_connection = common.max_requests_per_connection().value();
    if (o.has_explicit_http_config() && o.explicit_http_config().has_http2_protocol_options() &&
        o.explicit_http_config().http2_protocol_options().has_max_concurrent_streams())
      p.max_concurrent_streams = o.explicit_http_config().http2_protocol_options().max_concurrent_streams().value();
  }
  // Network RBAC of a TCP cluster (the policies on a TCP port; controlplane/waypoint_authz.h):
  // metadata typed_filter_metadata "envoy.filters.network.rbac.{deny,allow,audit}", each an
  // RBACPerRoute as on virtual hosts. Other metadata keys are not ours and are left alone.
  for (const auto& [key, any] : c.metadata().typed_filter_metadata()) {
    static constexpr std::string_view kPrefix = "envoy.filters.network.rbac.";
    if (!std::string_view(key).starts_with(kPrefix)) continue;
    const std::string http_key = "envoy.filters.http.rbac." + key.substr(kPrefix.size());
    if (!is_rbac_filter_key(http_key) || http_key == kRbacCustomFilterName)
      return make_error("cluster.metadata.typed_filter_metadata[" + key + "]: expected .deny, .allow or .audit");
    auto filters = out.network_rbac ? std::make_shared<authz::RbacFilters>(*out.network_rbac)
                                    : std::make_shared<authz::RbacFilters>();
    if (auto st =
            convert_rbac_per_route(http_key, any, "cluster.metadata.typed_filter_metadata[" + key + "]", *filters);
        !st)
      return make_error(st.error());
    out.network_rbac = std::move(filters);
  }
  return out;
}

namespace {
template <typename M>
bool parse(M& m, std::string_view bytes) {
  return m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}
}  // namespace

common::Result<RouteConfig> parse_route_configuration(std::string_view resource_name, std::string_view bytes) {
  route::RouteConfiguration m;
  if (!parse(m, bytes)) return make_error("not a valid envoy.config.route.v3.RouteConfiguration");
  if (m.name() != resource_name) return make_error("route.name '" + m.name() + "' differs from the resource name");
  return convert_route_configuration(m);
}

common::Result<Cluster> parse_cluster(std::string_view resource_name, std::string_view bytes) {
  cluster::Cluster m;
  if (!parse(m, bytes)) return make_error("not a valid envoy.config.cluster.v3.Cluster");
  if (m.name() != resource_name) return make_error("cluster.name '" + m.name() + "' differs from the resource name");
  return convert_cluster(m);
}

common::Result<ClusterLoadAssignment> parse_load_assignment(std::string_view resource_name, std::string_view bytes) {
  endpoint::ClusterLoadAssignment m;
  if (!parse(m, bytes)) return make_error("not a valid envoy.config.endpoint.v3.ClusterLoadAssignment");
  if (m.cluster_name() != resource_name)
    return make_error("endpoints.cluster_name '" + m.cluster_name() + "' differs from the resource name");
  return convert_load_assignment(m);
}

}  // namespace waypoint::xds
