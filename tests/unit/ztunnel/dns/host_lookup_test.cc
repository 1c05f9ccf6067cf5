// On-demand DNS for hostname workloads (ztunnel/dns/host_lookup.h) against a real UDP DNS server
// in the test (its answers built with the proxy's own message code, its queries counted):
// A + AAAA, the TTL cache with a test clock, TTL 0, NXDOMAIN, failover past a silent server,
// a server that answers another id, and upstream's family choice (pick_resolved).
#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "ztunnel/dns/host_lookup.h"
#include "ztunnel/dns/message.h"

namespace asio = boost::asio;
using asio::ip::udp;
using namespace ztunnel;
using namespace ztunnel::dns;

namespace {

struct Zone {
  std::vector<std::string> a, aaaa;
  uint32_t ttl = 60;
  Rcode rcode = Rcode::NoError;
};

// One UDP DNS server on 127.0.0.1: answers from `zones`, counts the queries it got per name.
struct TestServer {
  udp::socket sock;
  std::map<std::string, Zone> zones;
  std::map<std::string, int> queries;
  bool wrong_id = false;  // answer with a different id (must be ignored)

  explicit TestServer(asio::io_context& io) : sock(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io, serve(), asio::detached);
  }
  SocketAddr addr() const { return SocketAddr{*parse_ip("127.0.0.1"), sock.local_endpoint().port()}; }

  asio::awaitable<void> serve() {
    std::vector<uint8_t> buf(4096);
    for (;;) {
      udp::endpoint from;
      auto [ec, n] = co_await sock.async_receive_from(asio::buffer(buf), from, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      auto q = parse_query(std::span<const uint8_t>(buf.data(), n));
      if (!q) continue;
      ++queries[q.value().question.name];
      std::vector<Answer> answers;
      ResponseOptions o;
      o.max_size = 4096;
      auto it = zones.find(q.value().question.name);
      if (it == zones.end()) {
        o.rcode = Rcode::NxDomain;
      } else {
        o.rcode = it->second.rcode;
        const auto& list = q.value().question.qtype == type::kA ? it->second.a : it->second.aaaa;
        for (const auto& ip : list) {
          answers.push_back(make_address_answer(q.value().question.wire_name, *parse_ip(ip), it->second.ttl));
        }
      }
      auto query = q.value();
      if (wrong_id) query.header.id ^= 0x5555;
      auto reply = build_response(query, answers, o);
      co_await sock.async_send_to(asio::buffer(reply), from, asio::as_tuple(asio::use_awaitable));
    }
  }
};

template <typename F>
void run(asio::io_context& io, F body) {
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await body();
        done = true;
        io.stop();
      },
      asio::detached);
  io.run_for(std::chrono::seconds(20));
  REQUIRE(done);
}

std::vector<std::string> strings(const std::vector<IpAddr>& v) {
  std::vector<std::string> out;
  for (const auto& ip : v) out.push_back(ip.to_string());
  return out;
}

}  // namespace

TEST_CASE("A and AAAA answers, cached for the smallest TTL", "[host_lookup]") {
  asio::io_context io;
  TestServer server(io);
  server.zones["db.example.com"] = Zone{{"10.1.2.3", "10.1.2.4"}, {"fd00::7"}, 30};
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  HostLookupOptions o;
  o.servers = {server.addr()};
  o.now = [&] { return t; };
  HostLookup lookup(io.get_executor(), o);
  run(io, [&]() -> asio::awaitable<void> {
    auto r = co_await lookup.resolve("DB.Example.com.");  // case and trailing dot do not matter
    REQUIRE(r.ok());
    CHECK(strings(r.value().addresses) == std::vector<std::string>{"10.1.2.3", "10.1.2.4", "fd00::7"});
    CHECK_FALSE(r.value().cached);
    CHECK(server.queries["db.example.com"] == 2);  // one A, one AAAA
    auto again = co_await lookup.resolve("db.example.com");
    REQUIRE(again.ok());
    CHECK(again.value().cached);
    CHECK(server.queries["db.example.com"] == 2);
    // Past the TTL the name is asked again, and the new answer is used.
    server.zones["db.example.com"].a = {"10.9.9.9"};
    t += std::chrono::seconds(31);
    auto later = co_await lookup.resolve("db.example.com");
    REQUIRE(later.ok());
    CHECK_FALSE(later.value().cached);
    CHECK(strings(later.value().addresses) == std::vector<std::string>{"10.9.9.9", "fd00::7"});
    CHECK(server.queries["db.example.com"] == 4);
  });
}

TEST_CASE("TTL 0 is not cached; failures are not cached", "[host_lookup]") {
  asio::io_context io;
  TestServer server(io);
  server.zones["zero.example"] = Zone{{"10.0.0.1"}, {}, 0};
  server.zones["empty.example"] = Zone{{}, {}, 60};
  HostLookupOptions o;
  o.servers = {server.addr()};
  HostLookup lookup(io.get_executor(), o);
  run(io, [&]() -> asio::awaitable<void> {
    auto a = co_await lookup.resolve("zero.example");
    auto b = co_await lookup.resolve("zero.example");
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK_FALSE(b.value().cached);
    CHECK(server.queries["zero.example"] == 4);
    auto nx = co_await lookup.resolve("missing.example");
    REQUIRE_FALSE(nx.ok());
    CHECK_THAT(nx.error(), Catch::Contains("missing.example") && Catch::Contains("NXDOMAIN"));
    auto none = co_await lookup.resolve("empty.example");
    REQUIRE_FALSE(none.ok());
    CHECK_THAT(none.error(), Catch::Contains("no A or AAAA records"));
    // The name appears: the next lookup sees it (nothing negative was cached).
    server.zones["missing.example"] = Zone{{"10.0.0.2"}, {}, 60};
    auto now_there = co_await lookup.resolve("missing.example");
    REQUIRE(now_there.ok());
    CHECK(strings(now_there.value().addresses) == std::vector<std::string>{"10.0.0.2"});
    CHECK(lookup.cache_size() == 1);
  });
}

TEST_CASE("a silent server, SERVFAIL or a reply with another id moves on to the next server", "[host_lookup]") {
  asio::io_context io;
  udp::socket silent(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));  // never answers
  TestServer failing(io), spoofing(io), good(io);
  failing.zones["svc.example"] = Zone{{"10.0.0.66"}, {}, 60, Rcode::ServFail};
  spoofing.zones["svc.example"] = Zone{{"10.0.0.66"}, {}, 60};
  spoofing.wrong_id = true;
  good.zones["svc.example"] = Zone{{"10.0.0.5"}, {}, 60};
  HostLookupOptions o;
  o.servers = {SocketAddr{*parse_ip("127.0.0.1"), silent.local_endpoint().port()}, failing.addr(), spoofing.addr(),
               good.addr()};
  o.timeout = std::chrono::milliseconds(200);
  o.attempts = 1;
  HostLookup lookup(io.get_executor(), o);
  run(io, [&]() -> asio::awaitable<void> {
    auto r = co_await lookup.resolve("svc.example");
    INFO((r.ok() ? std::string() : r.error()));
    REQUIRE(r.ok());
    CHECK(strings(r.value().addresses) == std::vector<std::string>{"10.0.0.5"});
    CHECK(failing.queries["svc.example"] == 2);
    CHECK(spoofing.queries["svc.example"] == 2);
  });
}

TEST_CASE("no nameserver: the lookup fails with a reason", "[host_lookup]") {
  asio::io_context io;
  HostLookup lookup(io.get_executor(), HostLookupOptions{});
  run(io, [&]() -> asio::awaitable<void> {
    auto r = co_await lookup.resolve("x.example");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("no nameserver"));
  });
}

TEST_CASE("pick_resolved: the original destination's family first, else the other", "[host_lookup]") {
  const std::vector<IpAddr> both = {*parse_ip("10.0.0.1"), *parse_ip("10.0.0.2"), *parse_ip("fd00::1")};
  std::set<std::string> v4;
  for (uint64_t r = 0; r < 4; ++r) v4.insert(pick_resolved(both, false, r)->to_string());
  CHECK(v4 == std::set<std::string>{"10.0.0.1", "10.0.0.2"});  // random among the matching family
  CHECK(pick_resolved(both, true, 7)->to_string() == "fd00::1");
  const std::vector<IpAddr> only_v4 = {*parse_ip("10.0.0.1")};
  CHECK(pick_resolved(only_v4, true, 3)->to_string() == "10.0.0.1");
  CHECK_FALSE(pick_resolved({}, false, 0));
}
