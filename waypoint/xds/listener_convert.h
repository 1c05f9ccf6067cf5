// Envoy v3 Listener -> GatewayListener (waypoint/ingress/listener_model.h), for the ingress
// gateway role. Accepted shape (what the controlplane and istiod write for a Gateway): a socket
// address with a port; filter chains each holding exactly one filter
// `envoy.filters.network.http_connection_manager` whose HttpConnectionManager names its routes
// by RDS over ADS; optionally a transport socket `envoy.transport_sockets.tls` with a
// DownstreamTlsContext naming one SDS certificate `kubernetes://<secret>` (the prefix is
// optional), SNI from filter_chain_match.server_names. A listener mixes no plaintext and TLS
// chains and has at most one plaintext chain. Anything else is an error naming the field;
// unknown fields are refused as everywhere (validate.h).
// Threading: pure functions.
#pragma once

#include <string_view>

#include "common/result.h"
#include "waypoint/ingress/listener_model.h"

namespace waypoint::xds {

inline constexpr std::string_view kListenerTypeUrl = "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr std::string_view kHcmFilterName = "envoy.filters.network.http_connection_manager";
inline constexpr std::string_view kTlsTransportSocketName = "envoy.transport_sockets.tls";

common::Result<GatewayListener> parse_listener(std::string_view resource_name, std::string_view bytes);

}  // namespace waypoint::xds
