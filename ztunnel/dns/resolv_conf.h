// resolv.conf parsing for the DNS proxy's upstream forwarding (resolv.conf(5) subset).
//
// In shared (node) mode upstream ztunnel forwards names it does not own to the resolvers of
// ztunnel's *own* /etc/resolv.conf (the node's or the DaemonSet pod's DNS), not the client
// pod's; this reads that file once at startup.
//
// Understood: `nameserver <ip>` (first 3, as glibc's MAXNS; IPv6 link-local zone ids are not
// supported and such lines are skipped), `search <d>...` and `domain <d>` (last one wins, as
// glibc), `options ndots:N timeout:N attempts:N` (glibc caps: ndots 15, timeout 30, attempts 5).
// Comments start with '#' or ';'. Unknown keywords and options are ignored.
//
// Threading: pure functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/model/model.h"

namespace ztunnel::dns {

struct ResolvConf {
  std::vector<SocketAddr> nameservers;  // port 53
  std::vector<std::string> search;      // lower-case, no trailing dot
  unsigned ndots = 1;
  std::chrono::seconds timeout{5};  // per try, per server
  unsigned attempts = 2;            // rounds over the server list
};

// Fails when the text names no usable nameserver: a DNS proxy with nowhere to forward would
// silently SERVFAIL every external name, so the caller should refuse to start instead.
common::Result<ResolvConf> parse_resolv_conf(std::string_view text);
common::Result<ResolvConf> load_resolv_conf(const std::string& path = "/etc/resolv.conf");

}  // namespace ztunnel::dns
