#include "controlplane/waypoint_loader.h"

#include <re2/re2.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace controlplane {

using yaml::fail;
using yaml::index;
using yaml::join;
using yaml::Reader;

uint64_t parse_duration_ms(const std::string& text, const std::string& path) {
  if (text.empty() || text.size() > 64) fail(path, "invalid duration '" + text + "'");
  double total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (start == i) fail(path, "invalid duration '" + text + "' (expected e.g. 2s, 500ms, 1h30m)");
    const double v = std::strtod(text.substr(start, i - start).c_str(), nullptr);
    size_t u = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.') ++i;
    const std::string unit = text.substr(u, i - u);
    double scale = 0;
    if (unit == "h")
      scale = 3'600'000;
    else if (unit == "m")
      scale = 60'000;
    else if (unit == "s")
      scale = 1000;
    else if (unit == "ms")
      scale = 1;
    else if (unit == "us" || unit == "\xc2\xb5s")
      scale = 0.001;
    else if (unit == "ns")
      scale = 0.000001;
    else
      fail(path, "invalid duration '" + text + "' (unit '" + unit + "')");
    total_ms += v * scale;
  }
  if (!(total_ms >= 0) || total_ms > 1e13) fail(path, "duration out of range '" + text + "'");
  return static_cast<uint64_t>(std::ceil(total_ms));
}

namespace {

// Regexes are checked here with the waypoint's engine (RE2, as Envoy's safe_regex): an invalid
// one would make the waypoint NACK the whole RouteConfiguration and keep stale routes, so the
// object is refused at the source instead, naming the field.
const std::string& checked_regex(const std::string& value, const std::string& path) {
  RE2 re(value, RE2::Quiet);
  if (!re.ok()) fail(path, "invalid regex (RE2): " + re.error());
  return value;
}

double percent(Reader& r, const YAML::Node& n, const std::string& path) {
  // istio Percent {value: double}
  r.expect_strict_map(n, path, {"value"});
  if (!Reader::present(n, "value")) return 0;
  const std::string s = r.str(Reader::child(n, "value"), join(path, "value"));
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v >= 0 && v <= 100)) fail(join(path, "value"), "expected a number in [0, 100]");
  return v;
}

VsStringMatch string_match(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path, {"exact", "prefix", "regex"});
  if (n.size() != 1) fail(path, "exactly one of exact, prefix, regex");
  VsStringMatch m;
  if (Reader::present(n, "exact")) {
    m.kind = VsStringMatch::Kind::Exact, m.value = r.str(Reader::child(n, "exact"), join(path, "exact"));
  } else if (Reader::present(n, "prefix")) {
    m.kind = VsStringMatch::Kind::Prefix, m.value = r.str(Reader::child(n, "prefix"), join(path, "prefix"));
  } else if (Reader::present(n, "regex")) {
    m.kind = VsStringMatch::Kind::Regex,
    m.value = checked_regex(r.str(Reader::child(n, "regex"), join(path, "regex")), join(path, "regex"));
  } else {
    fail(path, "exactly one of exact, prefix, regex");
  }
  return m;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// headers / withoutHeaders / queryParams: name -> StringMatch; an empty StringMatch (or
// regex "*") means presence, as istiod translates it.
std::vector<std::pair<std::string, std::optional<VsStringMatch>>> match_map(Reader& r, const YAML::Node& n,
                                                                            const std::string& path, bool lower_keys) {
  r.expect_map(n, path);
  std::vector<std::pair<std::string, std::optional<VsStringMatch>>> out;
  for (const auto& kv : n) {
    std::string key = r.str(kv.first, path);
    const std::string kp = path + "[" + key + "]";
    if (key.empty()) fail(kp, "empty name");
    std::optional<VsStringMatch> m;
    if (!kv.second.IsNull() && !(kv.second.IsMap() && kv.second.size() == 0)) {
      m = string_match(r, kv.second, kp);
      if (m->kind == VsStringMatch::Kind::Regex && m->value == "*") m.reset();
    }
    out.emplace_back(lower_keys ? lower(key) : key, std::move(m));
  }
  return out;
}

VsHeaderOps header_ops(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path, {"set", "add", "remove"});
  VsHeaderOps ops;
  for (const char* key : {"set", "add"}) {
    if (!Reader::present(n, key)) continue;
    auto m = r.string_map(Reader::child(n, key), join(path, key));
    auto& dst = std::string_view(key) == "set" ? ops.set : ops.add;
    for (auto& [k, v] : m) dst.emplace_back(lower(k), v);
  }
  if (Reader::present(n, "remove")) {
    for (auto& h : r.str_list(Reader::child(n, "remove"), join(path, "remove"))) ops.remove.push_back(lower(h));
  }
  return ops;
}

VsHeaders headers(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path, {"request", "response"});
  VsHeaders h;
  if (Reader::present(n, "request")) h.request = header_ops(r, Reader::child(n, "request"), join(path, "request"));
  if (Reader::present(n, "response")) h.response = header_ops(r, Reader::child(n, "response"), join(path, "response"));
  return h;
}

VsDestination destination(Reader& r, const YAML::Node& n, const std::string& path) {
  // Destination {host, subset, port{number}}
  r.expect_strict_map(n, path, {"host", "subset", "port"});
  VsDestination d;
  d.path = path;
  d.host = r.str(Reader::child(n, "host"), join(path, "host"));
  if (d.host.empty()) fail(join(path, "host"), "missing required field");
  r.opt_str(n, path, "subset", d.subset);
  if (Reader::present(n, "port")) {
    const YAML::Node p = Reader::child(n, "port");
    r.expect_strict_map(p, join(path, "port"), {"number"});
    d.port = r.port(Reader::child(p, "number"), join(join(path, "port"), "number"));
  }
  return d;
}

VsMatch match_request(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path,
                      {"name", "uri", "scheme", "method", "authority", "headers", "port", "sourceLabels", "gateways",
                       "queryParams", "ignoreUriCase", "withoutHeaders", "sourceNamespace", "statPrefix"});
  VsMatch m;
  r.opt_str(n, path, "name", m.name);
  auto sm = [&](const char* key, std::optional<VsStringMatch>& out) {
    if (Reader::present(n, key)) out = string_match(r, Reader::child(n, key), join(path, key));
  };
  sm("uri", m.uri);
  sm("scheme", m.scheme);
  sm("method", m.method);
  sm("authority", m.authority);
  if (Reader::present(n, "headers")) m.headers = match_map(r, Reader::child(n, "headers"), join(path, "headers"), true);
  if (Reader::present(n, "withoutHeaders"))
    m.without_headers = match_map(r, Reader::child(n, "withoutHeaders"), join(path, "withoutHeaders"), true);
  if (Reader::present(n, "queryParams"))
    m.query_params = match_map(r, Reader::child(n, "queryParams"), join(path, "queryParams"), false);
  if (Reader::present(n, "ignoreUriCase"))
    m.ignore_uri_case = r.boolean(Reader::child(n, "ignoreUriCase"), join(path, "ignoreUriCase"));
  if (Reader::present(n, "port")) m.port = r.port(Reader::child(n, "port"), join(path, "port"));
  if (Reader::present(n, "sourceLabels")) {
    r.string_map(Reader::child(n, "sourceLabels"), join(path, "sourceLabels"));
    m.source_labels = true;
  }
  r.opt_str(n, path, "sourceNamespace", m.source_namespace);
  if (Reader::present(n, "gateways")) m.gateways = r.str_list(Reader::child(n, "gateways"), join(path, "gateways"));
  return m;
}

VsRule http_route(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(
      n, path,
      {"name", "match", "route", "redirect", "directResponse", "delegate", "rewrite", "timeout", "retries", "fault",
       "mirror", "mirrorPercentage", "mirrorPercent", "mirrors", "corsPolicy", "headers"});
  VsRule rule;
  rule.path = path;
  r.opt_str(n, path, "name", rule.name);
  if (Reader::present(n, "delegate")) fail(join(path, "delegate"), "delegate VirtualServices are not supported yet");
  r.read_list(n, path, "match",
              [&](const YAML::Node& m, const std::string& p) { rule.match.push_back(match_request(r, m, p)); });
  r.read_list(n, path, "route", [&](const YAML::Node& d, const std::string& p) {
    r.expect_strict_map(d, p, {"destination", "weight", "headers"});
    if (!Reader::present(d, "destination")) fail(join(p, "destination"), "missing required field");
    VsDestination dst = destination(r, Reader::child(d, "destination"), join(p, "destination"));
    if (Reader::present(d, "weight")) {
      dst.weight = static_cast<uint32_t>(r.integer(Reader::child(d, "weight"), join(p, "weight"), 0, 100000));
      dst.weight_set = true;
    }
    if (Reader::present(d, "headers")) dst.headers = headers(r, Reader::child(d, "headers"), join(p, "headers"));
    rule.route.push_back(std::move(dst));
  });
  if (Reader::present(n, "redirect")) {
    const std::string p = join(path, "redirect");
    const YAML::Node rd = Reader::child(n, "redirect");
    r.expect_strict_map(rd, p, {"uri", "authority", "port", "derivePort", "scheme", "redirectCode"});
    VsRedirect red;
    r.opt_str(rd, p, "uri", red.uri);
    r.opt_str(rd, p, "authority", red.authority);
    r.opt_str(rd, p, "scheme", red.scheme);
    if (Reader::present(rd, "port")) red.port = r.port(Reader::child(rd, "port"), join(p, "port"));
    if (Reader::present(rd, "derivePort")) {
      const std::string v = r.str(Reader::child(rd, "derivePort"), join(p, "derivePort"));
      if (v != "FROM_PROTOCOL_DEFAULT" && v != "FROM_REQUEST_PORT")
        fail(join(p, "derivePort"), "unknown value '" + v + "'");
      red.derive_port = v == "FROM_PROTOCOL_DEFAULT";
    }
    if (Reader::present(rd, "redirectCode")) {
      red.code = static_cast<uint32_t>(r.integer(Reader::child(rd, "redirectCode"), join(p, "redirectCode"), 300, 399));
      if (red.code != 301 && red.code != 302 && red.code != 303 && red.code != 307 && red.code != 308)
        fail(join(p, "redirectCode"), "must be 301, 302, 303, 307 or 308");
    }
    rule.redirect = red;
  }
  if (Reader::present(n, "directResponse")) {
    const std::string p = join(path, "directResponse");
    const YAML::Node d = Reader::child(n, "directResponse");
    r.expect_strict_map(d, p, {"status", "body"});
    const uint32_t status = static_cast<uint32_t>(r.integer(Reader::child(d, "status"), join(p, "status"), 200, 599));
    std::string body;
    if (Reader::present(d, "body")) {
      const YAML::Node b = Reader::child(d, "body");
      r.expect_strict_map(b, join(p, "body"), {"string", "bytes"});
      if (Reader::present(b, "string")) body = r.str(Reader::child(b, "string"), join(join(p, "body"), "string"));
      if (Reader::present(b, "bytes"))
        fail(join(join(p, "body"), "bytes"), "base64 bodies are not supported yet; use string");
    }
    rule.direct_response = std::make_pair(status, body);
  }
  if (Reader::present(n, "rewrite")) {
    const std::string p = join(path, "rewrite");
    const YAML::Node rw = Reader::child(n, "rewrite");
    r.expect_strict_map(rw, p, {"uri", "authority", "uriRegexRewrite"});
    VsRewrite out;
    r.opt_str(rw, p, "uri", out.uri);
    r.opt_str(rw, p, "authority", out.authority);
    if (Reader::present(rw, "uriRegexRewrite")) {
      const YAML::Node x = Reader::child(rw, "uriRegexRewrite");
      const std::string xp = join(p, "uriRegexRewrite");
      r.expect_strict_map(x, xp, {"match", "rewrite"});
      out.uri_regex =
          std::make_pair(checked_regex(r.str(Reader::child(x, "match"), join(xp, "match")), join(xp, "match")),
                         r.str(Reader::child(x, "rewrite"), join(xp, "rewrite")));
      if (!out.uri.empty()) fail(xp, "uri and uriRegexRewrite are exclusive");
    }
    rule.rewrite = out;
  }
  if (Reader::present(n, "timeout"))
    rule.timeout_ms =
        parse_duration_ms(r.str(Reader::child(n, "timeout"), join(path, "timeout")), join(path, "timeout"));
  if (Reader::present(n, "retries")) {
    const std::string p = join(path, "retries");
    const YAML::Node rt = Reader::child(n, "retries");
    r.expect_strict_map(
        rt, p,
        {"attempts", "perTryTimeout", "retryOn", "retryRemoteLocalities", "retryIgnorePreviousHosts", "backoff"});
    VsRetry retry;
    if (Reader::present(rt, "attempts"))
      retry.attempts = static_cast<int32_t>(r.integer(Reader::child(rt, "attempts"), join(p, "attempts"), 0, 1000));
    if (Reader::present(rt, "perTryTimeout"))
      retry.per_try_timeout_ms = parse_duration_ms(r.str(Reader::child(rt, "perTryTimeout"), join(p, "perTryTimeout")),
                                                   join(p, "perTryTimeout"));
    r.opt_str(rt, p, "retryOn", retry.retry_on);
    if (Reader::present(rt, "retryRemoteLocalities"))
      retry.retry_remote_localities =
          r.boolean(Reader::child(rt, "retryRemoteLocalities"), join(p, "retryRemoteLocalities"));
    if (Reader::present(rt, "backoff"))
      retry.backoff_ms = parse_duration_ms(r.str(Reader::child(rt, "backoff"), join(p, "backoff")), join(p, "backoff"));
    rule.retries = retry;
  }
  if (Reader::present(n, "fault")) {
    const std::string p = join(path, "fault");
    const YAML::Node f = Reader::child(n, "fault");
    r.expect_strict_map(f, p, {"delay", "abort"});
    VsFault fault;
    if (Reader::present(f, "delay")) {
      const std::string dp = join(p, "delay");
      const YAML::Node d = Reader::child(f, "delay");
      r.expect_strict_map(d, dp, {"fixedDelay", "exponentialDelay", "percentage", "percent"});
      if (Reader::present(d, "exponentialDelay")) fail(join(dp, "exponentialDelay"), "not supported (as in Istio)");
      if (!Reader::present(d, "fixedDelay")) fail(join(dp, "fixedDelay"), "missing required field");
      fault.delay_ms =
          parse_duration_ms(r.str(Reader::child(d, "fixedDelay"), join(dp, "fixedDelay")), join(dp, "fixedDelay"));
      if (Reader::present(d, "percentage"))
        fault.delay_percent = percent(r, Reader::child(d, "percentage"), join(dp, "percentage"));
      if (Reader::present(d, "percent"))
        fault.delay_percent = static_cast<double>(r.integer(Reader::child(d, "percent"), join(dp, "percent"), 0, 100));
    }
    if (Reader::present(f, "abort")) {
      const std::string ap = join(p, "abort");
      const YAML::Node a = Reader::child(f, "abort");
      r.expect_strict_map(a, ap, {"httpStatus", "grpcStatus", "http2Error", "percentage"});
      if (Reader::present(a, "http2Error")) fail(join(ap, "http2Error"), "not supported (as in Istio)");
      if (Reader::present(a, "httpStatus"))
        fault.abort_http =
            static_cast<uint32_t>(r.integer(Reader::child(a, "httpStatus"), join(ap, "httpStatus"), 200, 599));
      if (Reader::present(a, "grpcStatus")) {
        static const char* kCodes[] = {
            "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
            "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
            "DATA_LOSS", "UNAUTHENTICATED"};
        const std::string g = r.str(Reader::child(a, "grpcStatus"), join(ap, "grpcStatus"));
        for (uint32_t i = 0; i < 17; ++i) {
          if (g == kCodes[i]) fault.abort_grpc = i;
        }
        if (!fault.abort_grpc) fail(join(ap, "grpcStatus"), "unknown gRPC status '" + g + "'");
      }
      if (!fault.abort_http && !fault.abort_grpc) fail(ap, "httpStatus or grpcStatus required");
      if (Reader::present(a, "percentage"))
        fault.abort_percent = percent(r, Reader::child(a, "percentage"), join(ap, "percentage"));
    }
    rule.fault = fault;
  }
  if (Reader::present(n, "mirror")) {
    VsMirror m;
    m.destination = destination(r, Reader::child(n, "mirror"), join(path, "mirror"));
    if (Reader::present(n, "mirrorPercentage"))
      m.percent = percent(r, Reader::child(n, "mirrorPercentage"), join(path, "mirrorPercentage"));
    else if (Reader::present(n, "mirrorPercent"))
      m.percent =
          static_cast<double>(r.integer(Reader::child(n, "mirrorPercent"), join(path, "mirrorPercent"), 0, 100));
    rule.mirrors.push_back(std::move(m));
  }
  r.read_list(n, path, "mirrors", [&](const YAML::Node& mn, const std::string& p) {
    r.expect_strict_map(mn, p, {"destination", "percentage"});
    VsMirror m;
    m.destination = destination(r, Reader::child(mn, "destination"), join(p, "destination"));
    if (Reader::present(mn, "percentage"))
      m.percent = percent(r, Reader::child(mn, "percentage"), join(p, "percentage"));
    rule.mirrors.push_back(std::move(m));
  });
  if (Reader::present(n, "corsPolicy")) {
    const std::string p = join(path, "corsPolicy");
    const YAML::Node c = Reader::child(n, "corsPolicy");
    r.expect_strict_map(c, p,
                        {"allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "maxAge", "allowCredentials",
                         "unmatchedPreflights"});
    VsCors cors;
    r.read_list(c, p, "allowOrigins", [&](const YAML::Node& o, const std::string& op) {
      cors.allow_origins.push_back(string_match(r, o, op));
    });
    if (Reader::present(c, "allowMethods"))
      cors.allow_methods = r.str_list(Reader::child(c, "allowMethods"), join(p, "allowMethods"));
    if (Reader::present(c, "allowHeaders"))
      cors.allow_headers = r.str_list(Reader::child(c, "allowHeaders"), join(p, "allowHeaders"));
    if (Reader::present(c, "exposeHeaders"))
      cors.expose_headers = r.str_list(Reader::child(c, "exposeHeaders"), join(p, "exposeHeaders"));
    if (Reader::present(c, "maxAge"))
      cors.max_age_s =
          parse_duration_ms(r.str(Reader::child(c, "maxAge"), join(p, "maxAge")), join(p, "maxAge")) / 1000;
    if (Reader::present(c, "allowCredentials"))
      cors.allow_credentials = r.boolean(Reader::child(c, "allowCredentials"), join(p, "allowCredentials"));
    if (Reader::present(c, "unmatchedPreflights")) {
      const std::string v = r.str(Reader::child(c, "unmatchedPreflights"), join(p, "unmatchedPreflights"));
      if (v != "FORWARD" && v != "UNSPECIFIED") fail(join(p, "unmatchedPreflights"), "only FORWARD is supported");
    }
    rule.cors = cors;
  }
  if (Reader::present(n, "headers")) rule.headers = headers(r, Reader::child(n, "headers"), join(path, "headers"));
  const int actions = !rule.route.empty() + rule.redirect.has_value() + rule.direct_response.has_value();
  if (actions != 1) fail(path, "exactly one of route, redirect, directResponse is required");
  return rule;
}

}  // namespace

VirtualServiceObject read_virtual_service(Reader& r, const YAML::Node& doc, const ObjectMeta& meta) {
  VirtualServiceObject vs;
  vs.name = meta.name;
  vs.ns = meta.ns;
  if (!Reader::present(doc, "spec")) fail("spec", "missing required field");
  const YAML::Node spec = Reader::child(doc, "spec");
  r.expect_strict_map(spec, "spec", {"hosts", "gateways", "http", "tcp", "tls", "exportTo"});
  if (Reader::present(spec, "hosts")) vs.hosts = r.str_list(Reader::child(spec, "hosts"), "spec.hosts");
  if (vs.hosts.empty()) fail("spec.hosts", "at least one host is required");
  if (Reader::present(spec, "gateways")) vs.gateways = r.str_list(Reader::child(spec, "gateways"), "spec.gateways");
  if (Reader::present(spec, "exportTo")) vs.export_to = r.str_list(Reader::child(spec, "exportTo"), "spec.exportTo");
  if (Reader::present(spec, "tcp")) fail("spec.tcp", "tcp routes are not compiled for waypoints yet");
  if (Reader::present(spec, "tls")) fail("spec.tls", "tls routes are not compiled for waypoints yet");
  r.read_list(spec, "spec", "http",
              [&](const YAML::Node& h, const std::string& p) { vs.http.push_back(http_route(r, h, p)); });
  return vs;
}

DestinationRuleObject read_destination_rule(Reader& r, const YAML::Node& doc, const ObjectMeta& meta) {
  DestinationRuleObject dr;
  dr.name = meta.name;
  dr.ns = meta.ns;
  if (!Reader::present(doc, "spec")) fail("spec", "missing required field");
  const YAML::Node spec = Reader::child(doc, "spec");
  r.expect_strict_map(spec, "spec", {"host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"});
  r.opt_str(spec, "spec", "host", dr.host);
  if (dr.host.empty()) fail("spec.host", "missing required field");
  if (Reader::present(spec, "trafficPolicy"))
    dr.traffic_policy = read_traffic_policy(r, Reader::child(spec, "trafficPolicy"), "spec.trafficPolicy");
  r.read_list(spec, "spec", "subsets", [&](const YAML::Node& s, const std::string& p) {
    r.expect_strict_map(s, p, {"name", "labels", "trafficPolicy"});
    DestinationRuleSubset sub;
    r.opt_str(s, p, "name", sub.name);
    if (sub.name.empty()) fail(join(p, "name"), "missing required field");
    if (sub.name.find('|') != std::string::npos || sub.name.find('/') != std::string::npos)
      fail(join(p, "name"), "must not contain '|' or '/' (it becomes part of a cluster name)");
    if (Reader::present(s, "labels")) sub.labels = r.string_map(Reader::child(s, "labels"), join(p, "labels"));
    if (Reader::present(s, "trafficPolicy"))
      sub.traffic_policy = read_traffic_policy(r, Reader::child(s, "trafficPolicy"), join(p, "trafficPolicy"));
    for (const auto& other : dr.subsets) {
      if (other.name == sub.name) fail(join(p, "name"), "duplicate subset '" + sub.name + "'");
    }
    dr.subsets.push_back(std::move(sub));
  });
  return dr;
}

namespace {

// Gateway API HTTPHeaderFilter {set: [{name, value}], add: [...], remove: [names]}.
VsHeaderOps gw_header_filter(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path, {"set", "add", "remove"});
  VsHeaderOps ops;
  for (const char* key : {"set", "add"}) {
    auto& dst = std::string_view(key) == "set" ? ops.set : ops.add;
    r.read_list(n, path, key, [&](const YAML::Node& h, const std::string& p) {
      r.expect_strict_map(h, p, {"name", "value"});
      dst.emplace_back(lower(r.str(Reader::child(h, "name"), join(p, "name"))),
                       r.str(Reader::child(h, "value"), join(p, "value")));
    });
  }
  if (Reader::present(n, "remove")) {
    for (auto& h : r.str_list(Reader::child(n, "remove"), join(path, "remove"))) ops.remove.push_back(lower(h));
  }
  return ops;
}

VsDestination gw_backend(Reader& r, const YAML::Node& n, const std::string& path, const std::string& route_ns,
                         const std::string& domain, bool with_weight) {
  r.expect_strict_map(n, path, {"name", "namespace", "port", "weight", "kind", "group", "filters"});
  std::string kind = "Service", group;
  r.opt_str(n, path, "kind", kind);
  r.opt_str(n, path, "group", group);
  if (kind != "Service" || !group.empty()) fail(path, "only Service backends (group \"\", kind Service) are supported");
  if (Reader::present(n, "filters")) fail(join(path, "filters"), "per-backend filters are not supported yet");
  VsDestination d;
  d.path = path;
  std::string name, ns = route_ns;
  r.opt_str(n, path, "name", name);
  if (name.empty()) fail(join(path, "name"), "missing required field");
  r.opt_str(n, path, "namespace", ns);
  d.host = name + "." + ns + ".svc." + domain;
  if (Reader::present(n, "port"))
    d.port = r.port(Reader::child(n, "port"), join(path, "port"));
  else
    fail(join(path, "port"), "missing required field (a Service backend needs a port)");
  d.weight = 1;
  d.weight_set = true;
  if (with_weight && Reader::present(n, "weight"))
    d.weight = static_cast<uint32_t>(r.integer(Reader::child(n, "weight"), join(path, "weight"), 0, 1000000));
  return d;
}

}  // namespace

GatewayRouteObject read_gateway_route(Reader& r, const YAML::Node& doc, const ObjectMeta& meta, const std::string& kind,
                                      const std::string& cluster_domain) {
  GatewayRouteObject out;
  out.kind = kind;
  out.name = meta.name;
  out.ns = meta.ns;
  const bool grpc = kind == "GRPCRoute";
  if (!Reader::present(doc, "spec")) fail("spec", "missing required field");
  const YAML::Node spec = Reader::child(doc, "spec");
  r.expect_strict_map(spec, "spec", {"parentRefs", "hostnames", "rules"});
  size_t parent_index = 0;
  r.read_list(spec, "spec", "parentRefs", [&](const YAML::Node& p, const std::string& pp) {
    const size_t pi = parent_index++;
    r.expect_strict_map(p, pp, {"name", "namespace", "kind", "group", "port", "sectionName"});
    std::string pk = "Gateway", pg = "gateway.networking.k8s.io";
    r.opt_str(p, pp, "kind", pk);
    r.opt_str(p, pp, "group", pg);
    if (pk == "Gateway" && pg == "gateway.networking.k8s.io") {  // an ingress gateway's route (docs/ingress.md)
      GatewayParentRef ref;
      ref.path = pp;
      ref.index = pi;
      r.opt_str(p, pp, "name", ref.name);
      if (ref.name.empty()) fail(join(pp, "name"), "missing required field");
      ref.ns = meta.ns;
      r.opt_str(p, pp, "namespace", ref.ns);
      r.opt_str(p, pp, "sectionName", ref.section_name);
      if (Reader::present(p, "port")) ref.port = r.port(Reader::child(p, "port"), join(pp, "port"));
      out.gateway_parents.push_back(std::move(ref));
      return;
    }
    if (pk != "Service" || !(pg.empty() || pg == "core")) return;  // another kind: not ours
    ServiceParentRef ref;
    ref.index = pi;
    r.opt_str(p, pp, "name", ref.name);
    if (ref.name.empty()) fail(join(pp, "name"), "missing required field");
    ref.ns = meta.ns;
    r.opt_str(p, pp, "namespace", ref.ns);
    if (Reader::present(p, "port")) ref.port = r.port(Reader::child(p, "port"), join(pp, "port"));
    out.parents.push_back(std::move(ref));
  });
  if (Reader::present(spec, "hostnames")) {
    out.hostnames = r.str_list(Reader::child(spec, "hostnames"), "spec.hostnames");
    for (size_t i = 0; i < out.hostnames.size(); ++i) {
      auto& h = out.hostnames[i];
      std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      const std::string_view bare = h.starts_with("*.") ? std::string_view(h).substr(2) : std::string_view(h);
      if (!yaml::valid_dns_subdomain(bare)) fail(index("spec.hostnames", i), "not a hostname or *.suffix: '" + h + "'");
    }
  }
  size_t rule_index = 0;
  r.read_list(spec, "spec", "rules", [&](const YAML::Node& rule, const std::string& rp) {
    const size_t ri = rule_index++;
    r.expect_strict_map(rule, rp,
                        {"name", "matches", "filters", "backendRefs", "timeouts", "retry", "sessionPersistence"});
    if (Reader::present(rule, "sessionPersistence")) fail(join(rp, "sessionPersistence"), "not supported yet");
    VsRule base;
    base.gateway_api = true;
    r.opt_str(rule, rp, "name", base.name);
    if (base.name.empty()) base.name = meta.ns + "." + meta.name + "." + std::to_string(ri);
    r.read_list(rule, rp, "filters", [&](const YAML::Node& f, const std::string& fp) {
      r.expect_strict_map(f, fp,
                          {"type", "requestHeaderModifier", "responseHeaderModifier", "requestRedirect", "urlRewrite",
                           "requestMirror", "cors", "extensionRef", "externalAuth"});
      const std::string type = r.str(Reader::child(f, "type"), join(fp, "type"));
      if (type == "RequestHeaderModifier") {
        base.headers.request =
            gw_header_filter(r, Reader::child(f, "requestHeaderModifier"), join(fp, "requestHeaderModifier"));
      } else if (type == "ResponseHeaderModifier") {
        base.headers.response =
            gw_header_filter(r, Reader::child(f, "responseHeaderModifier"), join(fp, "responseHeaderModifier"));
      } else if (type == "RequestMirror") {
        const std::string mp = join(fp, "requestMirror");
        const YAML::Node m = Reader::child(f, "requestMirror");
        r.expect_strict_map(m, mp, {"backendRef", "percent", "fraction"});
        VsMirror mirror;
        mirror.destination =
            gw_backend(r, Reader::child(m, "backendRef"), join(mp, "backendRef"), meta.ns, cluster_domain, false);
        if (Reader::present(m, "percent"))
          mirror.percent = static_cast<double>(r.integer(Reader::child(m, "percent"), join(mp, "percent"), 0, 100));
        if (Reader::present(m, "fraction")) fail(join(mp, "fraction"), "not supported yet; use percent");
        base.mirrors.push_back(std::move(mirror));
      } else if (!grpc && type == "RequestRedirect") {
        const std::string xp = join(fp, "requestRedirect");
        const YAML::Node x = Reader::child(f, "requestRedirect");
        r.expect_strict_map(x, xp, {"scheme", "hostname", "path", "port", "statusCode"});
        VsRedirect red;
        r.opt_str(x, xp, "scheme", red.scheme);
        r.opt_str(x, xp, "hostname", red.authority);
        if (Reader::present(x, "port")) red.port = r.port(Reader::child(x, "port"), join(xp, "port"));
        if (Reader::present(x, "statusCode")) {
          red.code = static_cast<uint32_t>(r.integer(Reader::child(x, "statusCode"), join(xp, "statusCode"), 301, 308));
          if (red.code != 301 && red.code != 302 && red.code != 303 && red.code != 307 && red.code != 308)
            fail(join(xp, "statusCode"), "must be 301, 302, 303, 307 or 308");
        }
        if (Reader::present(x, "path")) {
          const YAML::Node p = Reader::child(x, "path");
          const std::string pp = join(xp, "path");
          r.expect_strict_map(p, pp, {"type", "replaceFullPath", "replacePrefixMatch"});
          const std::string t = r.str(Reader::child(p, "type"), join(pp, "type"));
          if (t == "ReplaceFullPath")
            red.uri = r.str(Reader::child(p, "replaceFullPath"), join(pp, "replaceFullPath"));
          else if (t == "ReplacePrefixMatch")
            red.prefix_rewrite = r.str(Reader::child(p, "replacePrefixMatch"), join(pp, "replacePrefixMatch"));
          else
            fail(join(pp, "type"), "unknown path modifier '" + t + "'");
        }
        base.redirect = red;
      } else if (!grpc && type == "URLRewrite") {
        const std::string xp = join(fp, "urlRewrite");
        const YAML::Node x = Reader::child(f, "urlRewrite");
        r.expect_strict_map(x, xp, {"hostname", "path"});
        VsRewrite rw;
        r.opt_str(x, xp, "hostname", rw.authority);
        if (Reader::present(x, "path")) {
          const YAML::Node p = Reader::child(x, "path");
          const std::string pp = join(xp, "path");
          r.expect_strict_map(p, pp, {"type", "replaceFullPath", "replacePrefixMatch"});
          const std::string t = r.str(Reader::child(p, "type"), join(pp, "type"));
          if (t == "ReplaceFullPath")
            rw.uri_regex = std::make_pair(std::string("/.*"),
                                          r.str(Reader::child(p, "replaceFullPath"), join(pp, "replaceFullPath")));
          else if (t == "ReplacePrefixMatch")
            rw.uri = r.str(Reader::child(p, "replacePrefixMatch"), join(pp, "replacePrefixMatch"));
          else
            fail(join(pp, "type"), "unknown path modifier '" + t + "'");
        }
        base.rewrite = rw;
      } else {
        fail(join(fp, "type"), "filter type '" + type + "' is not supported (unsupported filter type)");
      }
    });
    bool any_backend = false, all_zero = true;
    r.read_list(rule, rp, "backendRefs", [&](const YAML::Node& b, const std::string& bp) {
      VsDestination d = gw_backend(r, b, bp, meta.ns, cluster_domain, true);
      any_backend = true;
      if (d.weight > 0) all_zero = false;
      if (d.weight > 0) base.route.push_back(std::move(d));
    });
    if (!base.redirect) {
      if (!any_backend) fail(join(rp, "backendRefs"), "a rule needs backendRefs or a RequestRedirect filter");
      if (all_zero) base.all_backends_zero = true;
    } else if (any_backend) {
      fail(join(rp, "backendRefs"), "a RequestRedirect rule must not have backendRefs");
    }
    if (Reader::present(rule, "timeouts")) {
      const std::string tp = join(rp, "timeouts");
      const YAML::Node t = Reader::child(rule, "timeouts");
      r.expect_strict_map(t, tp, {"request", "backendRequest"});
      std::optional<uint64_t> request, backend;
      if (Reader::present(t, "request"))
        request = parse_duration_ms(r.str(Reader::child(t, "request"), join(tp, "request")), join(tp, "request"));
      if (Reader::present(t, "backendRequest"))
        backend = parse_duration_ms(r.str(Reader::child(t, "backendRequest"), join(tp, "backendRequest")),
                                    join(tp, "backendRequest"));
      if (request && backend && *request != 0 && (*backend == 0 || *backend > *request))
        fail(join(tp, "backendRequest"), "must not exceed request");
      base.timeout_ms = request ? request : backend;
      if (backend && request) {
        base.retries = VsRetry{};
        base.retries->per_try_timeout_ms = backend;
      }
    }
    if (Reader::present(rule, "retry")) {
      const std::string tp = join(rp, "retry");
      const YAML::Node t = Reader::child(rule, "retry");
      r.expect_strict_map(t, tp, {"codes", "attempts", "backoff"});
      VsRetry retry = base.retries.value_or(VsRetry{});
      retry.retry_on = "connect-failure,refused-stream,unavailable,cancelled";
      if (Reader::present(t, "codes")) {
        const YAML::Node codes = Reader::child(t, "codes");
        r.expect_seq(codes, join(tp, "codes"));
        for (size_t i = 0; i < codes.size(); ++i)
          retry.retry_on += "," + std::to_string(r.integer(codes[i], index(join(tp, "codes"), i), 400, 599));
      }
      if (Reader::present(t, "attempts"))
        retry.attempts = static_cast<int32_t>(r.integer(Reader::child(t, "attempts"), join(tp, "attempts"), 0, 1000));
      if (Reader::present(t, "backoff"))
        retry.backoff_ms =
            parse_duration_ms(r.str(Reader::child(t, "backoff"), join(tp, "backoff")), join(tp, "backoff"));
      base.retries = retry;
    }
    // One VS rule per match, as istiod emits them (no match = one catch-all rule).
    size_t match_index = 0;
    bool any_match = false;
    r.read_list(rule, rp, "matches", [&](const YAML::Node& m, const std::string& mp) {
      any_match = true;
      VsRule one = base;
      one.path = mp;
      VsMatch vm;
      if (grpc) {
        r.expect_strict_map(m, mp, {"method", "headers"});
        if (Reader::present(m, "method")) {
          const YAML::Node me = Reader::child(m, "method");
          const std::string mep = join(mp, "method");
          r.expect_strict_map(me, mep, {"type", "service", "method"});
          std::string type = "Exact", service, method;
          r.opt_str(me, mep, "type", type);
          r.opt_str(me, mep, "service", service);
          r.opt_str(me, mep, "method", method);
          if (service.empty() && method.empty()) fail(mep, "service or method required");
          if (type == "Exact") {
            if (!service.empty() && !method.empty())
              vm.uri = VsStringMatch{VsStringMatch::Kind::Exact, "/" + service + "/" + method};
            else if (!service.empty())
              vm.uri = VsStringMatch{VsStringMatch::Kind::Prefix, "/" + service + "/"};
            else
              vm.uri = VsStringMatch{VsStringMatch::Kind::Regex, "/[^/]+/" + method};
          } else if (type == "RegularExpression") {
            vm.uri =
                VsStringMatch{VsStringMatch::Kind::Regex, "/" + (service.empty() ? std::string("[^/]+") : service) +
                                                              "/" + (method.empty() ? std::string("[^/]+") : method)};
          } else {
            fail(join(mep, "type"), "unknown match type '" + type + "'");
          }
        }
      } else {
        r.expect_strict_map(m, mp, {"path", "headers", "queryParams", "method"});
        VsStringMatch path{VsStringMatch::Kind::SeparatedPrefix, "/"};
        if (Reader::present(m, "path")) {
          const YAML::Node p = Reader::child(m, "path");
          const std::string pp = join(mp, "path");
          r.expect_strict_map(p, pp, {"type", "value"});
          std::string type = "PathPrefix";
          r.opt_str(p, pp, "type", type);
          r.opt_str(p, pp, "value", path.value);
          if (type == "Exact")
            path.kind = VsStringMatch::Kind::Exact;
          else if (type == "PathPrefix")
            path.kind = VsStringMatch::Kind::SeparatedPrefix;
          else if (type == "RegularExpression")
            path.kind = VsStringMatch::Kind::Regex;
          else
            fail(join(pp, "type"), "unknown path match type '" + type + "'");
          if (path.kind != VsStringMatch::Kind::Regex && (path.value.empty() || path.value.front() != '/'))
            fail(join(pp, "value"), "must start with '/'");
        }
        vm.uri = path;
        if (Reader::present(m, "method"))
          vm.method = VsStringMatch{VsStringMatch::Kind::Exact, r.str(Reader::child(m, "method"), join(mp, "method"))};
        r.read_list(m, mp, "queryParams", [&](const YAML::Node& q, const std::string& qp) {
          r.expect_strict_map(q, qp, {"type", "name", "value"});
          std::string type = "Exact";
          r.opt_str(q, qp, "type", type);
          VsStringMatch sm{type == "RegularExpression" ? VsStringMatch::Kind::Regex : VsStringMatch::Kind::Exact,
                           r.str(Reader::child(q, "value"), join(qp, "value"))};
          if (type != "Exact" && type != "RegularExpression")
            fail(join(qp, "type"), "unknown match type '" + type + "'");
          vm.query_params.emplace_back(r.str(Reader::child(q, "name"), join(qp, "name")), sm);
        });
      }
      r.read_list(m, mp, "headers", [&](const YAML::Node& h, const std::string& hp) {
        r.expect_strict_map(h, hp, {"type", "name", "value"});
        std::string type = "Exact";
        r.opt_str(h, hp, "type", type);
        if (type != "Exact" && type != "RegularExpression") fail(join(hp, "type"), "unknown match type '" + type + "'");
        VsStringMatch sm{type == "RegularExpression" ? VsStringMatch::Kind::Regex : VsStringMatch::Kind::Exact,
                         r.str(Reader::child(h, "value"), join(hp, "value"))};
        vm.headers.emplace_back(lower(r.str(Reader::child(h, "name"), join(hp, "name"))), sm);
      });
      // Every regex this match carries (written by the user or built from GRPCRoute names).
      if (vm.uri && vm.uri->kind == VsStringMatch::Kind::Regex) checked_regex(vm.uri->value, mp);
      for (const auto* list : {&vm.headers, &vm.query_params}) {
        for (const auto& [name, sm] : *list) {
          if (sm && sm->kind == VsStringMatch::Kind::Regex) checked_regex(sm->value, mp + "[" + name + "]");
        }
      }
      one.match.push_back(std::move(vm));
      ++match_index;
      out.rules.push_back(std::move(one));
    });
    if (!any_match) {
      base.path = rp;
      if (!grpc) {
        VsMatch vm;
        vm.uri = VsStringMatch{VsStringMatch::Kind::SeparatedPrefix, "/"};
        base.match.push_back(std::move(vm));
      }
      out.rules.push_back(std::move(base));
    }
  });
  return out;
}

}  // namespace controlplane
