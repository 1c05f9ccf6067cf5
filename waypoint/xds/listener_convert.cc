#include "waypoint/xds/listener_convert.h"

#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "waypoint/xds/validate.h"

namespace waypoint::xds {

namespace listener = envoy::config::listener::v3;
namespace hcm = envoy::extensions::filters::network::http_connection_manager::v3;
namespace tls = envoy::extensions::transport_sockets::tls::v3;
using common::make_error;

namespace {

constexpr std::string_view kHcmType =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
constexpr std::string_view kTlsType =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

// The SDS name of a validation context: `kubernetes://<secret>` (istiod: `<credentialName>-cacert`)
// or `file-root:<absolute path>` (istiod, for a server's caCertificates).
std::string convert_ca_sds(const tls::SdsSecretConfig& sds, const std::string& path, ListenerChain& out) {
  const std::string& n = sds.name();
  if (n.starts_with("kubernetes://")) {
    std::string name = n.substr(13);
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      return path + ".name: '" + n + "' is not a Secret name";
    out.ca_credential = std::move(name);
    return "";
  }
  if (n.starts_with("file-root:") && n.size() > 11 && n[10] == '/') {
    out.ca_file = n.substr(10);
    return "";
  }
  return path + ".name: '" + n + "' is not supported (kubernetes://<secret> or file-root:<absolute path>)";
}

// Subject alt names: exact matches only (what Istio's subjectAltNames compile to).
std::string convert_sans(const tls::CertificateValidationContext& v, const std::string& path, ListenerChain& out) {
  if (v.has_trusted_ca())
    return path + ".trusted_ca: not supported (the gateway takes its CA by SDS name, as istiod writes it)";
  for (int i = 0; i < v.match_subject_alt_names_size(); ++i) {
    const auto& m = v.match_subject_alt_names(i);
    if (m.match_pattern_case() != m.kExact || m.ignore_case())
      return path + ".match_subject_alt_names[" + std::to_string(i) + "]: only exact, case-sensitive matches";
    out.client_sans.push_back(m.exact());
  }
  for (int i = 0; i < v.match_typed_subject_alt_names_size(); ++i) {
    const auto& t = v.match_typed_subject_alt_names(i);
    const std::string p = path + ".match_typed_subject_alt_names[" + std::to_string(i) + "]";
    if (t.san_type() == tls::SubjectAltNameMatcher::SAN_TYPE_UNSPECIFIED ||
        t.san_type() == tls::SubjectAltNameMatcher::OTHER_NAME)
      return p + ".san_type: EMAIL, DNS, URI or IP_ADDRESS is required";
    if (t.matcher().match_pattern_case() != t.matcher().kExact || t.matcher().ignore_case())
      return p + ".matcher: only exact, case-sensitive matches";
    // Istio's subjectAltNames accept a name of any type; typed matchers are kept as exact names.
    out.client_sans.push_back(t.matcher().exact());
  }
  return "";
}

// Client-certificate verification from the DownstreamTlsContext (Istio MUTUAL / OPTIONAL_MUTUAL).
std::string convert_validation(const tls::DownstreamTlsContext& ctx, const std::string& path, ListenerChain& out) {
  const auto& c = ctx.common_tls_context();
  const std::string cp = path + ".common_tls_context";
  out.require_client_cert = ctx.has_require_client_certificate() && ctx.require_client_certificate().value();
  std::string e;
  switch (c.validation_context_type_case()) {
    case tls::CommonTlsContext::kValidationContext:
      e = convert_sans(c.validation_context(), cp + ".validation_context", out);
      if (e.empty()) e = cp + ".validation_context: a CA by SDS name is required (combined_validation_context)";
      break;
    case tls::CommonTlsContext::kValidationContextSdsSecretConfig:
      e = convert_ca_sds(c.validation_context_sds_secret_config(), cp + ".validation_context_sds_secret_config", out);
      break;
    case tls::CommonTlsContext::kCombinedValidationContext: {
      const auto& cv = c.combined_validation_context();
      const std::string vp = cp + ".combined_validation_context";
      if (!cv.has_validation_context_sds_secret_config())
        e = vp + ".validation_context_sds_secret_config: required";
      if (e.empty())
        e = convert_ca_sds(cv.validation_context_sds_secret_config(), vp + ".validation_context_sds_secret_config", out);
      if (e.empty()) e = convert_sans(cv.default_validation_context(), vp + ".default_validation_context", out);
      break;
    }
    case tls::CommonTlsContext::VALIDATION_CONTEXT_TYPE_NOT_SET:
      if (out.require_client_cert)
        e = path + ".require_client_certificate: needs a validation context (the CA client certificates chain to)";
      break;
  }
  return e;
}

common::Result<ListenerChain> convert_chain(const listener::FilterChain& fc, const std::string& path) {
  ListenerChain out;
  for (const auto& n : fc.filter_chain_match().server_names()) {
    if (n.empty()) return make_error(path + ".filter_chain_match.server_names: empty name");
    out.server_names.push_back(n);
  }
  if (fc.filters_size() != 1)
    return make_error(path + ".filters: exactly one filter (" + std::string(kHcmFilterName) + ") is supported");
  const auto& f = fc.filters(0);
  if (f.name() != kHcmFilterName)
    return make_error(path + ".filters[0].name: '" + f.name() + "' is not supported (only " +
                      std::string(kHcmFilterName) + ")");
  if (f.typed_config().type_url() != kHcmType)
    return make_error(path + ".filters[0].typed_config: type '" + f.typed_config().type_url() + "' is not supported");
  hcm::HttpConnectionManager h;
  if (!f.typed_config().UnpackTo(&h))
    return make_error(path + ".filters[0].typed_config: not a valid HttpConnectionManager");
  if (auto bad = find_unsupported_field(h, path + ".filters[0].typed_config"); !bad.empty()) return make_error(bad);
  if (!h.has_rds() || h.rds().route_config_name().empty())
    return make_error(path + ".filters[0].typed_config.rds.route_config_name: required (routes come over RDS)");
  out.route_name = h.rds().route_config_name();
  if (fc.has_transport_socket()) {
    const auto& ts = fc.transport_socket();
    const std::string tp = path + ".transport_socket";
    if (ts.name() != kTlsTransportSocketName)
      return make_error(tp + ".name: '" + ts.name() + "' is not supported (only " +
                        std::string(kTlsTransportSocketName) + ")");
    if (ts.typed_config().type_url() != kTlsType)
      return make_error(tp + ".typed_config: type '" + ts.typed_config().type_url() + "' is not supported");
    tls::DownstreamTlsContext ctx;
    if (!ts.typed_config().UnpackTo(&ctx)) return make_error(tp + ".typed_config: not a valid DownstreamTlsContext");
    if (auto bad = find_unsupported_field(ctx, tp + ".typed_config"); !bad.empty()) return make_error(bad);
    if (auto e = convert_validation(ctx, tp + ".typed_config", out); !e.empty()) return make_error(e);
    const auto& sds = ctx.common_tls_context().tls_certificate_sds_secret_configs();
    if (sds.size() != 1)
      return make_error(tp +
                        ".typed_config.common_tls_context.tls_certificate_sds_secret_configs: exactly one is required");
    std::string name = sds[0].name();
    if (name.starts_with("kubernetes://")) name = name.substr(13);
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      return make_error(tp + ".typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name: '" +
                        sds[0].name() + "' is not a Secret name");
    out.credential_name = std::move(name);
  }
  return out;
}

}  // namespace

common::Result<GatewayListener> parse_listener(std::string_view resource_name, std::string_view bytes) {
  listener::Listener m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error("not a valid envoy.config.listener.v3.Listener");
  if (m.name() != resource_name) return make_error("listener.name '" + m.name() + "' differs from the resource name");
  if (auto bad = find_unsupported_field(m, "listener"); !bad.empty()) return make_error(bad);
  GatewayListener out;
  out.name = m.name();
  if (!m.address().has_socket_address()) return make_error("listener.address.socket_address: required");
  const auto& sa = m.address().socket_address();
  if (sa.port_value() == 0 || sa.port_value() > 65535)
    return make_error("listener.address.socket_address.port_value: a port in 1..65535 is required");
  out.address = sa.address();
  out.port = static_cast<uint16_t>(sa.port_value());
  if (m.filter_chains_size() == 0) return make_error("listener.filter_chains: at least one is required");
  size_t plain = 0;
  for (int i = 0; i < m.filter_chains_size(); ++i) {
    auto c = convert_chain(m.filter_chains(i), "listener.filter_chains[" + std::to_string(i) + "]");
    if (!c) return make_error(c.error());
    plain += c->credential_name.empty() ? 1 : 0;
    out.chains.push_back(std::move(*c));
  }
  if (plain > 1) return make_error("listener.filter_chains: more than one plaintext chain");
  if (plain == 1 && out.chains.size() > 1)
    return make_error("listener.filter_chains: plaintext and TLS chains on one port are not supported");
  return out;
}

}  // namespace waypoint::xds
