// libFuzzer target: the waypoint's route matching and the decisions that follow it. The input
// builds a route table (paths, regexes, header/query matchers, weighted clusters, rewrites,
// redirects, header mutations) and a request; the router must not crash and must keep its
// contract: the selected route is the FIRST one whose match holds, a weighted pick names a
// cluster with non-zero weight, rewrites and redirects produce well-formed values.
#include <fuzzer/FuzzedDataProvider.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "waypoint/route_model.h"
#include "waypoint/router/router.h"

using namespace waypoint;
using namespace waypoint::router;

namespace {

std::string small_string(FuzzedDataProvider& in) {
  return in.ConsumeRandomLengthString(32);
}

StringMatcher string_matcher(FuzzedDataProvider& in) {
  StringMatcher m;
  m.kind = static_cast<StringMatcher::Kind>(in.ConsumeIntegralInRange<int>(0, 4));
  m.ignore_case = in.ConsumeBool();
  std::string v = small_string(in);
  if (m.kind == StringMatcher::Kind::Regex) {
    auto r = Regex::compile(v);
    if (r.ok()) {
      m.regex = r.value();
    } else {
      m.kind = StringMatcher::Kind::Exact;  // the converter would NACK; keep fuzzing the rest
    }
  }
  if (m.ignore_case) {
    for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  m.value = std::move(v);
  return m;
}

HeaderMatcher header_matcher(FuzzedDataProvider& in) {
  static const char* kNames[] = {":method", ":authority", ":path", "host", "version", "x-user", "cookie"};
  HeaderMatcher h;
  h.name = in.ConsumeBool() ? kNames[in.ConsumeIntegralInRange<size_t>(0, 6)] : small_string(in);
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0:
      h.spec = string_matcher(in);
      break;
    case 1:
      h.spec = PresentMatch{in.ConsumeBool()};
      break;
    default:
      h.spec = Int64Range{in.ConsumeIntegral<int64_t>(), in.ConsumeIntegral<int64_t>()};
  }
  h.invert_match = in.ConsumeBool();
  h.treat_missing_header_as_empty = in.ConsumeBool();
  return h;
}

RouteMatch route_match(FuzzedDataProvider& in) {
  RouteMatch m;
  m.path_kind = static_cast<RouteMatch::PathKind>(in.ConsumeIntegralInRange<int>(0, 3));
  m.case_sensitive = in.ConsumeBool();
  std::string p = small_string(in);
  if (m.path_kind == RouteMatch::PathKind::Regex) {
    auto r = Regex::compile(p);
    if (r.ok()) {
      m.regex = r.value();
    } else {
      m.path_kind = RouteMatch::PathKind::Prefix;
    }
  }
  m.path = std::move(p);
  if (in.ConsumeBool()) m.runtime_fraction = FractionalPercent{in.ConsumeIntegralInRange<uint32_t>(0, 100), 100};
  for (int n = in.ConsumeIntegralInRange<int>(0, 3); n > 0; --n) m.headers.push_back(header_matcher(in));
  for (int n = in.ConsumeIntegralInRange<int>(0, 2); n > 0; --n) {
    QueryParameterMatcher q;
    q.name = small_string(in);
    if (in.ConsumeBool()) q.spec = string_matcher(in);
    m.query_parameters.push_back(std::move(q));
  }
  return m;
}

std::optional<RegexRewrite> regex_rewrite(FuzzedDataProvider& in) {
  auto r = Regex::compile(small_string(in));
  std::string sub = small_string(in);
  if (!r.ok() || !r->check_substitution(sub).ok()) return std::nullopt;
  return RegexRewrite{r.value(), std::move(sub)};
}

Route route(FuzzedDataProvider& in, int index) {
  Route r;
  r.name = "r" + std::to_string(index);
  r.match = route_match(in);
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: {
      RouteAction a;
      int n = in.ConsumeIntegralInRange<int>(0, 4);
      if (n == 0) a.cluster = "single";
      for (int i = 0; i < n; ++i) {
        ClusterWeight cw;
        cw.name = "w" + std::to_string(i);
        cw.weight = in.ConsumeIntegralInRange<uint32_t>(0, 1000);
        cw.host_rewrite_literal = in.ConsumeBool() ? small_string(in) : "";
        a.total_weight += cw.weight;
        a.weighted_clusters.push_back(std::move(cw));
      }
      if (in.ConsumeBool()) a.prefix_rewrite = small_string(in);
      if (in.ConsumeBool()) a.regex_rewrite = regex_rewrite(in);
      if (in.ConsumeBool()) a.host_rewrite_literal = small_string(in);
      a.append_x_forwarded_host = in.ConsumeBool();
      a.timeout = Duration{in.ConsumeIntegralInRange<int64_t>(0, 100000)};
      if (in.ConsumeBool()) a.max_grpc_timeout = Duration{in.ConsumeIntegralInRange<int64_t>(0, 100000)};
      if (in.ConsumeBool()) {
        RetryPolicy p;
        auto bits = parse_retry_on(small_string(in));
        p.retry_on = bits.ok() ? bits.value() : 0;
        p.num_retries = in.ConsumeIntegralInRange<uint32_t>(0, 5);
        p.per_try_timeout = Duration{in.ConsumeIntegralInRange<int64_t>(0, 100000)};
        a.retry_policy = p;
      }
      r.action = std::move(a);
      break;
    }
    case 1: {
      RedirectAction rd;
      rd.scheme = in.ConsumeBool() ? "https" : "";
      rd.host = in.ConsumeBool() ? small_string(in) : "";
      rd.port = in.ConsumeIntegralInRange<uint32_t>(0, 65535);
      rd.path_kind = static_cast<RedirectAction::PathKind>(in.ConsumeIntegralInRange<int>(0, 3));
      rd.path = small_string(in);
      if (rd.path_kind == RedirectAction::PathKind::RegexRewrite) {
        rd.regex_rewrite = regex_rewrite(in);
        if (!rd.regex_rewrite) rd.path_kind = RedirectAction::PathKind::Keep;
      }
      rd.strip_query = in.ConsumeBool();
      r.action = std::move(rd);
      break;
    }
    default:
      r.action = DirectResponseAction{in.ConsumeIntegralInRange<uint16_t>(200, 599), small_string(in)};
  }
  for (int n = in.ConsumeIntegralInRange<int>(0, 2); n > 0; --n) {
    HeaderValueOption o;
    o.key = small_string(in);
    o.value = small_string(in);
    o.append_action = static_cast<AppendAction>(in.ConsumeIntegralInRange<int>(0, 3));
    r.headers.request_headers_to_add.push_back(std::move(o));
  }
  if (in.ConsumeBool()) r.headers.request_headers_to_remove.push_back(small_string(in));
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  RouteConfig rc;
  rc.ignore_port_in_host_matching = in.ConsumeBool();
  rc.most_specific_header_mutations_wins = in.ConsumeBool();
  VirtualHost vh;
  vh.domains.push_back(in.ConsumeBool() ? "*" : small_string(in));
  const int routes = in.ConsumeIntegralInRange<int>(0, 6);
  for (int i = 0; i < routes; ++i) vh.routes.push_back(route(in, i));
  rc.virtual_hosts.push_back(std::move(vh));

  HttpRequest req;
  req.method = in.ConsumeBool() ? "GET" : small_string(in);
  req.scheme = "http";
  req.authority = small_string(in);
  req.path = in.ConsumeRandomLengthString(128);
  for (int n = in.ConsumeIntegralInRange<int>(0, 6); n > 0; --n) req.headers.add(small_string(in), small_string(in));
  const uint64_t random_value = in.ConsumeIntegral<uint64_t>();

  RouteSelection sel = select(rc, req, random_value);
  if (!sel.vhost || !sel.route) return 0;
  // First match wins: the selected route matches and no earlier one does.
  if (!route_matches(sel.route->match, req, random_value)) std::abort();
  for (const Route* r = sel.vhost->routes.data(); r != sel.route; ++r) {
    if (route_matches(r->match, req, random_value)) std::abort();
  }

  if (const auto* a = std::get_if<RouteAction>(&sel.route->action)) {
    ClusterChoice c = choose_cluster(*a, req, random_value);
    if (c.weighted && c.weighted->weight == 0) std::abort();
    if (!a->weighted_clusters.empty() && a->total_weight > 0 && !c.weighted) std::abort();
    HttpRequest rewritten = req;
    apply_rewrites(sel.route->match, *a, c.weighted, rewritten);
    apply_request_headers(rc, *sel.vhost, *sel.route, c.weighted, rewritten.headers);
    Timeouts t = compute_timeouts(*a, effective_retry_policy(*sel.vhost, *a), req, in.ConsumeBool());
    if (t.global.count() != 0 && t.per_try >= t.global) std::abort();
  } else if (const auto* rd = std::get_if<RedirectAction>(&sel.route->action)) {
    LocalResponse resp = build_redirect(*rd, sel.route->match, req);
    auto loc = resp.headers.get("location");
    if (!loc || loc->find("://") == std::string_view::npos) std::abort();
  } else if (const auto* d = std::get_if<DirectResponseAction>(&sel.route->action)) {
    if (build_direct_response(*d).status != d->status) std::abort();
  }
  return 0;
}
