#include "waypoint/xds/ext_authz_convert.h"

#include <google/protobuf/any.pb.h>

#include "envoy/extensions/filters/http/ext_authz/v3/ext_authz.pb.h"
#include "waypoint/http/message.h"
#include "waypoint/xds/convert.h"
#include "waypoint/xds/validate.h"

namespace waypoint::xds {
namespace {

namespace ea = envoy::extensions::filters::http::ext_authz::v3;
using common::make_error;

common::Error fail(const std::string& path, const std::string& what) {
  return make_error(path + ": " + what);
}

common::Status duration(const google::protobuf::Duration& d, const std::string& path, Duration& out) {
  if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() > 999'999'999) return fail(path, "negative or invalid duration");
  if (d.seconds() > 315'576'000'000LL) return fail(path, "duration too large");
  out = Duration(d.seconds() * 1000 + d.nanos() / 1'000'000);
  return common::ok_status();
}

common::Status list(const ea::ListStringMatcher& l, const std::string& path, std::vector<StringMatcher>& out) {
  for (int i = 0; i < l.patterns_size(); ++i) {
    StringMatcher m;
    if (auto st = convert_string_matcher(l.patterns(i), path + ".patterns[" + std::to_string(i) + "]", m); !st)
      return st;
    out.push_back(std::move(m));
  }
  return common::ok_status();
}

common::Result<std::shared_ptr<const authz::ExtAuthzConfig>> convert(const ea::ExtAuthz& m, const std::string& path) {
  if (auto e = find_unsupported_field(m, path); !e.empty()) return make_error(e + ": rejected");
  auto c = std::make_shared<authz::ExtAuthzConfig>();
  // Not implemented: refused by name so a config relying on them is not half-applied.
  if (m.has_with_request_body()) return fail(path + ".with_request_body", "not implemented (checks carry no body)");
  if (m.clear_route_cache()) return fail(path + ".clear_route_cache", "not implemented");
  if (m.metadata_context_namespaces_size() > 0) return fail(path + ".metadata_context_namespaces", "not implemented");
  if (m.typed_metadata_context_namespaces_size() > 0)
    return fail(path + ".typed_metadata_context_namespaces", "not implemented");
  if (m.has_filter_enabled()) return fail(path + ".filter_enabled", "not implemented");
  if (m.include_peer_certificate()) return fail(path + ".include_peer_certificate", "not implemented");
  if (m.include_tls_session()) return fail(path + ".include_tls_session", "not implemented");
  if (m.transport_api_version() != 2) return fail(path + ".transport_api_version", "must be V3");
  c->failure_mode_allow = m.failure_mode_allow();
  if (m.has_status_on_error()) {
    const int32_t code = m.status_on_error().code();
    if (code != 0 && (code < 100 || code > 999)) return fail(path + ".status_on_error.code", "not an HTTP status");
    if (code != 0) c->status_on_error = static_cast<uint16_t>(code);
  }
  if (m.has_allowed_headers())
    if (auto st = list(m.allowed_headers(), path + ".allowed_headers", c->allowed_headers); !st)
      return make_error(st.error());
  if (m.has_grpc_service()) {
    const auto& g = m.grpc_service();
    if (!g.has_envoy_grpc()) return fail(path + ".grpc_service.envoy_grpc", "required (a cluster the waypoint knows)");
    c->kind = authz::ExtAuthzConfig::Kind::Grpc;
    c->cluster = g.envoy_grpc().cluster_name();
    if (c->cluster.empty()) return fail(path + ".grpc_service.envoy_grpc.cluster_name", "required");
    c->authority = g.envoy_grpc().authority();
    if (g.has_timeout()) {
      if (auto st = duration(g.timeout(), path + ".grpc_service.timeout", c->timeout); !st)
        return make_error(st.error());
    }
  } else if (m.has_http_service()) {
    const auto& h = m.http_service();
    const std::string hp = path + ".http_service";
    c->kind = authz::ExtAuthzConfig::Kind::Http;
    if (!h.has_server_uri()) return fail(hp + ".server_uri", "required");
    c->cluster = h.server_uri().cluster();
    if (c->cluster.empty()) return fail(hp + ".server_uri.cluster", "required");
    if (h.server_uri().has_timeout()) {
      if (auto st = duration(h.server_uri().timeout(), hp + ".server_uri.timeout", c->timeout); !st)
        return make_error(st.error());
    }
    c->path_prefix = h.path_prefix();
    if (!c->path_prefix.empty() && c->path_prefix.front() != '/')
      return fail(hp + ".path_prefix", "must start with '/'");
    if (h.has_authorization_request()) {
      const auto& ar = h.authorization_request();
      if (ar.has_allowed_headers())
        return fail(hp + ".authorization_request.allowed_headers", "deprecated; use allowed_headers");
      for (int i = 0; i < ar.headers_to_add_size(); ++i) {
        const auto& hv = ar.headers_to_add(i);
        const std::string name = http::lower(hv.key());
        if (name.empty() || name.front() == ':')
          return fail(hp + ".authorization_request.headers_to_add[" + std::to_string(i) + "].key",
                      "a header name (not a pseudo-header) required");
        c->headers_to_add.emplace_back(name, hv.raw_value().empty() ? hv.value() : hv.raw_value());
      }
    }
    if (h.has_authorization_response()) {
      const auto& r = h.authorization_response();
      const std::string rp = hp + ".authorization_response";
      if (r.has_allowed_upstream_headers_to_append())
        return fail(rp + ".allowed_upstream_headers_to_append", "not implemented");
      if (r.has_dynamic_metadata_from_headers()) return fail(rp + ".dynamic_metadata_from_headers", "not implemented");
      if (auto st = list(r.allowed_upstream_headers(), rp + ".allowed_upstream_headers", c->allowed_upstream_headers);
          !st)
        return make_error(st.error());
      if (auto st = list(r.allowed_client_headers(), rp + ".allowed_client_headers", c->allowed_client_headers); !st)
        return make_error(st.error());
      if (auto st = list(r.allowed_client_headers_on_success(), rp + ".allowed_client_headers_on_success",
                         c->allowed_client_headers_on_success);
          !st)
        return make_error(st.error());
    }
  } else {
    return fail(path, "grpc_service or http_service required");
  }
  if (c->timeout.count() == 0) c->timeout = Duration(200);  // a zero timeout is Envoy's default
  c->stat_prefix = m.stat_prefix();
  c->stats = authz::ext_authz_stats_for(c->stat_prefix);
  return std::shared_ptr<const authz::ExtAuthzConfig>(std::move(c));
}

}  // namespace

common::Result<std::shared_ptr<const authz::ExtAuthzConfig>> convert_ext_authz(const google::protobuf::Any& any,
                                                                               const std::string& path) {
  ea::ExtAuthz m;
  if (!any.Is<ea::ExtAuthz>() || !any.UnpackTo(&m))
    return make_error(path + ": expected envoy.extensions.filters.http.ext_authz.v3.ExtAuthz, got " + any.type_url());
  return convert(m, path);
}

common::Result<std::shared_ptr<const authz::ExtAuthzConfig>> parse_ext_authz(std::string_view bytes) {
  ea::ExtAuthz m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error("ExtAuthz: not a valid protobuf message");
  return convert(m, "ext_authz");
}

}  // namespace waypoint::xds
