#include "controlplane/ratelimit_loader.h"

#include <algorithm>
#include <cmath>

#include "controlplane/waypoint_loader.h"

namespace controlplane {

using yaml::fail;
using yaml::index;
using yaml::join;
using yaml::Reader;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// "host:port" / "[v6]:port".
void host_port(const std::string& s, const std::string& path, std::string& host, uint16_t& port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    fail(path, "expected host:port, got '" + s + "'");
  host = s.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string p = s.substr(colon + 1);
  uint64_t v = 0;
  for (char c : p) {
    if (c < '0' || c > '9' || v > 65535) fail(path, "invalid port in '" + s + "'");
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v == 0 || v > 65535) fail(path, "invalid port in '" + s + "'");
  port = static_cast<uint16_t>(v);
}

std::vector<RlTargetRef> target_refs(Reader& r, const YAML::Node& spec, const std::string& path) {
  std::vector<RlTargetRef> out;
  auto one = [&](const YAML::Node& n, const std::string& p) {
    r.expect_strict_map(n, p, {"group", "kind", "name", "namespace"});
    RlTargetRef t;
    std::string group;
    r.opt_str(n, p, "group", group);
    r.opt_str(n, p, "kind", t.kind);
    r.opt_str(n, p, "name", t.name);
    if (t.name.empty()) fail(join(p, "name"), "required");
    if (t.kind == "Gateway") {
      if (group != "gateway.networking.k8s.io")
        fail(join(p, "group"), "must be gateway.networking.k8s.io for a Gateway");
    } else if (t.kind == "Service") {
      if (!group.empty() && group != "core") fail(join(p, "group"), "must be \"\" (core) for a Service");
    } else {
      fail(join(p, "kind"), "must be Gateway or Service, got '" + t.kind + "'");
    }
    if (Reader::present(n, "namespace")) fail(join(p, "namespace"), "cross-namespace targets are not allowed");
    out.push_back(std::move(t));
  };
  if (Reader::present(spec, "targetRef")) one(Reader::child(spec, "targetRef"), join(path, "targetRef"));
  r.read_list(spec, path, "targetRefs", one);
  return out;
}

// Envoy's YAML keys may be snake_case or the camelCase protojson accepts.
std::string snake(const std::string& k) {
  std::string out;
  for (char c : k) {
    if (c >= 'A' && c <= 'Z') {
      out += '_';
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += c;
    }
  }
  return out;
}

// A map with its keys in snake_case, checked against `allowed`.
YAML::Node envoy_map(Reader& r, const YAML::Node& n, const std::string& path,
                     std::initializer_list<std::string_view> allowed) {
  r.expect_map(n, path);
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& kv : n) {
    const std::string key = snake(r.str(kv.first, path));
    if (key != "@type" && std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      fail(join(path, kv.first.Scalar()), "unknown or unsupported field");
    out[key] = kv.second;
  }
  return out;
}

uint64_t number(Reader& r, const YAML::Node& n, const std::string& path, uint64_t min, uint64_t max) {
  return r.integer(n, path, min, max);
}

// Envoy Duration in YAML: "60s", "0.25s" (protojson), or {seconds, nanos}.
uint64_t envoy_duration_ms(Reader& r, const YAML::Node& n, const std::string& path) {
  if (n.IsMap()) {
    YAML::Node m = envoy_map(r, n, path, {"seconds", "nanos"});
    uint64_t ms = 0;
    if (Reader::present(m, "seconds")) ms += number(r, m["seconds"], join(path, "seconds"), 0, 315'576'000'000) * 1000;
    if (Reader::present(m, "nanos"))
      ms += (number(r, m["nanos"], join(path, "nanos"), 0, 999'999'999) + 999'999) / 1'000'000;
    return ms;
  }
  return parse_duration_ms(r.str(n, path), path);
}

// envoy.type.v3.FractionalPercent / RuntimeFractionalPercent.default_value -> percent.
double envoy_fraction(Reader& r, const YAML::Node& n, const std::string& path) {
  YAML::Node rf = envoy_map(r, n, path, {"default_value", "runtime_key"});
  if (!Reader::present(rf, "default_value")) return 0;
  const std::string dp = join(path, "default_value");
  YAML::Node fp = envoy_map(r, rf["default_value"], dp, {"numerator", "denominator"});
  double num = Reader::present(fp, "numerator")
                   ? static_cast<double>(number(r, fp["numerator"], join(dp, "numerator"), 0, 1'000'000))
                   : 0;
  std::string den = "HUNDRED";
  if (Reader::present(fp, "denominator")) den = r.str(fp["denominator"], join(dp, "denominator"));
  if (den == "HUNDRED") return std::min(num, 100.0);
  if (den == "TEN_THOUSAND") return std::min(num / 100.0, 100.0);
  if (den == "MILLION") return std::min(num / 10'000.0, 100.0);
  fail(join(dp, "denominator"), "expected HUNDRED, TEN_THOUSAND or MILLION");
}

std::vector<std::pair<std::string, std::string>> envoy_header_adds(Reader& r, const YAML::Node& n,
                                                                   const std::string& path) {
  r.expect_seq(n, path);
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string p = index(path, i);
    YAML::Node o = envoy_map(r, n[i], p, {"header", "append", "append_action", "keep_empty_value"});
    if (!Reader::present(o, "header")) fail(join(p, "header"), "required");
    YAML::Node h = envoy_map(r, o["header"], join(p, "header"), {"key", "value"});
    std::string k, v;
    r.opt_str(h, join(p, "header"), "key", k);
    r.opt_str(h, join(p, "header"), "value", v);
    if (k.empty()) fail(join(join(p, "header"), "key"), "required");
    out.emplace_back(lower(k), v);
  }
  return out;
}

bool x_headers(Reader& r, const YAML::Node& n, const std::string& path) {
  const std::string v = r.str(n, path);
  if (v == "DRAFT_VERSION_03") return true;
  if (v == "OFF") return false;
  fail(path, "expected OFF or DRAFT_VERSION_03");
}

// LocalRateLimit from Envoy YAML. `require_bucket`: an HTTP_FILTER entry may have none (the
// bucket then comes from a per-route patch).
std::optional<RlLocal> envoy_local(Reader& r, const YAML::Node& n, const std::string& path) {
  YAML::Node m =
      envoy_map(r, n, path,
                {"stat_prefix", "token_bucket", "filter_enabled", "filter_enforced", "response_headers_to_add",
                 "enable_x_ratelimit_headers", "local_rate_limit_per_downstream_connection", "descriptors", "status"});
  RlLocal l;
  l.x_ratelimit_headers = false;
  r.opt_str(m, path, "stat_prefix", l.stat_prefix);
  if (Reader::present(m, "descriptors") && m["descriptors"].size() > 0)
    fail(join(path, "descriptors"), "per-descriptor local limits are not supported by the waypoint");
  if (Reader::present(m, "local_rate_limit_per_downstream_connection") &&
      r.boolean(m["local_rate_limit_per_downstream_connection"],
                join(path, "local_rate_limit_per_downstream_connection")))
    fail(join(path, "local_rate_limit_per_downstream_connection"), "true is not supported by the waypoint");
  if (Reader::present(m, "status")) fail(join(path, "status"), "a custom status is not supported (429)");
  if (!Reader::present(m, "token_bucket")) return std::nullopt;
  const std::string tp = join(path, "token_bucket");
  YAML::Node tb = envoy_map(r, m["token_bucket"], tp, {"max_tokens", "tokens_per_fill", "fill_interval"});
  if (!Reader::present(tb, "max_tokens")) fail(join(tp, "max_tokens"), "required");
  l.max_tokens = static_cast<uint32_t>(number(r, tb["max_tokens"], join(tp, "max_tokens"), 1, 0xffffffffu));
  l.tokens_per_fill =
      Reader::present(tb, "tokens_per_fill")
          ? static_cast<uint32_t>(number(r, tb["tokens_per_fill"], join(tp, "tokens_per_fill"), 1, 0xffffffffu))
          : 1;
  if (!Reader::present(tb, "fill_interval")) fail(join(tp, "fill_interval"), "required");
  l.fill_interval_ms = envoy_duration_ms(r, tb["fill_interval"], join(tp, "fill_interval"));
  if (l.fill_interval_ms < 50) fail(join(tp, "fill_interval"), "must be at least 50ms");
  l.enabled_percent =
      Reader::present(m, "filter_enabled") ? envoy_fraction(r, m["filter_enabled"], join(path, "filter_enabled")) : 0;
  l.enforced_percent = Reader::present(m, "filter_enforced")
                           ? envoy_fraction(r, m["filter_enforced"], join(path, "filter_enforced"))
                           : 0;
  if (Reader::present(m, "response_headers_to_add"))
    l.response_headers = envoy_header_adds(r, m["response_headers_to_add"], join(path, "response_headers_to_add"));
  if (Reader::present(m, "enable_x_ratelimit_headers"))
    l.x_ratelimit_headers = x_headers(r, m["enable_x_ratelimit_headers"], join(path, "enable_x_ratelimit_headers"));
  return l;
}

// typed_config: the message itself (@type = its type URL) or a TypedStruct wrapping it.
YAML::Node unwrap_typed(Reader& r, const YAML::Node& n, const std::string& path, std::string_view want_type,
                        std::string& value_path) {
  r.expect_map(n, path);
  std::string type;
  r.opt_str(n, path, "@type", type);
  const std::string want = "type.googleapis.com/" + std::string(want_type);
  if (type == want) {
    value_path = path;
    return n;
  }
  if (type == "type.googleapis.com/udpa.type.v1.TypedStruct" || type == "type.googleapis.com/xds.type.v3.TypedStruct") {
    r.expect_strict_map(n, path, {"@type", "type_url", "typeUrl", "value"});
    std::string inner;
    r.opt_str(n, path, "type_url", inner);
    if (inner.empty()) r.opt_str(n, path, "typeUrl", inner);
    if (inner != want) fail(join(path, "type_url"), "expected " + want);
    value_path = join(path, "value");
    if (!Reader::present(n, "value")) return YAML::Node(YAML::NodeType::Map);
    return Reader::child(n, "value");
  }
  fail(join(path, "@type"), "expected " + want + " or a TypedStruct wrapping it");
}

RlAction envoy_action(Reader& r, const YAML::Node& n, const std::string& path) {
  YAML::Node a = envoy_map(
      r, n, path, {"remote_address", "request_headers", "generic_key", "header_value_match", "destination_cluster"});
  if (a.size() != 1) fail(path, "exactly one action");
  RlAction out;
  const std::string key = a.begin()->first.Scalar();
  const YAML::Node v = a.begin()->second;
  const std::string p = join(path, key);
  if (key == "remote_address") {
    out.kind = RlAction::Kind::RemoteAddress;
  } else if (key == "destination_cluster") {
    out.kind = RlAction::Kind::DestinationCluster;
  } else if (key == "request_headers") {
    YAML::Node m = envoy_map(r, v, p, {"header_name", "descriptor_key", "skip_if_absent"});
    out.kind = RlAction::Kind::RequestHeaders;
    r.opt_str(m, p, "header_name", out.header);
    r.opt_str(m, p, "descriptor_key", out.key);
    if (out.header.empty()) fail(join(p, "header_name"), "required");
    if (out.key.empty()) fail(join(p, "descriptor_key"), "required");
    out.header = lower(out.header);
    if (Reader::present(m, "skip_if_absent"))
      out.skip_if_absent = r.boolean(m["skip_if_absent"], join(p, "skip_if_absent"));
  } else if (key == "generic_key") {
    YAML::Node m = envoy_map(r, v, p, {"descriptor_value", "descriptor_key"});
    out.kind = RlAction::Kind::GenericKey;
    r.opt_str(m, p, "descriptor_value", out.value);
    r.opt_str(m, p, "descriptor_key", out.key);
    if (out.value.empty()) fail(join(p, "descriptor_value"), "required");
  } else {
    YAML::Node m = envoy_map(r, v, p, {"descriptor_value", "descriptor_key", "expect_match", "headers"});
    out.kind = RlAction::Kind::HeaderValueMatch;
    r.opt_str(m, p, "descriptor_value", out.value);
    r.opt_str(m, p, "descriptor_key", out.key);
    if (out.value.empty()) fail(join(p, "descriptor_value"), "required");
    if (Reader::present(m, "expect_match")) out.expect_match = r.boolean(m["expect_match"], join(p, "expect_match"));
    if (!Reader::present(m, "headers")) fail(join(p, "headers"), "required");
    const std::string hp = join(p, "headers");
    r.expect_seq(m["headers"], hp);
    for (size_t i = 0; i < m["headers"].size(); ++i) {
      const std::string ip = index(hp, i);
      YAML::Node h =
          envoy_map(r, m["headers"][i], ip,
                    {"name", "exact_match", "prefix_match", "present_match", "string_match", "safe_regex_match"});
      std::string name;
      r.opt_str(h, ip, "name", name);
      if (name.empty()) fail(join(ip, "name"), "required");
      std::optional<VsStringMatch> sm;
      if (Reader::present(h, "exact_match")) {
        sm = VsStringMatch{VsStringMatch::Kind::Exact, r.str(h["exact_match"], join(ip, "exact_match"))};
      } else if (Reader::present(h, "prefix_match")) {
        sm = VsStringMatch{VsStringMatch::Kind::Prefix, r.str(h["prefix_match"], join(ip, "prefix_match"))};
      } else if (Reader::present(h, "string_match")) {
        YAML::Node s = envoy_map(r, h["string_match"], join(ip, "string_match"), {"exact", "prefix"});
        if (Reader::present(s, "exact"))
          sm = VsStringMatch{VsStringMatch::Kind::Exact, r.str(s["exact"], join(ip, "string_match.exact"))};
        else if (Reader::present(s, "prefix"))
          sm = VsStringMatch{VsStringMatch::Kind::Prefix, r.str(s["prefix"], join(ip, "string_match.prefix"))};
        else
          fail(join(ip, "string_match"), "exact or prefix required");
      } else if (Reader::present(h, "safe_regex_match")) {
        fail(join(ip, "safe_regex_match"), "not supported here; use string_match");
      }
      out.headers.emplace_back(lower(name), sm);
    }
  }
  return out;
}

std::vector<std::vector<RlAction>> envoy_rate_limits(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_seq(n, path);
  std::vector<std::vector<RlAction>> out;
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string p = index(path, i);
    YAML::Node m = envoy_map(r, n[i], p, {"actions", "stage"});
    if (Reader::present(m, "stage") && number(r, m["stage"], join(p, "stage"), 0, 10) != 0)
      fail(join(p, "stage"), "only stage 0 is supported");
    if (!Reader::present(m, "actions")) fail(join(p, "actions"), "required");
    std::vector<RlAction> acts;
    r.expect_seq(m["actions"], join(p, "actions"));
    for (size_t j = 0; j < m["actions"].size(); ++j)
      acts.push_back(envoy_action(r, m["actions"][j], index(join(p, "actions"), j)));
    if (acts.empty()) fail(join(p, "actions"), "at least one action required");
    out.push_back(std::move(acts));
  }
  return out;
}

// "outbound|8081||ratelimit.default.svc.cluster.local" -> host, port.
void outbound_cluster(const std::string& name, const std::string& path, std::string& host, uint16_t& port) {
  std::vector<std::string> parts;
  size_t s = 0;
  for (;;) {
    auto e = name.find('|', s);
    parts.push_back(name.substr(s, e == std::string::npos ? std::string::npos : e - s));
    if (e == std::string::npos) break;
    s = e + 1;
  }
  if (parts.size() != 4 || parts[0] != "outbound" || parts[3].empty())
    fail(path, "expected an Istio cluster name outbound|<port>||<host>, got '" + name + "'");
  if (!parts[2].empty()) fail(path, "subsets are not supported for the rate limit service");
  host_port(parts[3] + ":" + parts[1], path, host, port);
}

RlGlobal envoy_global(Reader& r, const YAML::Node& n, const std::string& path) {
  YAML::Node m = envoy_map(r, n, path,
                           {"domain", "failure_mode_deny", "timeout", "rate_limit_service",
                            "enable_x_ratelimit_headers", "stage", "request_type"});
  RlGlobal g;
  r.opt_str(m, path, "domain", g.domain);
  if (g.domain.empty()) fail(join(path, "domain"), "required");
  if (Reader::present(m, "stage") && number(r, m["stage"], join(path, "stage"), 0, 10) != 0)
    fail(join(path, "stage"), "only stage 0 is supported");
  if (Reader::present(m, "failure_mode_deny"))
    g.failure_mode_deny = r.boolean(m["failure_mode_deny"], join(path, "failure_mode_deny"));
  if (Reader::present(m, "timeout")) g.timeout_ms = envoy_duration_ms(r, m["timeout"], join(path, "timeout"));
  if (g.timeout_ms == 0) fail(join(path, "timeout"), "must be > 0");
  if (Reader::present(m, "enable_x_ratelimit_headers"))
    g.x_ratelimit_headers = x_headers(r, m["enable_x_ratelimit_headers"], join(path, "enable_x_ratelimit_headers"));
  const std::string sp = join(path, "rate_limit_service");
  if (!Reader::present(m, "rate_limit_service")) fail(sp, "required");
  YAML::Node rls = envoy_map(r, m["rate_limit_service"], sp, {"grpc_service", "transport_api_version"});
  if (Reader::present(rls, "transport_api_version") &&
      r.str(rls["transport_api_version"], join(sp, "transport_api_version")) != "V3")
    fail(join(sp, "transport_api_version"), "must be V3");
  const std::string gp = join(sp, "grpc_service");
  if (!Reader::present(rls, "grpc_service")) fail(gp, "required");
  YAML::Node gs = envoy_map(r, rls["grpc_service"], gp, {"envoy_grpc", "google_grpc", "timeout"});
  if (Reader::present(gs, "google_grpc")) fail(join(gp, "google_grpc"), "not supported; use envoy_grpc with a cluster");
  const std::string ep = join(gp, "envoy_grpc");
  if (!Reader::present(gs, "envoy_grpc")) fail(ep, "required");
  YAML::Node eg = envoy_map(r, gs["envoy_grpc"], ep, {"cluster_name", "authority"});
  std::string cluster;
  r.opt_str(eg, ep, "cluster_name", cluster);
  g.service_path = join(ep, "cluster_name");
  outbound_cluster(cluster, g.service_path, g.service_host, g.service_port);
  return g;
}

}  // namespace

RateLimitPolicyObject read_rate_limit_policy(Reader& r, const YAML::Node& doc, const ObjectMeta& meta) {
  RateLimitPolicyObject p;
  p.kind = "RateLimitPolicy";
  p.name = meta.name;
  p.ns = meta.ns;
  if (!Reader::present(doc, "spec")) fail("spec", "required");
  const YAML::Node spec = Reader::child(doc, "spec");
  r.expect_strict_map(spec, "spec", {"targetRef", "targetRefs", "routes", "local", "global"});
  p.target_refs = target_refs(r, spec, "spec");
  if (p.target_refs.empty()) fail("spec.targetRefs", "required (a waypoint Gateway or a Service)");
  if (Reader::present(spec, "routes")) p.routes = r.str_list(Reader::child(spec, "routes"), "spec.routes");
  if (Reader::present(spec, "local")) {
    const YAML::Node n = Reader::child(spec, "local");
    r.expect_strict_map(n, "spec.local",
                        {"maxTokens", "tokensPerFill", "fillInterval", "requests", "unit", "enableXRateLimitHeaders",
                         "responseHeaders", "statPrefix"});
    RlLocal l;
    l.enabled_percent = 100;
    l.enforced_percent = 100;
    const bool bucket =
        Reader::present(n, "maxTokens") || Reader::present(n, "fillInterval") || Reader::present(n, "tokensPerFill");
    const bool simple = Reader::present(n, "requests") || Reader::present(n, "unit");
    if (bucket == simple)
      fail("spec.local", "either maxTokens/tokensPerFill/fillInterval or requests/unit (exactly one form)");
    if (bucket) {
      if (!Reader::present(n, "maxTokens")) fail("spec.local.maxTokens", "required");
      l.max_tokens =
          static_cast<uint32_t>(r.integer(Reader::child(n, "maxTokens"), "spec.local.maxTokens", 1, 0xffffffffu));
      l.tokens_per_fill = Reader::present(n, "tokensPerFill")
                              ? static_cast<uint32_t>(r.integer(Reader::child(n, "tokensPerFill"),
                                                                "spec.local.tokensPerFill", 1, 0xffffffffu))
                              : l.max_tokens;
      if (!Reader::present(n, "fillInterval")) fail("spec.local.fillInterval", "required");
      l.fill_interval_ms = parse_duration_ms(r.str(Reader::child(n, "fillInterval"), "spec.local.fillInterval"),
                                             "spec.local.fillInterval");
      if (l.fill_interval_ms < 50) fail("spec.local.fillInterval", "must be at least 50ms");
    } else {
      if (!Reader::present(n, "requests")) fail("spec.local.requests", "required");
      if (!Reader::present(n, "unit")) fail("spec.local.unit", "required");
      l.max_tokens =
          static_cast<uint32_t>(r.integer(Reader::child(n, "requests"), "spec.local.requests", 1, 0xffffffffu));
      l.tokens_per_fill = l.max_tokens;
      const std::string unit = lower(r.str(Reader::child(n, "unit"), "spec.local.unit"));
      if (unit == "second")
        l.fill_interval_ms = 1000;
      else if (unit == "minute")
        l.fill_interval_ms = 60'000;
      else if (unit == "hour")
        l.fill_interval_ms = 3'600'000;
      else if (unit == "day")
        l.fill_interval_ms = 86'400'000;
      else
        fail("spec.local.unit", "expected second, minute, hour or day, got '" + unit + "'");
    }
    if (Reader::present(n, "enableXRateLimitHeaders"))
      l.x_ratelimit_headers =
          r.boolean(Reader::child(n, "enableXRateLimitHeaders"), "spec.local.enableXRateLimitHeaders");
    if (Reader::present(n, "responseHeaders")) {
      for (auto& [k, v] : r.string_map(Reader::child(n, "responseHeaders"), "spec.local.responseHeaders"))
        l.response_headers.emplace_back(lower(k), v);
    }
    r.opt_str(n, "spec.local", "statPrefix", l.stat_prefix);
    if (l.stat_prefix.empty()) fail("spec.local.statPrefix", "must not be empty");
    p.local = std::move(l);
  }
  if (Reader::present(spec, "global")) {
    const YAML::Node n = Reader::child(spec, "global");
    r.expect_strict_map(n, "spec.global",
                        {"domain", "service", "timeout", "failureModeDeny", "enableXRateLimitHeaders", "descriptors"});
    RlGlobal g;
    r.opt_str(n, "spec.global", "domain", g.domain);
    if (g.domain.empty()) fail("spec.global.domain", "required");
    std::string service;
    r.opt_str(n, "spec.global", "service", service);
    if (service.empty()) fail("spec.global.service", "required (host:port of the rate limit service)");
    host_port(service, "spec.global.service", g.service_host, g.service_port);
    g.service_path = "spec.global.service";
    if (Reader::present(n, "timeout")) {
      g.timeout_ms =
          parse_duration_ms(r.str(Reader::child(n, "timeout"), "spec.global.timeout"), "spec.global.timeout");
      if (g.timeout_ms == 0) fail("spec.global.timeout", "must be > 0");
    }
    if (Reader::present(n, "failureModeDeny"))
      g.failure_mode_deny = r.boolean(Reader::child(n, "failureModeDeny"), "spec.global.failureModeDeny");
    if (Reader::present(n, "enableXRateLimitHeaders"))
      g.x_ratelimit_headers =
          r.boolean(Reader::child(n, "enableXRateLimitHeaders"), "spec.global.enableXRateLimitHeaders");
    r.read_list(n, "spec.global", "descriptors", [&](const YAML::Node& d, const std::string& dp) {
      r.expect_strict_map(d, dp, {"actions"});
      std::vector<RlAction> acts;
      r.read_list(d, dp, "actions", [&](const YAML::Node& a, const std::string& ap) {
        r.expect_strict_map(
            a, ap, {"remoteAddress", "requestHeaders", "genericKey", "headerValueMatch", "destinationCluster"});
        if (a.size() != 1)
          fail(ap, "exactly one of remoteAddress, requestHeaders, genericKey, headerValueMatch, destinationCluster");
        RlAction act;
        if (Reader::present(a, "remoteAddress") || (a["remoteAddress"].IsDefined())) {
          act.kind = RlAction::Kind::RemoteAddress;
        } else if (a["destinationCluster"].IsDefined()) {
          act.kind = RlAction::Kind::DestinationCluster;
        } else if (a["requestHeaders"].IsDefined()) {
          const std::string p = join(ap, "requestHeaders");
          const YAML::Node m = Reader::child(a, "requestHeaders");
          r.expect_strict_map(m, p, {"header", "key", "skipIfAbsent"});
          act.kind = RlAction::Kind::RequestHeaders;
          r.opt_str(m, p, "header", act.header);
          r.opt_str(m, p, "key", act.key);
          if (act.header.empty()) fail(join(p, "header"), "required");
          act.header = lower(act.header);
          if (act.key.empty()) act.key = act.header;
          if (Reader::present(m, "skipIfAbsent"))
            act.skip_if_absent = r.boolean(Reader::child(m, "skipIfAbsent"), join(p, "skipIfAbsent"));
        } else if (a["genericKey"].IsDefined()) {
          const std::string p = join(ap, "genericKey");
          const YAML::Node m = Reader::child(a, "genericKey");
          r.expect_strict_map(m, p, {"value", "key"});
          act.kind = RlAction::Kind::GenericKey;
          r.opt_str(m, p, "value", act.value);
          r.opt_str(m, p, "key", act.key);
          if (act.value.empty()) fail(join(p, "value"), "required");
        } else {
          const std::string p = join(ap, "headerValueMatch");
          const YAML::Node m = Reader::child(a, "headerValueMatch");
          r.expect_strict_map(m, p, {"value", "key", "expectMatch", "headers"});
          act.kind = RlAction::Kind::HeaderValueMatch;
          r.opt_str(m, p, "value", act.value);
          r.opt_str(m, p, "key", act.key);
          if (act.value.empty()) fail(join(p, "value"), "required");
          if (Reader::present(m, "expectMatch"))
            act.expect_match = r.boolean(Reader::child(m, "expectMatch"), join(p, "expectMatch"));
          if (!Reader::present(m, "headers")) fail(join(p, "headers"), "required");
          const std::string hp = join(p, "headers");
          const YAML::Node hs = Reader::child(m, "headers");
          r.expect_map(hs, hp);
          for (const auto& kv : hs) {
            const std::string name = lower(r.str(kv.first, hp));
            const std::string kp = hp + "[" + name + "]";
            std::optional<VsStringMatch> sm;
            if (!kv.second.IsNull() && !(kv.second.IsMap() && kv.second.size() == 0)) {
              r.expect_strict_map(kv.second, kp, {"exact", "prefix"});
              if (Reader::present(kv.second, "exact"))
                sm = VsStringMatch{VsStringMatch::Kind::Exact, r.str(kv.second["exact"], join(kp, "exact"))};
              else if (Reader::present(kv.second, "prefix"))
                sm = VsStringMatch{VsStringMatch::Kind::Prefix, r.str(kv.second["prefix"], join(kp, "prefix"))};
            }
            act.headers.emplace_back(name, sm);
          }
        }
        acts.push_back(std::move(act));
      });
      if (acts.empty()) fail(join(dp, "actions"), "at least one action required");
      g.descriptors.push_back(std::move(acts));
    });
    if (g.descriptors.empty()) fail("spec.global.descriptors", "at least one descriptor required");
    p.global = std::move(g);
  }
  if (!p.local && !p.global) fail("spec", "local or global (or both) required");
  return p;
}

std::optional<RateLimitPolicyObject> read_envoy_filter_rate_limits(Reader& r, const YAML::Node& doc,
                                                                   const ObjectMeta& meta) {
  RateLimitPolicyObject p;
  p.kind = "EnvoyFilter";
  p.name = meta.name;
  p.ns = meta.ns;
  if (!Reader::present(doc, "spec")) fail("spec", "required");
  const YAML::Node spec = Reader::child(doc, "spec");
  r.expect_strict_map(spec, "spec", {"workloadSelector", "targetRefs", "configPatches", "priority"});
  p.target_refs = target_refs(r, spec, "spec");
  if (Reader::present(spec, "workloadSelector")) {
    const YAML::Node ws = Reader::child(spec, "workloadSelector");
    r.expect_strict_map(ws, "spec.workloadSelector", {"labels"});
    Labels labels;
    if (Reader::present(ws, "labels"))
      labels = r.string_map(Reader::child(ws, "labels"), "spec.workloadSelector.labels");
    for (const char* k : {"gateway.networking.k8s.io/gateway-name", "istio.io/gateway-name"}) {
      if (auto it = labels.find(k); it != labels.end()) p.target_refs.push_back({"Gateway", it->second});
    }
  }
  std::optional<RlLocal> filter_local;  // from the HTTP_FILTER entry (may carry the bucket)
  bool local_filter_inserted = false;
  std::optional<RlLocal> route_local;  // from a VIRTUAL_HOST / HTTP_ROUTE typed_per_filter_config
  r.read_list(spec, "spec", "configPatches", [&](const YAML::Node& cp, const std::string& path) {
    r.expect_strict_map(cp, path, {"applyTo", "match", "patch"});
    std::string apply;
    r.opt_str(cp, path, "applyTo", apply);
    if (!Reader::present(cp, "patch")) fail(join(path, "patch"), "required");
    const YAML::Node patch = Reader::child(cp, "patch");
    r.expect_strict_map(patch, join(path, "patch"), {"operation", "value", "filterClass"});
    const YAML::Node value = Reader::child(patch, "value");
    const std::string vp = join(join(path, "patch"), "value");
    if (apply == "HTTP_FILTER" && value.IsMap()) {
      std::string name;
      r.opt_str(value, vp, "name", name);
      if (name == "envoy.filters.http.local_ratelimit") {
        local_filter_inserted = true;
        if (Reader::present(value, "typed_config") || Reader::present(value, "typedConfig")) {
          const std::string tp = join(vp, Reader::present(value, "typed_config") ? "typed_config" : "typedConfig");
          std::string inner_path;
          YAML::Node inner = unwrap_typed(
              r, Reader::child(value, Reader::present(value, "typed_config") ? "typed_config" : "typedConfig"), tp,
              "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", inner_path);
          filter_local = envoy_local(r, inner, inner_path);
        }
        return;
      }
      if (name == "envoy.filters.http.ratelimit") {
        const bool snake_key = Reader::present(value, "typed_config");
        if (!snake_key && !Reader::present(value, "typedConfig")) fail(join(vp, "typed_config"), "required");
        const std::string tp = join(vp, snake_key ? "typed_config" : "typedConfig");
        std::string inner_path;
        YAML::Node inner = unwrap_typed(r, Reader::child(value, snake_key ? "typed_config" : "typedConfig"), tp,
                                        "envoy.extensions.filters.http.ratelimit.v3.RateLimit", inner_path);
        auto g = envoy_global(r, inner, inner_path);
        if (p.global) g.descriptors = std::move(p.global->descriptors);
        p.global = std::move(g);
        return;
      }
    }
    if ((apply == "VIRTUAL_HOST" || apply == "HTTP_ROUTE") && value.IsMap()) {
      YAML::Node v = value;
      std::string rl_path = vp;
      if (apply == "HTTP_ROUTE" && Reader::present(value, "route")) {
        v = Reader::child(value, "route");
        rl_path = join(vp, "route");
      }
      bool used = false;
      for (const char* k : {"rate_limits", "rateLimits"}) {
        if (!Reader::present(v, k)) continue;
        auto d = envoy_rate_limits(r, Reader::child(v, k), join(rl_path, k));
        if (!p.global) p.global = RlGlobal{};
        for (auto& x : d) p.global->descriptors.push_back(std::move(x));
        used = true;
      }
      for (const char* k : {"typed_per_filter_config", "typedPerFilterConfig"}) {
        if (!Reader::present(value, k)) continue;
        const YAML::Node tpfc = Reader::child(value, k);
        const std::string tp = join(vp, k);
        r.expect_map(tpfc, tp);
        for (const auto& kv : tpfc) {
          const std::string fname = r.str(kv.first, tp);
          const std::string fp = tp + "[" + fname + "]";
          if (fname != "envoy.filters.http.local_ratelimit") {
            p.warnings.push_back(fp + ": filter config other than local_ratelimit is not applied at the waypoint");
            continue;
          }
          std::string inner_path;
          YAML::Node inner = unwrap_typed(
              r, kv.second, fp, "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", inner_path);
          route_local = envoy_local(r, inner, inner_path);
          if (!route_local) fail(join(inner_path, "token_bucket"), "required in a per-route configuration");
          used = true;
        }
      }
      if (used) return;
    }
    p.warnings.push_back(path + ": " + (apply.empty() ? std::string("patch") : apply) +
                         " patch is not about rate limits; not applied at the waypoint");
  });
  // Envoy: the per-route config wins; the filter's own bucket applies where there is none.
  if (route_local)
    p.local = std::move(route_local);
  else if (filter_local)
    p.local = std::move(filter_local);
  if (p.local && !local_filter_inserted)
    fail("spec.configPatches",
         "a local_ratelimit per-route config without the HTTP_FILTER that inserts "
         "envoy.filters.http.local_ratelimit does nothing in Envoy");
  if (p.global && p.global->domain.empty())
    fail("spec.configPatches", "rate_limits without the HTTP_FILTER that inserts envoy.filters.http.ratelimit");
  if (!p.local && !p.global) return std::nullopt;
  if (p.target_refs.empty())
    fail("spec.targetRefs",
         "required for a waypoint (or a workloadSelector on gateway.networking.k8s.io/gateway-name)");
  return p;
}

}  // namespace controlplane
