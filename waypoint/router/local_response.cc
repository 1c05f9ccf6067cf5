// Redirects and direct responses built as Envoy's RouteEntryImplBase::newUri / sendLocalReply.
#include "waypoint/router/path_rewrite.h"
#include "waypoint/router/router.h"
#include "waypoint/router/strings.h"

namespace waypoint::router {

namespace {

// The request's host for the Location header. A port that is the default of the request's
// protocol is dropped when the scheme changes (so http://a:80 does not become https://a:80), and
// any port is dropped when the redirect sets its own.
std::string_view redirect_host(const HttpRequest& request, std::string_view request_protocol,
                               std::string_view new_scheme, bool new_port) {
  std::string_view host = request.authority;
  size_t sep = port_separator(host);
  if (sep == std::string_view::npos) return host;
  std::string_view port = host.substr(sep);
  bool remove = new_port;
  if (new_scheme != request_protocol) {
    remove |= request_protocol == "https" && port == ":443";
    remove |= request_protocol == "http" && port == ":80";
  }
  return remove ? host.substr(0, sep) : host;
}

}  // namespace

LocalResponse build_redirect(const RedirectAction& redirect, const RouteMatch& match, const HttpRequest& request) {
  // x-forwarded-proto is what the client used; inside HBONE :scheme is normally "http" too.
  std::string_view protocol = request.scheme.empty() ? std::string_view("http") : std::string_view(request.scheme);
  if (auto xfp = request.headers.get("x-forwarded-proto")) protocol = *xfp;
  std::string_view scheme = redirect.scheme.empty() ? protocol : std::string_view(redirect.scheme);

  std::string host =
      redirect.host.empty() ? std::string(redirect_host(request, protocol, scheme, redirect.port != 0)) : redirect.host;
  std::string port = redirect.port != 0 ? ":" + std::to_string(redirect.port) : std::string();

  std::string path;
  bool path_has_query = false;
  switch (redirect.path_kind) {
    case RedirectAction::PathKind::Keep:
      path = request.path;
      break;
    case RedirectAction::PathKind::PrefixRewrite:
      path = rewritten_path(match, redirect.path, std::nullopt, request);
      break;
    case RedirectAction::PathKind::RegexRewrite:
      path = rewritten_path(match, {}, redirect.regex_rewrite, request);
      break;
    case RedirectAction::PathKind::Path: {
      // A query in path_redirect wins over the request's and survives strip_query.
      path = redirect.path;
      path_has_query = redirect.path.find('?') != std::string::npos;
      if (!path_has_query) {
        size_t q = request.path.find('?');
        if (q != std::string::npos) path.append(request.path, q);
      }
      break;
    }
  }
  if (!path_has_query && redirect.strip_query) {
    size_t q = path.find('?');
    if (q != std::string::npos) path.resize(q);
  }

  LocalResponse r;
  r.status = redirect.response_code;
  std::string location;
  location.reserve(scheme.size() + 3 + host.size() + port.size() + path.size());
  location.append(scheme).append("://").append(host).append(port).append(path);
  r.headers.add("location", std::move(location));
  return r;
}

LocalResponse build_direct_response(const DirectResponseAction& direct) {
  LocalResponse r;
  r.status = direct.status;
  r.body = direct.body;
  if (!r.body.empty()) r.headers.add("content-type", "text/plain");
  return r;
}

}  // namespace waypoint::router
