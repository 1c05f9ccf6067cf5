// http_get: one HTTP/1.1 GET over http:// or https:// for the control plane's own fetches (the
// JWKS of a RequestAuthentication's jwksUri, OpenID discovery documents; jwks_resolver.h).
// https verifies the server certificate and host name with the system roots plus an optional
// extra CA. The whole exchange (resolve, connect, TLS, request, response) has one deadline and
// the body a size limit, so a slow or hostile server costs at most `timeout` and `max_bytes`.
// Only status 200 is a success; redirects are not followed.
//
// Beast and Asio stay in http_fetch.cc.
// Threading: a free function; each call has its own io_context and connection, so calls may
// run on several threads at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "common/result.h"

namespace controlplane {

struct HttpFetchOptions {
  std::chrono::milliseconds timeout{5000};  // istiod's JWKS fetch timeout
  size_t max_bytes = 1 << 20;
  std::string extra_ca_pem;  // trusted besides the system roots (https only)
};

// Parts of an http(s) URL; false when `url` is not one (the reason in `why`).
struct HttpUrl {
  bool tls = false;
  std::string host;  // without brackets for IPv6
  std::string port;  // "80"/"443" when absent
  std::string target;  // path + query, "/" when absent
};
bool parse_http_url(const std::string& url, HttpUrl& out, std::string& why);

// The body of a 200 response, or an error naming the URL and what failed.
common::Result<std::string> http_get(const std::string& url, const HttpFetchOptions& options);

}  // namespace controlplane
