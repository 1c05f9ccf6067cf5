// DNS proxy: wire codec, resolv.conf parsing, local resolution rules, and a real DnsProxy on
// loopback (UDP + TCP) in front of a fake upstream resolver written here.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <set>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "ztunnel/dns/message.h"
#include "common/net/socket_options.h"
#include "ztunnel/dns/proxy.h"
#include "ztunnel/dns/resolv_conf.h"
#include "ztunnel/dns/resolve.h"

using namespace ztunnel;
using namespace ztunnel::dns;
namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;

namespace {

IpAddr ip(const char* s) {
  return *parse_ip(s);
}

std::span<const uint8_t> bytes(const std::vector<uint8_t>& v) {
  return {v.data(), v.size()};
}

std::vector<uint8_t> query_bytes(uint16_t id, std::string_view name, uint16_t qtype,
                                 std::optional<uint16_t> edns = std::nullopt) {
  auto q = build_query(id, name, qtype, true, edns);
  REQUIRE(q.ok());
  return *q;
}

std::set<std::string> addresses_of(const ParsedResponse& r) {
  std::set<std::string> out;
  for (const auto& a : r.answers) {
    if (a.address) out.insert(a.address->to_string());
  }
  return out;
}

// ---- a small mesh ----

Service service(std::string ns, std::string name, std::string host, std::vector<const char*> vips) {
  Service s;
  s.ns = std::move(ns);
  s.name = std::move(name);
  s.hostname = std::move(host);
  for (const char* v : vips) s.vips.push_back(NetworkAddress{"", ip(v)});
  s.ports.set(80, 8080);
  return s;
}

Workload pod(std::string ns, std::string name, std::vector<const char*> ips, std::string svc_key) {
  Workload w;
  w.uid = "c//v1/Pod/" + ns + "/" + name;
  w.ns = std::move(ns);
  w.name = std::move(name);
  for (const char* a : ips) w.addresses.push_back(ip(a));
  w.tunnel_protocol = TunnelProtocol::Hbone;
  if (!svc_key.empty()) w.services[svc_key] = PortMap{};
  return w;
}

SnapshotConstSharedPtr mesh() {
  std::vector<Service> services;
  services.push_back(service("default", "echo", "echo.default.svc.cluster.local", {"10.96.0.10", "fd00::10"}));
  services.push_back(service("other", "echo", "echo.other.svc.cluster.local", {"10.96.0.20"}));
  services.push_back(service("other", "only-v4", "v4.other.svc.cluster.local", {"10.96.0.30"}));
  // Same ServiceEntry-like host in two namespaces: the client's own namespace must win.
  services.push_back(service("other", "api", "api.example.com", {"240.240.0.2"}));
  services.push_back(service("default", "api", "api.example.com", {"240.240.0.1"}));
  services.push_back(service("default", "wild", "*.wild.example", {"240.240.0.3"}));
  // DNS-resolved (no VIP, not a Kubernetes host): must be forwarded.
  services.push_back(service("default", "ext", "dns-resolved.example.com", {}));
  // Headless Kubernetes service: endpoint IPs.
  services.push_back(service("default", "db", "db.default.svc.cluster.local", {}));
  // Service on another network: its VIP is not callable from the client's network.
  Service remote = service("default", "remote", "remote.default.svc.cluster.local", {});
  remote.vips.push_back(NetworkAddress{"net2", ip("10.200.0.1")});
  services.push_back(remote);
  // Many VIPs: an A answer larger than 512 bytes.
  Service big = service("default", "big", "big.default.svc.cluster.local", {});
  for (int i = 1; i <= 40; ++i) {
    big.vips.push_back(NetworkAddress{"", ip(("10.97.0." + std::to_string(i)).c_str())});
  }
  services.push_back(big);

  std::vector<Workload> workloads;
  workloads.push_back(pod("default", "db-0", {"10.1.0.1", "fd01::1"}, "default/db.default.svc.cluster.local"));
  workloads.push_back(pod("default", "db-1", {"10.1.0.2"}, "default/db.default.svc.cluster.local"));
  workloads.push_back(pod("default", "client", {"10.1.0.9"}, ""));
  return Snapshot::build(std::move(workloads), std::move(services), {});
}

ResolveContext client_ctx() {
  ResolveContext c;
  c.client_ns = "default";
  return c;
}

Question question(std::string_view name, uint16_t qtype) {
  auto q = parse_query(bytes(query_bytes(1, name, qtype)));
  REQUIRE(q.ok());
  return q->question;
}

}  // namespace

// ===================== codec =====================

TEST_CASE("query round trip keeps id, name, type and EDNS size", "[dns]") {
  auto q = parse_query(bytes(query_bytes(0xBEEF, "Echo.Default.svc.cluster.local.", type::kAaaa, 1232)));
  REQUIRE(q.ok());
  CHECK(q->header.id == 0xBEEF);
  CHECK(q->header.rd());
  CHECK(q->question.name == "echo.default.svc.cluster.local");  // lower-cased for lookups
  CHECK(q->question.qtype == type::kAaaa);
  CHECK(q->question.qclass == kClassIn);
  REQUIRE(q->edns_udp_size);
  CHECK(*q->edns_udp_size == 1232);
  // Original case kept for the echo.
  CHECK(q->question.wire_name[1] == 'E');

  auto resp = build_response(*q, {make_address_answer(q->question.wire_name, ip("fd00::10"))},
                             ResponseOptions{.authoritative = true, .max_size = 1232, .include_opt = true});
  auto r = parse_response(bytes(resp));
  REQUIRE(r.ok());
  CHECK(r->header.id == 0xBEEF);
  CHECK(r->header.qr());
  CHECK((r->header.flags & flag::kAa) != 0);
  CHECK(r->header.rcode() == Rcode::NoError);
  CHECK(r->header.arcount == 1);
  REQUIRE(r->answers.size() == 1);
  CHECK(r->answers[0].name == "echo.default.svc.cluster.local");
  CHECK(r->answers[0].ttl == kDefaultTtl);
  CHECK(r->answers[0].address == ip("fd00::10"));
}

TEST_CASE("EDNS size is clamped to [512, 4096]", "[dns]") {
  CHECK(*parse_query(bytes(query_bytes(1, "a", type::kA, 100)))->edns_udp_size == 512);
  CHECK(*parse_query(bytes(query_bytes(1, "a", type::kA, 65000)))->edns_udp_size == 4096);
  CHECK_FALSE(parse_query(bytes(query_bytes(1, "a", type::kA)))->edns_udp_size);
}

TEST_CASE("names: compression pointers are followed, loops and forward pointers rejected", "[dns]") {
  // header(12) | 3foo7example3com0 @12 | 3bar + ptr(16 = "example") @29
  std::vector<uint8_t> m(12, 0);
  auto foo = *encode_name("foo.example.com");
  m.insert(m.end(), foo.begin(), foo.end());
  const size_t bar_at = m.size();
  m.insert(m.end(), {3, 'b', 'a', 'r', 0xC0, 16});
  size_t end = 0;
  auto n = read_name(bytes(m), bar_at, end);
  REQUIRE(n.ok());
  CHECK(*n == "bar.example.com");
  CHECK(end == m.size());

  // Pointer to itself.
  std::vector<uint8_t> loop(12, 0);
  loop.insert(loop.end(), {0xC0, 12});
  CHECK_FALSE(read_name(bytes(loop), 12, end).ok());
  // Forward pointer.
  std::vector<uint8_t> fwd(12, 0);
  fwd.insert(fwd.end(), {0xC0, 14, 0});
  CHECK_FALSE(read_name(bytes(fwd), 12, end).ok());
  // Two pointers bouncing through a label ("abc" at 12, pointer at 16 back to 12 -> loops
  // through labels until the 255 limit) must fail, not hang.
  std::vector<uint8_t> bounce(12, 0);
  bounce.insert(bounce.end(), {3, 'a', 'b', 'c', 0xC0, 12});
  CHECK_FALSE(read_name(bytes(bounce), 12, end).ok());
  // Reserved label types 01/10.
  std::vector<uint8_t> ext(12, 0);
  ext.insert(ext.end(), {0x41, 'a', 0});
  CHECK_FALSE(read_name(bytes(ext), 12, end).ok());
}

TEST_CASE("odd octets in labels never look like hostnames", "[dns]") {
  std::vector<uint8_t> m(12, 0);
  m.insert(m.end(), {3, 'a', '.', 'b', 4, 'e', 'c', 'h', 'o', 0});
  size_t end = 0;
  auto n = read_name(bytes(m), 12, end);
  REQUIRE(n.ok());
  CHECK(*n == "a\\046b.echo");
}

TEST_CASE("malformed queries are errors, never crashes", "[dns]") {
  const auto good = query_bytes(7, "echo.default", type::kA, 1232);
  SECTION("every truncation of a valid query fails cleanly") {
    for (size_t n = 0; n < good.size(); ++n) {
      std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<ptrdiff_t>(n));
      CHECK_FALSE(parse_query(bytes(cut)).ok());
    }
    CHECK(parse_query(bytes(good)).ok());
  }
  SECTION("a response is not a query") {
    auto m = good;
    m[2] |= 0x80;
    CHECK_FALSE(parse_query(bytes(m)).ok());
    CHECK_FALSE(build_error_from_raw(bytes(m), Rcode::FormErr));  // never answer a response
  }
  SECTION("question count must be 1") {
    auto m = good;
    m[5] = 0;
    CHECK_FALSE(parse_query(bytes(m)).ok());
    m[5] = 2;
    CHECK_FALSE(parse_query(bytes(m)).ok());
  }
  SECTION("two OPT records") {
    auto m = good;
    m[11] = 2;
    m.insert(m.end(), {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0});
    CHECK_FALSE(parse_query(bytes(m)).ok());
  }
  SECTION("rdata longer than the message") {
    auto m = good;
    m[m.size() - 1] = 5;  // OPT rdlength 5, no bytes follow
    CHECK_FALSE(parse_query(bytes(m)).ok());
  }
  SECTION("name over 255 octets") {
    std::vector<uint8_t> m(12, 0);
    m[5] = 1;
    for (int i = 0; i < 5; ++i) {
      m.push_back(60);
      m.insert(m.end(), 60, 'x');
    }
    m.push_back(0);
    m.insert(m.end(), {0, 1, 0, 1});
    CHECK_FALSE(parse_query(bytes(m)).ok());
  }
  SECTION("FORMERR reply keeps the id") {
    std::vector<uint8_t> junk = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0};
    auto e = build_error_from_raw(bytes(junk), Rcode::FormErr);
    REQUIRE(e);
    auto h = parse_header(bytes(*e));
    CHECK(h->id == 0x1234);
    CHECK(h->qr());
    CHECK(h->rcode() == Rcode::FormErr);
    CHECK_FALSE(build_error_from_raw(std::span<const uint8_t>(junk.data(), 5), Rcode::FormErr));
  }
}

TEST_CASE("encode_name enforces label and name limits", "[dns]") {
  CHECK(encode_name("").ok());
  CHECK(*encode_name(".") == std::vector<uint8_t>{0});
  CHECK_FALSE(encode_name("a..b").ok());
  CHECK_FALSE(encode_name(std::string(64, 'a')).ok());
  CHECK(encode_name(std::string(63, 'a')).ok());
  std::string long_name;
  for (int i = 0; i < 4; ++i) long_name += std::string(63, 'a') + ".";
  CHECK_FALSE(encode_name(long_name).ok());
}

TEST_CASE("answers over 512 bytes set TC without EDNS", "[dns]") {
  auto q = *parse_query(bytes(query_bytes(9, "big.default.svc.cluster.local", type::kA)));
  std::vector<Answer> answers;
  for (int i = 0; i < 40; ++i) answers.push_back(make_address_answer(q.question.wire_name, ip("10.0.0.1")));
  auto small = build_response(q, answers, ResponseOptions{.max_size = 512});
  CHECK(small.size() <= 512);
  auto r = *parse_response(bytes(small));
  CHECK(r.header.tc());
  CHECK(r.answers.empty());
  auto large = build_response(q, answers, ResponseOptions{.max_size = 65535});
  auto r2 = *parse_response(bytes(large));
  CHECK_FALSE(r2.header.tc());
  CHECK(r2.answers.size() == 40);
}

TEST_CASE("query type labels are bounded", "[dns]") {
  CHECK(query_type_label(type::kA) == "a");
  CHECK(query_type_label(type::kAaaa) == "aaaa");
  CHECK(query_type_label(type::kSrv) == "srv");
  CHECK(query_type_label(12345) == "unknown");
}

// ===================== resolv.conf =====================

TEST_CASE("resolv.conf parsing", "[dns]") {
  auto c = parse_resolv_conf(
      "# comment\n"
      "nameserver 10.96.0.10\n"
      "nameserver fe80::1%eth0\n"  // zone ids unsupported: skipped
      "nameserver ::1 ; trailing comment\n"
      "search Default.svc.cluster.local svc.cluster.local. cluster.local\n"
      "options ndots:5 timeout:2 attempts:3 rotate\n");
  REQUIRE(c.ok());
  REQUIRE(c->nameservers.size() == 2);
  CHECK(c->nameservers[0] == SocketAddr{ip("10.96.0.10"), 53});
  CHECK(c->nameservers[1].ip == ip("::1"));
  CHECK(c->search == std::vector<std::string>{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"});
  CHECK(c->ndots == 5);
  CHECK(c->timeout == std::chrono::seconds(2));
  CHECK(c->attempts == 3);

  auto none = parse_resolv_conf("search example.com\n");
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(none.error(), Catch::Contains("no nameserver"));
  CHECK_FALSE(parse_resolv_conf("nameserver bogus\n").ok());
  CHECK_FALSE(load_resolv_conf("/nonexistent/resolv.conf").ok());
  // glibc keeps at most three.
  CHECK(parse_resolv_conf("nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\nnameserver 1.1.1.4\n")
            ->nameservers.size() == 3);
}

// ===================== local resolution =====================

TEST_CASE("search expansion from the client's namespace", "[dns]") {
  HostnameIndex index(mesh());
  const auto ctx = client_ctx();
  for (const char* name : {"echo", "echo.default", "echo.default.svc", "echo.default.svc.cluster.local"}) {
    INFO(name);
    auto a = resolve_local(index, ctx, question(name, type::kA), 1);
    REQUIRE(a);
    REQUIRE(a->answers.size() == 1);
    CHECK(a->answers[0].type == type::kA);
    // Owner = the name asked (no CNAME when nothing was stripped).
    CHECK(a->answers[0].wire_name == *encode_name(name));
  }
  // Another namespace by short forms, but a bare name means the client's own namespace.
  auto other = resolve_local(index, ctx, question("echo.other", type::kA), 1);
  REQUIRE(other);
  CHECK(other->answers.at(0).rdata == std::vector<uint8_t>{10, 96, 0, 20});
  CHECK_FALSE(resolve_local(index, ctx, question("v4", type::kA), 1));
  CHECK(resolve_local(index, ctx, question("v4.other", type::kA), 1));
}

TEST_CASE("a search domain appended by the client is stripped with a CNAME", "[dns]") {
  HostnameIndex index(mesh());
  auto a = resolve_local(index, client_ctx(), question("echo.other.default.svc.cluster.local", type::kA), 1);
  REQUIRE(a);
  REQUIRE(a->answers.size() == 2);
  CHECK(a->answers[0].type == type::kCname);
  CHECK(a->answers[0].rdata == *encode_name("echo.other"));
  CHECK(a->answers[1].wire_name == *encode_name("echo.other"));
  CHECK(a->answers[1].rdata == std::vector<uint8_t>{10, 96, 0, 20});
}

TEST_CASE("families, headless, wildcard, namespaces, networks", "[dns]") {
  HostnameIndex index(mesh());
  const auto ctx = client_ctx();
  SECTION("AAAA returns the v6 VIP; v4-only service gives NODATA") {
    auto a = resolve_local(index, ctx, question("echo", type::kAaaa), 1);
    REQUIRE(a);
    REQUIRE(a->answers.size() == 1);
    CHECK(a->answers[0].type == type::kAaaa);
    auto none = resolve_local(index, ctx, question("v4.other", type::kAaaa), 1);
    REQUIRE(none);
    CHECK(none->answers.empty());
  }
  SECTION("same host in two namespaces: the client's wins") {
    auto a = resolve_local(index, ctx, question("api.example.com", type::kA), 1);
    REQUIRE(a);
    CHECK(a->answers.at(0).rdata == std::vector<uint8_t>{240, 240, 0, 1});
    ResolveContext elsewhere = ctx;
    elsewhere.client_ns = "other";
    auto b = resolve_local(index, elsewhere, question("api.example.com", type::kA), 1);
    CHECK(b->answers.at(0).rdata == std::vector<uint8_t>{240, 240, 0, 2});
  }
  SECTION("wildcard host") {
    auto a = resolve_local(index, ctx, question("x.wild.example", type::kA), 1);
    REQUIRE(a);
    CHECK(a->answers.at(0).rdata == std::vector<uint8_t>{240, 240, 0, 3});
    CHECK_FALSE(resolve_local(index, ctx, question("wild.example", type::kA), 1));
  }
  SECTION("headless service returns endpoint IPs; pod host returns that pod") {
    auto a = resolve_local(index, ctx, question("db", type::kA), 1);
    REQUIRE(a);
    std::set<std::vector<uint8_t>> got;
    for (const auto& r : a->answers) got.insert(r.rdata);
    CHECK(got == std::set<std::vector<uint8_t>>{{10, 1, 0, 1}, {10, 1, 0, 2}});
    auto v6 = resolve_local(index, ctx, question("db", type::kAaaa), 1);
    CHECK(v6->answers.size() == 1);
    auto p = resolve_local(index, ctx, question("db-1.db.default.svc.cluster.local", type::kA), 1);
    REQUIRE(p);
    REQUIRE(p->answers.size() == 1);
    CHECK(p->answers[0].rdata == std::vector<uint8_t>{10, 1, 0, 2});
  }
  SECTION("forwarded: unknown names, VIP-less non-Kubernetes hosts, other types") {
    CHECK_FALSE(resolve_local(index, ctx, question("example.org", type::kA), 1));
    CHECK_FALSE(resolve_local(index, ctx, question("dns-resolved.example.com", type::kA), 1));
    CHECK_FALSE(resolve_local(index, ctx, question("echo", type::kTxt), 1));
    CHECK_FALSE(resolve_local(index, ctx, question("nope.default.svc.cluster.local", type::kA), 1));
  }
  SECTION("VIPs on another network are not returned") {
    auto a = resolve_local(index, ctx, question("remote", type::kA), 1);
    REQUIRE(a);
    CHECK(a->answers.empty());
    ResolveContext net2 = ctx;
    net2.client_network = "net2";
    CHECK(resolve_local(index, net2, question("remote", type::kA), 1)->answers.size() == 1);
  }
  SECTION("custom cluster domain") {
    ResolveContext c = ctx;
    c.cluster_domain = "corp.internal";
    CHECK_FALSE(resolve_local(index, c, question("echo", type::kA), 1));
    CHECK(resolve_local(index, c, question("echo.default.svc.cluster.local", type::kA), 1));
  }
}

TEST_CASE("shared index follows the snapshot", "[dns]") {
  auto s1 = mesh();
  auto i1 = HostnameIndex::shared_index(s1);
  CHECK(HostnameIndex::shared_index(s1) == i1);
  auto s2 = mesh();
  auto i2 = HostnameIndex::shared_index(s2);
  CHECK(i2 != i1);
  CHECK(&i2->snapshot() == s2.get());
}

// ===================== DnsProxy on loopback =====================

namespace {

// Fake upstream resolver on 127.0.0.1 (UDP + TCP, same port). Knows "external.test" (A
// 93.184.216.34), answers "servfail.test" with SERVFAIL, "big.test" with 40 A records (TC over
// UDP without EDNS, like a real server), everything else NXDOMAIN. Counts what it saw.
class FakeUpstream {
 public:
  // UDP and TCP on the same port, like a real resolver on 53 (the proxy forwards TCP queries
  // to the port of the upstream's address).
  explicit FakeUpstream(asio::io_context& io) : udp_(io), tcp_(io) {
    for (int i = 0; i < 20 && !tcp_.is_open(); ++i) {
      boost::system::error_code ec;
      if (udp_.is_open()) udp_.close();
      udp_.open(udp::v4());
      udp_.bind(udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      tcp::acceptor a(io);
      a.open(tcp::v4());
      a.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), udp_.local_endpoint().port()), ec);
      if (ec) continue;  // port taken for TCP: try another
      a.listen();
      tcp_ = std::move(a);
    }
    REQUIRE(tcp_.is_open());
  }

  void start() {
    asio::co_spawn(udp_.get_executor(), udp_loop(), asio::detached);
    asio::co_spawn(tcp_.get_executor(), tcp_loop(), asio::detached);
  }
  void stop() {
    boost::system::error_code ec;
    udp_.close(ec);
    tcp_.close(ec);
  }
  uint16_t udp_port() const { return udp_.local_endpoint().port(); }
  uint16_t tcp_port() const { return tcp_.local_endpoint().port(); }

  std::atomic<int> udp_queries{0};
  std::atomic<int> tcp_queries{0};

 private:
  static std::vector<uint8_t> answer(std::span<const uint8_t> msg, size_t max) {
    auto q = parse_query(msg);
    if (!q) return {};
    ResponseOptions o;
    o.max_size = max;
    std::vector<Answer> answers;
    if (q->question.name == "external.test" && q->question.qtype == type::kA) {
      answers.push_back(make_address_answer(q->question.wire_name, ip("93.184.216.34")));
    } else if (q->question.name == "big.test") {
      for (int i = 0; i < 40; ++i) answers.push_back(make_address_answer(q->question.wire_name, ip("192.0.2.1")));
    } else if (q->question.name == "servfail.test") {
      o.rcode = Rcode::ServFail;
    } else {
      o.rcode = Rcode::NxDomain;
    }
    return build_response(*q, answers, o);
  }

  asio::awaitable<void> udp_loop() {
    std::vector<uint8_t> buf(65535);
    udp::endpoint from;
    for (;;) {
      auto [ec, n] = co_await udp_.async_receive_from(asio::buffer(buf), from, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      ++udp_queries;
      auto reply = answer({buf.data(), n}, 512);
      if (!reply.empty()) udp_.send_to(asio::buffer(reply), from, 0, ec);
    }
  }

  asio::awaitable<void> tcp_loop() {
    for (;;) {
      auto [ec, s] = co_await tcp_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      std::array<uint8_t, 2> len{};
      auto [e1, n1] = co_await asio::async_read(s, asio::buffer(len), asio::as_tuple(asio::use_awaitable));
      if (e1) continue;
      std::vector<uint8_t> msg((len[0] << 8) | len[1]);
      auto [e2, n2] = co_await asio::async_read(s, asio::buffer(msg), asio::as_tuple(asio::use_awaitable));
      if (e2) continue;
      ++tcp_queries;
      auto reply = answer(msg, 65535);
      std::array<uint8_t, 2> rl{static_cast<uint8_t>(reply.size() >> 8), static_cast<uint8_t>(reply.size())};
      std::array<asio::const_buffer, 2> out{asio::buffer(rl), asio::buffer(reply)};
      co_await asio::async_write(s, out, asio::as_tuple(asio::use_awaitable));
    }
  }

  udp::socket udp_;
  tcp::acceptor tcp_;
};

// Blocking client helpers (their own io_context; sync calls only). Receive timeouts keep a
// broken proxy from hanging the test; they are not assertions about timing.
void set_rcv_timeout(int fd, int seconds) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

std::optional<std::vector<uint8_t>> udp_exchange(const udp::endpoint& server, const std::vector<uint8_t>& q) {
  asio::io_context io;
  udp::socket s(io, udp::v4());
  set_rcv_timeout(s.native_handle(), 10);
  s.send_to(asio::buffer(q), server);
  std::vector<uint8_t> buf(65535);
  boost::system::error_code ec;
  udp::endpoint from;
  size_t n = s.receive_from(asio::buffer(buf), from, 0, ec);
  if (ec) return std::nullopt;
  buf.resize(n);
  return buf;
}

std::optional<std::vector<uint8_t>> tcp_exchange(tcp::socket& s, const std::vector<uint8_t>& q) {
  std::array<uint8_t, 2> len{static_cast<uint8_t>(q.size() >> 8), static_cast<uint8_t>(q.size())};
  boost::system::error_code ec;
  asio::write(s, std::array<asio::const_buffer, 2>{asio::buffer(len), asio::buffer(q)}, ec);
  if (ec) return std::nullopt;
  asio::read(s, asio::buffer(len), ec);
  if (ec) return std::nullopt;
  std::vector<uint8_t> buf((len[0] << 8) | len[1]);
  asio::read(s, asio::buffer(buf), ec);
  if (ec) return std::nullopt;
  return buf;
}

std::optional<std::vector<uint8_t>> tcp_exchange(const tcp::endpoint& server, const std::vector<uint8_t>& q) {
  asio::io_context io;
  tcp::socket s(io);
  boost::system::error_code ec;
  s.connect(server, ec);
  if (ec) return std::nullopt;
  set_rcv_timeout(s.native_handle(), 10);
  return tcp_exchange(s, q);
}

ParsedResponse parsed(const std::optional<std::vector<uint8_t>>& r) {
  REQUIRE(r);
  auto p = parse_response(bytes(*r));
  INFO((p.ok() ? "" : p.error()));
  REQUIRE(p.ok());
  return *p;
}

// io_context on its own thread for the proxy and the fake upstream.
struct Harness {
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard{io.get_executor()};
  common::metrics::Registry registry;
  DnsMetrics metrics{registry};
  FakeUpstream upstream{io};
  std::unique_ptr<DnsProxy> proxy;
  std::thread thread;

  // `upstreams` are tried in order; the fake one is appended last.
  void start(std::vector<SocketAddr> upstreams = {}, std::chrono::milliseconds timeout = std::chrono::seconds(2),
             bool include_fake = true) {
    upstream.start();
    if (include_fake) upstreams.push_back(SocketAddr{ip("127.0.0.1"), upstream.udp_port()});
    auto snap = mesh();
    DnsProxyInputs in{
        .udp = udp::socket(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        .tcp = tcp::acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        .snapshot = [snap] { return snap; },
        .client = DnsClient{.ns = "default", .network = "", .canonical_service = "client", .canonical_revision = "v1"},
        .upstreams = upstreams,
        .upstream_timeout = timeout,
        .attempts = 1,
        // Exercise the marking path when allowed (root); loopback routing ignores the mark.
        .mark = ::geteuid() == 0 ? std::optional<uint32_t>(1337) : std::nullopt,
        .metrics = &metrics,
    };
    auto p = DnsProxy::create(std::move(in));
    INFO((p.ok() ? "" : p.error()));
    REQUIRE(p.ok());
    proxy = std::move(*p);
    proxy->start();
    thread = std::thread([this] { io.run(); });
  }

  udp::endpoint udp_ep() const { return *proxy->udp_endpoint(); }
  tcp::endpoint tcp_ep() const { return *proxy->tcp_endpoint(); }

  uint64_t count(common::metrics::CounterFamily& f, std::string_view qtype, std::string_view proto) {
    return f.get({qtype, proto, "client", "v1"})->value();
  }

  ~Harness() {
    if (proxy) proxy->stop();
    asio::post(io, [this] { upstream.stop(); });
    proxy.reset();
    guard.reset();
    // Every coroutine ends once its sockets are closed or its upstream timeout passes, so the
    // io_context runs out of work by itself.
    if (thread.joinable()) thread.join();
  }
};

}  // namespace

TEST_CASE("proxy answers mesh names over UDP and TCP with search expansion", "[dns][proxy]") {
  Harness h;
  h.start();
  for (const char* name : {"echo", "echo.default", "echo.default.svc", "echo.default.svc.cluster.local"}) {
    INFO(name);
    auto r = parsed(udp_exchange(h.udp_ep(), query_bytes(42, name, type::kA)));
    CHECK(r.header.id == 42);
    CHECK(r.header.rcode() == Rcode::NoError);
    CHECK((r.header.flags & flag::kAa) != 0);
    CHECK(addresses_of(r) == std::set<std::string>{"10.96.0.10"});
  }
  auto v6 = parsed(tcp_exchange(h.tcp_ep(), query_bytes(43, "echo.default.svc.cluster.local", type::kAaaa)));
  CHECK(v6.header.id == 43);
  CHECK(addresses_of(v6) == std::set<std::string>{"fd00::10"});
  CHECK(h.upstream.udp_queries == 0);
  CHECK(h.upstream.tcp_queries == 0);
  CHECK(h.count(h.metrics.requests, "a", "udp") == 4);
  CHECK(h.count(h.metrics.requests, "aaaa", "tcp") == 1);
  CHECK(h.count(h.metrics.upstream_requests, "a", "udp") == 0);
}

TEST_CASE("proxy forwards unknown names to the upstream resolver", "[dns][proxy]") {
  Harness h;
  h.start();
  auto ext = parsed(udp_exchange(h.udp_ep(), query_bytes(7, "external.test", type::kA)));
  CHECK(ext.header.id == 7);  // client's id restored
  CHECK(addresses_of(ext) == std::set<std::string>{"93.184.216.34"});
  CHECK(h.upstream.udp_queries == 1);

  auto nx = parsed(udp_exchange(h.udp_ep(), query_bytes(8, "nope.example", type::kA)));
  CHECK(nx.header.rcode() == Rcode::NxDomain);
  CHECK(nx.answers.empty());

  // Non-address types are forwarded even for mesh names.
  auto txt = parsed(udp_exchange(h.udp_ep(), query_bytes(9, "echo.default.svc.cluster.local", type::kTxt)));
  CHECK(txt.header.rcode() == Rcode::NxDomain);
  CHECK(h.upstream.udp_queries == 3);

  // TCP queries go upstream over TCP; two queries on one connection.
  {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(h.tcp_ep());
    set_rcv_timeout(s.native_handle(), 10);
    auto a = parsed(tcp_exchange(s, query_bytes(10, "external.test", type::kA)));
    CHECK(a.header.id == 10);
    CHECK(addresses_of(a) == std::set<std::string>{"93.184.216.34"});
    auto b = parsed(tcp_exchange(s, query_bytes(11, "echo", type::kA)));
    CHECK(addresses_of(b) == std::set<std::string>{"10.96.0.10"});
  }
  CHECK(h.upstream.tcp_queries == 1);
  CHECK(h.count(h.metrics.upstream_requests, "a", "udp") == 2);
  CHECK(h.count(h.metrics.upstream_requests, "txt", "udp") == 1);
  CHECK(h.count(h.metrics.upstream_requests, "a", "tcp") == 1);
  CHECK(h.count(h.metrics.upstream_failures, "a", "udp") == 0);
  CHECK(h.metrics.upstream_duration.get({"a", "udp", "client", "v1"})->count() == 2);
  auto text = h.registry.render();
  CHECK_THAT(text, Catch::Contains("istio_dns_requests_total{request_query_type=\"a\",request_protocol=\"udp\","
                                   "source_canonical_service=\"client\",source_canonical_revision=\"v1\"}"));
}

TEST_CASE("truncation: large UDP answers set TC, TCP and EDNS carry them", "[dns][proxy]") {
  Harness h;
  h.start();
  // Local answer (40 VIPs).
  auto small = parsed(udp_exchange(h.udp_ep(), query_bytes(1, "big", type::kA)));
  CHECK(small.header.tc());
  CHECK(small.answers.empty());
  auto edns = parsed(udp_exchange(h.udp_ep(), query_bytes(2, "big", type::kA, 4096)));
  CHECK_FALSE(edns.header.tc());
  CHECK(edns.answers.size() == 40);
  auto over_tcp = parsed(tcp_exchange(h.tcp_ep(), query_bytes(3, "big", type::kA)));
  CHECK_FALSE(over_tcp.header.tc());
  CHECK(over_tcp.answers.size() == 40);
  // Forwarded answer: the upstream's TC is relayed; TCP gets everything.
  auto fwd = parsed(udp_exchange(h.udp_ep(), query_bytes(4, "big.test", type::kA)));
  CHECK(fwd.header.tc());
  auto fwd_tcp = parsed(tcp_exchange(h.tcp_ep(), query_bytes(5, "big.test", type::kA)));
  CHECK(fwd_tcp.answers.size() == 40);
}

TEST_CASE("upstream failures: next server is tried, all failing gives SERVFAIL", "[dns][proxy]") {
  Harness h;
  // A bound socket that never answers (timeout), then the fake upstream.
  asio::io_context side;
  udp::socket silent(side, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  h.start({SocketAddr{ip("127.0.0.1"), silent.local_endpoint().port()}}, std::chrono::milliseconds(300));
  auto ok = parsed(udp_exchange(h.udp_ep(), query_bytes(5, "external.test", type::kA)));
  CHECK(addresses_of(ok) == std::set<std::string>{"93.184.216.34"});

  // SERVFAIL from every server is relayed after trying them all; it is a reply, so not an
  // upstream failure (those are for no usable reply at all).
  auto sf = parsed(udp_exchange(h.udp_ep(), query_bytes(6, "servfail.test", type::kA)));
  CHECK(sf.header.rcode() == Rcode::ServFail);
  CHECK(h.count(h.metrics.upstream_failures, "a", "udp") == 0);
}

TEST_CASE("no upstream reply at all: SERVFAIL and a failure metric", "[dns][proxy]") {
  Harness h;
  asio::io_context side;
  udp::socket silent(side, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  h.start({SocketAddr{ip("127.0.0.1"), silent.local_endpoint().port()}}, std::chrono::milliseconds(200),
          /*include_fake=*/false);
  auto r = parsed(udp_exchange(h.udp_ep(), query_bytes(12, "external.test", type::kA)));
  CHECK(r.header.id == 12);
  CHECK(r.header.rcode() == Rcode::ServFail);
  CHECK(h.count(h.metrics.upstream_failures, "a", "udp") == 1);
}

TEST_CASE("malformed and non-QUERY packets", "[dns][proxy]") {
  Harness h;
  h.start();
  std::vector<uint8_t> junk = {0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0};
  auto fe = parsed(udp_exchange(h.udp_ep(), junk));
  CHECK(fe.header.id == 0xABCD);
  CHECK(fe.header.rcode() == Rcode::FormErr);
  auto notify = query_bytes(77, "echo", type::kA);
  notify[2] |= 4 << 3;  // opcode NOTIFY
  auto ni = parsed(udp_exchange(h.udp_ep(), notify));
  CHECK(ni.header.rcode() == Rcode::NotImp);
  // Still serving afterwards.
  auto ok = parsed(udp_exchange(h.udp_ep(), query_bytes(78, "echo", type::kA)));
  CHECK(addresses_of(ok).size() == 1);
}

TEST_CASE("stop closes the listeners", "[dns][proxy]") {
  Harness h;
  h.start();
  auto ep = h.tcp_ep();
  REQUIRE(tcp_exchange(ep, query_bytes(1, "echo", type::kA)));
  h.proxy->stop();
  // Wait (bounded) until the acceptor is closed: connect fails.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    asio::io_context io;
    tcp::socket s(io);
    boost::system::error_code ec;
    s.connect(ep, ec);
    refused = static_cast<bool>(ec);
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(refused);
}

TEST_CASE("create validates its inputs", "[dns][proxy]") {
  asio::io_context io;
  common::metrics::Registry registry;
  DnsMetrics metrics(registry);
  DnsProxyInputs in{
      .udp = udp::socket(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
      .tcp = tcp::acceptor(io),
      .snapshot = [] { return Snapshot::empty(); },
      .metrics = &metrics,
  };
  auto r = DnsProxy::create(std::move(in));
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains("upstream"));
}

TEST_CASE("SO_MARK errors are reported, and marked upstream sockets work when permitted", "[dns][proxy]") {
  CHECK_FALSE(common::net::sockopt::set_mark(-1, 1337).ok());
  // Marking needs CAP_NET_ADMIN. CI runs as root; anywhere else this fails rather than
  // passing without having checked anything.
  INFO("SO_MARK needs root (CAP_NET_ADMIN): run the unit tests as root");
  REQUIRE(::geteuid() == 0);
  asio::io_context io;
  udp::socket s(io, udp::v4());
  CHECK(common::net::sockopt::set_mark(s.native_handle(), 1337).ok());
}
