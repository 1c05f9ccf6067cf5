#include "controlplane/mesh_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "controlplane/waypoint_loader.h"
#include "controlplane/yaml_reader.h"

namespace controlplane {

using yaml::fail;
using yaml::FieldError;
using yaml::index;
using yaml::join;
using yaml::Reader;

namespace {

// A lower-case HTTP header name (ext_authz header lists are matched without case).
std::string header_name(Reader& r, const YAML::Node& n, const std::string& path) {
  std::string s = r.str(n, path);
  if (s.empty()) fail(path, "empty header name");
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f || c == ':') fail(path, "invalid header name '" + s + "'");
    c = static_cast<char>(std::tolower(u));
  }
  return s;
}

std::vector<std::string> header_list(Reader& r, const YAML::Node& map, const std::string& path,
                                     std::string_view key) {
  std::vector<std::string> out;
  r.read_list(map, path, key, [&](const YAML::Node& n, const std::string& p) { out.push_back(header_name(r, n, p)); });
  return out;
}

void service_and_port(Reader& r, const YAML::Node& n, const std::string& path, ExtensionProvider& p) {
  r.opt_str(n, path, "service", p.service);
  if (p.service.empty()) fail(join(path, "service"), "required");
  if (!Reader::present(n, "port")) fail(join(path, "port"), "required");
  p.port = r.port(Reader::child(n, "port"), join(path, "port"));
}

uint64_t timeout(Reader& r, const YAML::Node& n, const std::string& path) {
  const std::string p = join(path, "timeout");
  const uint64_t ms = parse_duration_ms(r.str(Reader::child(n, "timeout"), p), p);
  if (ms == 0) fail(p, "must be greater than 0");
  return ms;
}

ExtAuthzBodySettings body_settings(Reader& r, const YAML::Node& n, const std::string& path, bool grpc) {
  if (grpc) {
    r.expect_strict_map(n, path, {"maxRequestBytes", "allowPartialMessage", "packAsBytes"});
  } else {
    r.expect_strict_map(n, path, {"maxRequestBytes", "allowPartialMessage"});
  }
  ExtAuthzBodySettings b;
  if (Reader::present(n, "maxRequestBytes"))
    b.max_request_bytes =
        static_cast<uint32_t>(r.integer(Reader::child(n, "maxRequestBytes"), join(path, "maxRequestBytes"), 0, UINT32_MAX));
  if (Reader::present(n, "allowPartialMessage"))
    b.allow_partial_message = r.boolean(Reader::child(n, "allowPartialMessage"), join(path, "allowPartialMessage"));
  if (Reader::present(n, "packAsBytes"))
    b.pack_as_bytes = r.boolean(Reader::child(n, "packAsBytes"), join(path, "packAsBytes"));
  return b;
}

void ext_authz_common(Reader& r, const YAML::Node& n, const std::string& path, ExtensionProvider& p, bool grpc) {
  service_and_port(r, n, path, p);
  if (Reader::present(n, "timeout")) p.timeout_ms = timeout(r, n, path);
  if (Reader::present(n, "failOpen")) p.fail_open = r.boolean(Reader::child(n, "failOpen"), join(path, "failOpen"));
  if (Reader::present(n, "statusOnError")) {
    // Istio takes a string ("503"); Envoy needs a valid HTTP status.
    const std::string sp = join(path, "statusOnError");
    p.status_on_error = static_cast<uint32_t>(r.integer(Reader::child(n, "statusOnError"), sp, 100, 599));
  }
  if (Reader::present(n, "includeRequestBodyInCheck"))
    p.include_request_body =
        body_settings(r, Reader::child(n, "includeRequestBodyInCheck"), join(path, "includeRequestBodyInCheck"), grpc);
}

ExtensionProvider provider(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_map(n, path);
  ExtensionProvider p;
  p.path = path;
  r.opt_str(n, path, "name", p.name);
  if (p.name.empty()) fail(join(path, "name"), "required");
  std::vector<std::string> kinds;
  for (const auto& kv : n) {
    const std::string key = r.str(kv.first, path);
    if (key != "name") kinds.push_back(key);
  }
  if (kinds.size() != 1) fail(path, "exactly one provider kind is required besides name, got " + std::to_string(kinds.size()));
  const std::string kind = kinds.front();
  const std::string kp = join(path, kind);
  const YAML::Node body = Reader::child(n, kind);
  if (kind == "envoyExtAuthzGrpc") {
    p.kind = ExtensionProvider::Kind::ExtAuthzGrpc;
    r.expect_strict_map(body, kp, {"service", "port", "timeout", "failOpen", "clearRouteCache", "statusOnError",
                                   "includeRequestBodyInCheck"});
    ext_authz_common(r, body, kp, p, true);
  } else if (kind == "envoyExtAuthzHttp") {
    p.kind = ExtensionProvider::Kind::ExtAuthzHttp;
    r.expect_strict_map(body, kp, {"service", "port", "timeout", "pathPrefix", "failOpen", "clearRouteCache",
                                   "statusOnError", "includeHeadersInCheck", "includeRequestHeadersInCheck",
                                   "includeAdditionalHeadersInCheck", "includeRequestBodyInCheck",
                                   "headersToUpstreamOnAllow", "headersToDownstreamOnAllow",
                                   "headersToDownstreamOnDeny"});
    ext_authz_common(r, body, kp, p, false);
    r.opt_str(body, kp, "pathPrefix", p.path_prefix);
    if (!p.path_prefix.empty() && p.path_prefix.front() != '/')
      fail(join(kp, "pathPrefix"), "must start with '/', got '" + p.path_prefix + "'");
    p.include_request_headers = header_list(r, body, kp, "includeRequestHeadersInCheck");
    for (auto& h : header_list(r, body, kp, "includeHeadersInCheck")) p.include_request_headers.push_back(std::move(h));
    if (Reader::present(body, "includeAdditionalHeadersInCheck")) {
      const std::string ap = join(kp, "includeAdditionalHeadersInCheck");
      for (auto& [k, v] : r.string_map(Reader::child(body, "includeAdditionalHeadersInCheck"), ap)) {
        YAML::Node key(k);
        p.include_additional_headers[header_name(r, key, ap)] = v;
      }
    }
    p.headers_to_upstream_on_allow = header_list(r, body, kp, "headersToUpstreamOnAllow");
    p.headers_to_downstream_on_allow = header_list(r, body, kp, "headersToDownstreamOnAllow");
    p.headers_to_downstream_on_deny = header_list(r, body, kp, "headersToDownstreamOnDeny");
  } else if (kind == "zipkin") {
    p.kind = ExtensionProvider::Kind::Zipkin;
    r.expect_strict_map(body, kp, {"service", "port", "maxTagLength", "enable64bitTraceId", "path", "headers",
                                   "traceContextOption", "timeout"});
    service_and_port(r, body, kp, p);
    if (Reader::present(body, "maxTagLength"))
      p.max_tag_length =
          static_cast<uint32_t>(r.integer(Reader::child(body, "maxTagLength"), join(kp, "maxTagLength"), 0, 65535));
    if (Reader::present(body, "enable64bitTraceId"))
      p.enable_64bit_trace_id = r.boolean(Reader::child(body, "enable64bitTraceId"), join(kp, "enable64bitTraceId"));
    for (const char* unsupported : {"path", "headers", "traceContextOption", "timeout"}) {
      if (Reader::present(body, unsupported))
        fail(join(kp, unsupported), "not supported (the waypoint's Zipkin exporter posts to /api/v2/spans)");
    }
  } else {
    r.expect_map(body, kp);
    p.kind = ExtensionProvider::Kind::Unsupported;
    p.unsupported_kind = kind;
  }
  return p;
}

}  // namespace

MeshConfigObject read_mesh_config(Reader& r, const std::string& text, const std::string& path,
                                  std::vector<std::pair<std::string, std::string>>& errors) {
  MeshConfigObject m;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(path, std::string("not valid YAML: ") + e.what());
  }
  if (root.IsNull() || !root.IsDefined()) return m;  // an empty mesh config: every default
  r.expect_map(root, path);

  std::set<std::string> names;
  r.read_list(root, path, "extensionProviders", [&](const YAML::Node& n, const std::string& p) {
    try {
      ExtensionProvider e = provider(r, n, p);
      if (!names.insert(e.name).second) fail(join(p, "name"), "duplicate provider name '" + e.name + "'");
      m.extension_providers.push_back(std::move(e));
    } catch (const FieldError& e) {
      errors.emplace_back(e.field, e.message + "; provider ignored");
    }
  });

  if (Reader::present(root, "defaultProviders")) {
    const std::string dp = join(path, "defaultProviders");
    const YAML::Node d = Reader::child(root, "defaultProviders");
    r.expect_strict_map(d, dp, {"tracing", "metrics", "accessLogging"});
    if (Reader::present(d, "tracing")) m.default_tracing_providers = r.str_list(Reader::child(d, "tracing"), join(dp, "tracing"));
  }

  if (Reader::present(root, "defaultConfig")) {
    const std::string cp = join(path, "defaultConfig");
    const YAML::Node dc = Reader::child(root, "defaultConfig");
    r.expect_map(dc, cp);
    if (Reader::present(dc, "tracing")) {
      const std::string tp = join(cp, "tracing");
      const YAML::Node t = Reader::child(dc, "tracing");
      r.expect_map(t, tp);
      if (Reader::present(t, "sampling")) {
        const std::string sp = join(tp, "sampling");
        const std::string s = r.str(Reader::child(t, "sampling"), sp);
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !(v >= 0.0 && v <= 100.0))
          fail(sp, "expected a percentage in [0, 100], got '" + s + "'");
        m.default_tracing_sampling = v;
      }
      if (Reader::present(t, "zipkin")) {
        const std::string zp = join(tp, "zipkin");
        const YAML::Node z = Reader::child(t, "zipkin");
        r.expect_map(z, zp);
        r.opt_str(z, zp, "address", m.default_zipkin_address);
      }
    }
  }
  return m;
}

}  // namespace controlplane
