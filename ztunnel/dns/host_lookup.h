// HostLookup: on-demand A/AAAA resolution of a workload's `hostname` (upstream's
// resolve_on_demand_dns: a ServiceEntry with resolution DNS gives workloads with a hostname and
// no addresses; the outbound path resolves the name when it picks such an endpoint).
//
// Like upstream (a system-configured stub resolver in ztunnel's own network namespace), the
// queries go to the nameservers of ztunnel's own resolv.conf, over UDP with EDNS (4096 bytes,
// so a truncated answer is not expected for address records and TCP is not tried). The name is
// taken as absolute: no search-list expansion (ServiceEntry hosts are fully qualified). Each
// server is tried in order, `attempts` rounds; a try that times out, fails, or answers
// SERVFAIL/REFUSED/NOTIMP moves on; NXDOMAIN ends the lookup. A and AAAA are asked for at once.
//
// Cache (upstream's resolver caches positive answers for their TTL): a successful answer is
// kept for the smallest TTL among its address records (0 = not kept), at most `max_entries`
// names (when full, expired entries are dropped, then the oldest-expiring one). Failures are
// not cached, so a name that comes back is used at once.
//
// Threading: one instance per worker io_context, used only from that thread (no locks; the
// cache is per worker). Lookups are coroutines on that executor; nothing blocks.
// Untrusted input: replies are parsed bounds-checked (message.h) and must match the query's id
// and question; anything else is ignored until the try's deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/model/model.h"
#include "common/result.h"

namespace ztunnel::dns {

struct HostLookupOptions {
  std::vector<SocketAddr> servers;          // empty: every lookup fails (naming the reason)
  std::chrono::milliseconds timeout{5000};  // per try
  unsigned attempts = 2;                    // rounds over `servers`
  std::optional<uint32_t> mark;             // SO_MARK on query sockets (PACKET_MARK)
  size_t max_entries = 1024;
  // Clock for cache expiry (tests); default steady_clock::now.
  std::function<std::chrono::steady_clock::time_point()> now;
};

struct HostAddresses {
  std::vector<IpAddr> addresses;  // A then AAAA records, as answered
  bool cached = false;            // served from the cache
};

class HostLookup {
 public:
  HostLookup(boost::asio::any_io_executor ex, HostLookupOptions options);

  // The addresses of `host`; an error (naming the host and why) when none.
  boost::asio::awaitable<common::Result<HostAddresses>> resolve(std::string host);

  size_t cache_size() const { return cache_.size(); }

 private:
  struct Answer {
    std::vector<IpAddr> addresses;
    uint32_t ttl = 0;
  };
  boost::asio::awaitable<common::Result<Answer>> query(std::string host, uint16_t qtype);
  boost::asio::awaitable<std::optional<std::vector<uint8_t>>> try_udp(const SocketAddr& server,
                                                                      const std::vector<uint8_t>& req, uint16_t id,
                                                                      const std::string& host, uint16_t qtype);
  std::chrono::steady_clock::time_point now() const;
  void remember(const std::string& host, const std::vector<IpAddr>& addrs, uint32_t ttl);

  boost::asio::any_io_executor ex_;
  HostLookupOptions opt_;
  struct Entry {
    std::vector<IpAddr> addresses;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, Entry> cache_;
};

// Upstream's choice among resolved addresses: a random one of the original destination's
// family, else a random one of the other family. nullopt when `addrs` is empty.
std::optional<IpAddr> pick_resolved(const std::vector<IpAddr>& addrs, bool prefer_v6, uint64_t random);

}  // namespace ztunnel::dns
