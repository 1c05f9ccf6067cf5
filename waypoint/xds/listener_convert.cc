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
    if (ctx.has_require_client_certificate() && ctx.require_client_certificate().value())
      return make_error(tp + ".typed_config.require_client_certificate: mutual TLS at the gateway is not supported");
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
