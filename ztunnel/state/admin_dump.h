// Pieces of ztunnel's /config_dump rendered the way upstream ztunnel serialises them, so
// `istioctl ztunnel-config` decodes ours unchanged: certificates (base64 of the PEM, decimal
// serial numbers), the build "version" object, and a pod's "connections".
//
// Threading: pure functions over values; call from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/identity/secret_manager.h"
#include "ztunnel/proxy/proxy.h"

namespace ztunnel {

// Standard base64 (RFC 4648, padded): upstream's "pem" holds base64 of the PEM text.
std::string base64_encode(std::string_view bytes);
// A hexadecimal serial number (any case, no separators) in decimal, as upstream prints it
// and istioctl parses it (big.Int SetString base 10). "" for an empty or invalid input.
std::string decimal_serial(std::string_view hex);

// "certificates": [{identity, state, certChain:[{pem, serialNumber, validFrom,
// expirationTime}], rootCerts:[...]}]; a failed identity's state is "Unavailable: <why>".
nlohmann::json certificates_json(const std::vector<common::CertInfo>& infos);

// "version": {version, gitRevision, rustVersion (our compiler), buildProfile, buildStatus,
// gitTag, istioVersion, cryptoProvider}.
nlohmann::json version_json(std::string_view istio_version);

// "connections": {inbound: [{src, originalDst, actualDst, protocol}], outbound: [...]}.
nlohmann::json connections_json(const std::vector<ConnectionView>& conns);

}  // namespace ztunnel
