// hbone::sockopt is common::net::sockopt: the socket helpers are not HBONE-specific and live
// in common/net. This alias keeps the proxies' spelling while other branches still use it.
#pragma once

#include "common/net/socket_options.h"

namespace hbone {
namespace sockopt = common::net::sockopt;
}  // namespace hbone
