// The xDS type URLs of ztunnel's resources (ztunnel-facts §4): one definition shared by the
// converter (xds_convert.h) and the control plane's encoder (xds_resources.h), so a file may
// include both.
// Threading: constants only.
#pragma once

#include <string_view>

namespace ztunnel {

inline constexpr std::string_view kAddressTypeUrl = "type.googleapis.com/istio.workload.Address";
inline constexpr std::string_view kAuthorizationTypeUrl = "type.googleapis.com/istio.security.Authorization";

}  // namespace ztunnel
