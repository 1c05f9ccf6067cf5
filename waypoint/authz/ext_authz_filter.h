// The ext_authz filter's I/O for one request (ext_authz.h has the config): a check against the
// configured service over the worker's upstream connector (a mesh workload over HBONE,
// anything else plain), with Envoy's outcomes:
//   gRPC  envoy.service.auth.v3.Authorization/Check (hand-written codec, ext_authz_codec.h):
//         status OK -> forward, ok_response's headers set/appended on the request,
//         headers_to_remove removed, response_headers_to_add added to the client's response;
//         not OK -> the denied_response's status (default 403), body and headers to the client.
//   HTTP  the request's method, allowed headers (host, :method, :path, content-length,
//         authorization and allowed_headers' matches) and headers_to_add, path = path_prefix +
//         the original path, no body: 200 -> forward, allowed_upstream_headers' matches copied
//         onto the request (and x-envoy-auth-headers-to-remove honoured); 5xx = a failure; any
//         other status -> that status, body and the allowed_client_headers' matches to the client.
//   failure (connect, timeout, protocol, 5xx) -> status_on_error (default 403), or forward when
//         failure_mode_allow (counted as failure_mode_allowed).
// A refusal carries the response flag UAEX. Nothing blocks: the check is a coroutine on the
// request's worker, bounded by the config's timeout.
//
// Threading: the request's worker; only that worker's connector and balancer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string>

#include "waypoint/authz/authz_filter.h"
#include "waypoint/authz/ext_authz.h"
#include "waypoint/config_source.h"
#include "waypoint/http/message.h"

namespace waypoint {
struct FlowEnv;  // request_flow.h
}

namespace waypoint::authz {

struct ExtAuthzResult {
  bool reply = false;  // refuse with status/body/reply_headers (flag UAEX)
  uint16_t status = 0;
  std::string body;
  router::HeaderList reply_headers;
  router::HeaderList response_headers;  // allowed: added to the upstream's response
  std::string error;                    // why the call failed (logs); empty when it did not
};

// The effective ext_authz config: the route's typed_per_filter_config, else the virtual host's.
const ExtAuthzConfig* effective_ext_authz(const VirtualHost& vhost, const Route* route);

// Checks `request` (whose headers change when the service says so). `protocol` is the
// downstream's, for the CheckRequest.
boost::asio::awaitable<ExtAuthzResult> check_ext_authz(FlowEnv& env, const ConfigSnapshot& config,
                                                       const ExtAuthzConfig& c, router::HttpRequest& request,
                                                       const Downstream& downstream, http::Protocol protocol);

}  // namespace waypoint::authz
