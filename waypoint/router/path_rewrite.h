// Path rewriting shared by route actions (apply_rewrites) and redirects (build_redirect).
// Internal to waypoint/router/. Pure function; reads only its arguments.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "waypoint/route_model.h"
#include "waypoint/router/http_message.h"

namespace waypoint::router {

// The request's :path after regex_rewrite (on the path without query; query kept) or, if none,
// prefix_rewrite (replacing the matched prefix, or the whole path for exact/regex routes). Returns
// the path unchanged when neither is set.
std::string rewritten_path(const RouteMatch& match, std::string_view prefix_rewrite,
                           const std::optional<RegexRewrite>& regex_rewrite, const HttpRequest& request);

}  // namespace waypoint::router
