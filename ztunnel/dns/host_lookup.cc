#include "ztunnel/dns/host_lookup.h"

#include <algorithm>
#include <random>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/net/socket_options.h"
#include "ztunnel/dns/message.h"

namespace ztunnel::dns {
namespace asio = boost::asio;
using asio::ip::udp;
using namespace asio::experimental::awaitable_operators;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::string lower_fqdn(std::string s) {
  while (!s.empty() && s.back() == '.') s.pop_back();
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

uint16_t random_id() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<uint16_t>(rng());
}

// A reply to our try: a response with our id and our question.
bool matches(const ParsedResponse& r, uint16_t id, const std::string& host, uint16_t qtype) {
  return r.header.qr() && r.header.id == id && r.question && r.question->name == host && r.question->qtype == qtype &&
         r.question->qclass == kClassIn;
}
}  // namespace

HostLookup::HostLookup(asio::any_io_executor ex, HostLookupOptions options)
    : ex_(std::move(ex)), opt_(std::move(options)) {}

std::chrono::steady_clock::time_point HostLookup::now() const {
  return opt_.now ? opt_.now() : std::chrono::steady_clock::now();
}

asio::awaitable<std::optional<std::vector<uint8_t>>> HostLookup::try_udp(const SocketAddr& server,
                                                                         const std::vector<uint8_t>& req, uint16_t id,
                                                                         const std::string& host, uint16_t qtype) {
  udp::socket s(ex_);
  const udp::endpoint ep(server.ip, server.port);
  boost::system::error_code ec;
  s.open(ep.protocol(), ec);
  if (ec) co_return std::nullopt;
  if (opt_.mark) {
    if (auto st = common::net::sockopt::set_mark(s.native_handle(), *opt_.mark); !st) {
      spdlog::warn("on-demand dns: query socket: {}", st.error());
      co_return std::nullopt;
    }
  }
  s.connect(ep, ec);  // connected: datagrams from anyone else are dropped by the kernel
  if (ec) co_return std::nullopt;
  auto [sec, sent] = co_await s.async_send(asio::buffer(req), kUseTuple);
  if (sec) co_return std::nullopt;
  std::vector<uint8_t> buf(kMaxUdpPayload);
  asio::steady_timer deadline(ex_);
  deadline.expires_after(opt_.timeout);
  for (;;) {
    auto r = co_await (s.async_receive(asio::buffer(buf), kUseTuple) || deadline.async_wait(kUseTuple));
    if (r.index() == 1) co_return std::nullopt;
    auto [rec, n] = std::get<0>(r);
    if (rec) co_return std::nullopt;  // e.g. ICMP port unreachable
    auto parsed = parse_response(std::span<const uint8_t>(buf.data(), n));
    if (parsed && matches(parsed.value(), id, host, qtype)) {
      buf.resize(n);
      co_return buf;
    }
  }
}

asio::awaitable<common::Result<HostLookup::Answer>> HostLookup::query(std::string host, uint16_t qtype) {
  const char* type = qtype == type::kA ? "A" : "AAAA";
  if (opt_.servers.empty()) co_return common::make_error("no nameserver configured (resolv.conf)");
  std::string last = "no answer from " + std::to_string(opt_.servers.size()) + " nameserver(s)";
  for (unsigned round = 0; round < std::max(1u, opt_.attempts); ++round) {
    for (const auto& server : opt_.servers) {
      const uint16_t id = random_id();
      auto req = build_query(id, host, qtype, true, kMaxUdpPayload);
      if (!req) co_return common::make_error(req.error());
      auto reply = co_await try_udp(server, req.value(), id, host, qtype);
      if (!reply) {
        last = std::string(type) + " query to " + server.to_string() + " timed out or failed";
        continue;
      }
      auto parsed = parse_response(*reply);
      if (!parsed) continue;  // matched above, so parses
      const Rcode rc = parsed.value().header.rcode();
      if (rc == Rcode::NxDomain) co_return common::make_error("NXDOMAIN from " + server.to_string());
      if (rc != Rcode::NoError) {
        last =
            std::string(type) + " query to " + server.to_string() + ": rcode " + std::to_string(static_cast<int>(rc));
        continue;
      }
      Answer a;
      std::optional<uint32_t> ttl;
      // A recursive server answers a CNAME chain with the final records in the same section.
      for (const auto& rec : parsed.value().answers) {
        if (rec.type != qtype || rec.rclass != kClassIn || !rec.address) continue;
        a.addresses.push_back(*rec.address);
        ttl = ttl ? std::min(*ttl, rec.ttl) : rec.ttl;
      }
      a.ttl = ttl.value_or(0);
      co_return a;  // NOERROR with no records of this type is an answer too (e.g. no AAAA)
    }
  }
  co_return common::make_error(last);
}

asio::awaitable<common::Result<HostAddresses>> HostLookup::resolve(std::string host_in) {
  const std::string host = lower_fqdn(std::move(host_in));
  if (host.empty()) co_return common::make_error("empty hostname");
  if (auto it = cache_.find(host); it != cache_.end()) {
    if (it->second.expires > now()) co_return HostAddresses{it->second.addresses, true};
    cache_.erase(it);
  }
  auto [a, aaaa] = co_await (query(host, type::kA) && query(host, type::kAaaa));
  HostAddresses out;
  std::optional<uint32_t> ttl;
  for (auto* r : {&a, &aaaa}) {
    if (!r->ok()) continue;
    for (const auto& ip : r->value().addresses) out.addresses.push_back(ip);
    if (!r->value().addresses.empty()) ttl = ttl ? std::min(*ttl, r->value().ttl) : r->value().ttl;
  }
  if (out.addresses.empty()) {
    std::string why = !a.ok() ? a.error() : !aaaa.ok() ? aaaa.error() : "no A or AAAA records";
    co_return common::make_error("dns lookup of " + host + " failed: " + why);
  }
  remember(host, out.addresses, ttl.value_or(0));
  co_return out;
}

void HostLookup::remember(const std::string& host, const std::vector<IpAddr>& addrs, uint32_t ttl) {
  if (ttl == 0 || opt_.max_entries == 0) return;
  const auto t = now();
  if (cache_.size() >= opt_.max_entries) {
    std::erase_if(cache_, [&](const auto& kv) { return kv.second.expires <= t; });
  }
  if (cache_.size() >= opt_.max_entries) {
    auto oldest = std::min_element(cache_.begin(), cache_.end(),
                                   [](const auto& x, const auto& y) { return x.second.expires < y.second.expires; });
    cache_.erase(oldest);
  }
  cache_[host] = Entry{addrs, t + std::chrono::seconds(ttl)};
}

std::optional<IpAddr> pick_resolved(const std::vector<IpAddr>& addrs, bool prefer_v6, uint64_t random) {
  std::vector<const IpAddr*> same, other;
  for (const auto& ip : addrs) (ip.is_v6() == prefer_v6 ? same : other).push_back(&ip);
  const auto& from = same.empty() ? other : same;
  if (from.empty()) return std::nullopt;
  return *from[random % from.size()];
}

}  // namespace ztunnel::dns
