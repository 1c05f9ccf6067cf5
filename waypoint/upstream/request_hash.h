// The request hash for RING_HASH / MAGLEV clusters, from the route's hash_policy list as Envoy
// computes it: policies in order, each producing a 64-bit xxHash of its input
//   header          the header's values (joined by ","), absent header = no hash;
//   cookie          the cookie's value; absent + ttl set = a new cookie is generated (returned
//                   as the Set-Cookie value `name="v"; Max-Age=N; Path=p; HttpOnly`, added to
//                   the response) and hashed; absent without ttl = no hash;
//   source IP       the downstream client's address as the waypoint sees it (the HBONE
//                   Forwarded for= address), without the port;
//   query parameter the first value of the parameter;
// combined as h = rotl(h, 1) ^ next, stopping after a `terminal` policy that produced a hash.
// No hash at all -> nullopt (the load balancer then picks at random, as Envoy).
// Threading: pure function of its inputs.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "waypoint/route_model.h"
#include "waypoint/router/http_message.h"

namespace waypoint::upstream {

struct RequestHash {
  std::optional<uint64_t> hash;
  std::string set_cookie;  // non-empty: add to the response as `set-cookie`
};

// `source_ip`: "ip", "ip:port" or "[v6]:port"; `random`: seeds a generated cookie value.
RequestHash compute_request_hash(std::span<const HashPolicy> policies, const router::HttpRequest& req,
                                 std::string_view source_ip, uint64_t random);

// The value of cookie `name` in the request's Cookie header(s) (quotes stripped).
std::optional<std::string> cookie_value(const router::HttpRequest& req, std::string_view name);

}  // namespace waypoint::upstream
