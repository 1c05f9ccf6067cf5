#include "waypoint/xds/jwt_convert.h"

#include <google/protobuf/any.pb.h>
#include <algorithm>

#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb.h"
#include "waypoint/xds/validate.h"

namespace waypoint::xds {
namespace {

namespace jwt = envoy::extensions::filters::http::jwt_authn::v3;
using common::make_error;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

common::Result<std::shared_ptr<const authz::JwtConfig>> convert_jwt_authn(const google::protobuf::Any& any,
                                                                          const std::string& path) {
  jwt::JwtAuthentication cfg;
  if (!any.Is<jwt::JwtAuthentication>() || !any.UnpackTo(&cfg))
    return make_error(path + ": expected envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication, got " +
                      any.type_url());
  if (auto e = find_unsupported_field(cfg, path); !e.empty()) return make_error(e + ": rejected");
  if (cfg.providers().empty()) return make_error(path + ".providers: at least one provider required");
  auto out = std::make_shared<authz::JwtConfig>();
  std::vector<std::string> names;
  for (const auto& [name, p] : cfg.providers()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const auto& p = cfg.providers().at(name);
    const std::string pp = path + ".providers[" + name + "]";
    auto no = [&](const char* field, const std::string& why) { return make_error(pp + "." + field + ": " + why); };
    if (p.has_remote_jwks()) return no("remote_jwks", "not implemented; the control plane inlines the JWKS");
    if (!p.from_cookies().empty()) return no("from_cookies", "not implemented");
    if (!p.claim_to_headers().empty()) return no("claim_to_headers", "not implemented");
    if (!p.payload_in_metadata().empty()) return no("payload_in_metadata", "not implemented");
    if (p.pad_forward_payload_header()) return no("pad_forward_payload_header", "not implemented");
    if (p.issuer().empty()) return no("issuer", "required (the token's provider is chosen by issuer)");
    authz::JwtProvider out_p;
    out_p.name = name;
    out_p.issuer = p.issuer();
    out_p.audiences.assign(p.audiences().begin(), p.audiences().end());
    out_p.forward = p.forward();
    if (p.clock_skew_seconds() != 0) out_p.clock_skew_s = p.clock_skew_seconds();
    out_p.payload_header = lower(p.forward_payload_header());
    for (int i = 0; i < p.from_headers_size(); ++i) {
      if (p.from_headers(i).name().empty())
        return no(("from_headers[" + std::to_string(i) + "].name").c_str(), "required");
      out_p.from_headers.push_back({lower(p.from_headers(i).name()), p.from_headers(i).value_prefix()});
    }
    for (const auto& param : p.from_params()) {
      if (param.empty()) return no("from_params", "empty parameter name");
      out_p.from_params.push_back(param);
    }
    std::string jwks;
    if (p.local_jwks().has_inline_string()) {
      jwks = p.local_jwks().inline_string();
    } else if (p.local_jwks().has_inline_bytes()) {
      jwks = p.local_jwks().inline_bytes();
    } else {
      return no("local_jwks", "an inline JWKS (inline_string) is required");
    }
    auto keys = authz::parse_jwks(jwks);
    if (!keys) return no("local_jwks", keys.error());
    out_p.keys = std::move(*keys);
    out->providers.push_back(std::move(out_p));
  }
  return std::shared_ptr<const authz::JwtConfig>(std::move(out));
}

}  // namespace waypoint::xds
