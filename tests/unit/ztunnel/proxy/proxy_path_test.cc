// The whole ztunnel data path in one process, without root: two dedicated-mode proxies on
// loopback (client workload at 127.0.0.1, server workload at 127.0.0.2), real TLS 1.3 from a
// local CA, real HTTP/2 CONNECT, real sockets to an echo app:
//   test client -> A:outbound -> HBONE -> B:inbound HBONE -> app (127.0.0.2:port)
// The ProxySeams stand in for what needs root: the in-pod REDIRECT (original destination) and
// fixed ports 15001/15008 (ephemeral ports, and a dial seam that sends 127.0.0.2:15008 to B).
// Never co_await inside CHECK/REQUIRE: Catch's macros name the expression twice and GCC 12 then
// evaluates the co_await more than once. Checked: on-demand DNS of a hostname workload behind a
// service VIP (a DNS server in the test), a CRL update that closes A's outbound tunnel
// (CERT_REVOKED at the source), the echo, policy DENY (401 -> CONNECT on the source, DENY on the
// destination), late rejection of a live connection, a TLS identity mismatch (TLS_FAILURE), a connection waiting for
// its first certificate, a failed certificate fetch, and the outcome table itself.
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/admin/log.h"
#include "common/admin/metrics.h"
#include "common/identity/crl.h"
#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"
#include "common/identity/ossl.h"
#include "common/model/local_config.h"
#include "common/runtime.h"
#include "ztunnel/dns/message.h"
#include "ztunnel/proxy/connection_result.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/proxy/proxy_error.h"
#include "ztunnel/proxy/task_failure.h"
#include "ztunnel/state/on_demand.h"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace ztunnel;

namespace {

const char* kMesh = R"(
workloads:
- uid: c//v1/Pod/ns/client
  name: client
  namespace: ns
  serviceAccount: client
  workloadIps: ["127.0.0.1"]
  protocol: HBONE
- uid: c//v1/Pod/ns/server
  name: server
  namespace: ns
  serviceAccount: server
  workloadIps: ["127.0.0.2"]
  protocol: HBONE
policies:
)";

SnapshotConstSharedPtr snapshot(const std::string& policies) {
  auto r = parse_local_config(std::string(kMesh) + policies);
  INFO((r.ok() ? "" : r.error()));
  REQUIRE(r.ok());
  return Snapshot::from_local_config(std::move(r).value());
}

const std::string kNoPolicies = "  []\n";
const std::string kDenyAll = "- {name: deny-all, namespace: ns, scope: Namespace, action: Deny, rules: [[]]}\n";

// Sum of the samples of `name` whose labels include every k="v" of `labels`.
uint64_t metric(const common::metrics::Registry& reg, const std::string& name,
                const std::map<std::string, std::string>& labels) {
  std::istringstream in(reg.render());
  std::string line;
  uint64_t sum = 0;
  while (std::getline(in, line)) {
    if (line.rfind(name + "{", 0) != 0) continue;
    bool all = true;
    for (const auto& [k, v] : labels) all = all && line.find(k + "=\"" + v + "\"") != std::string::npos;
    if (all) sum += std::stoull(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

// Access-log lines written so far (the "access" logger, captured by a ring buffer).
struct AccessLog {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
  AccessLog() { common::log::logger("access")->sinks().push_back(sink); }
  ~AccessLog() {
    auto& s = common::log::logger("access")->sinks();
    s.erase(std::remove(s.begin(), s.end(), sink), s.end());
  }
  bool contains(const std::string& re) const {
    for (const auto& l : sink->last_formatted()) {
      if (std::regex_search(l, std::regex(re))) return true;
    }
    return false;
  }
  std::string dump() const {
    std::string out;
    for (const auto& l : sink->last_formatted()) out += l;
    return out;
  }
};

Config test_config() {
  Config c;
  c.proxy_mode = ProxyMode::Dedicated;
  c.packet_mark = 0;          // SO_MARK needs CAP_NET_ADMIN
  c.enable_orig_src = false;  // so does IP_TRANSPARENT
  c.ipv6_enabled = false;
  c.dns_proxy = false;
  return c;
}

struct Mesh {
  common::metrics::Registry registry;
  common::Runtime runtime{1};
  // On disk, so a test can sign a CRL with the CA's key (ca-key.pem).
  std::filesystem::path ca_dir = temp_dir();
  common::LocalCaProvider ca{common::LocalCa::create(ca_dir, "cluster.local").value(), std::chrono::hours(1)};
  Config cfg = test_config();
  Proxy a{runtime, cfg, registry, ProxyTarget{{"ns", "client", "client"}, "", nullptr}};
  Proxy b{runtime, cfg, registry, ProxyTarget{{"ns", "server", "server"}, "", nullptr}};
  asio::io_context io;  // the test's client and app
  tcp::acceptor app{io, tcp::endpoint(asio::ip::make_address("127.0.0.2"), 0)};
  uint16_t app_port = app.local_endpoint().port();
  AccessLog log;

  explicit Mesh(bool a_credentials = true, const char* b_identity = "server",
                std::function<void(ProxySeams&)> a_seams = nullptr, std::shared_ptr<OnDemand> a_on_demand = nullptr) {
    set_snapshot(snapshot(kNoPolicies));
    if (a_credentials) give(a, "client");
    give(b, b_identity);
    ProxySeams sb;
    sb.listen_ip = *parse_ip("127.0.0.2");
    sb.outbound_port = sb.inbound_plaintext_port = sb.inbound_hbone_port = 0;
    b.set_seams(sb);
    auto st = b.start();
    INFO((st.ok() ? "" : st.error()));
    REQUIRE(st.ok());
    ProxySeams sa;
    sa.listen_ip = *parse_ip("127.0.0.1");
    sa.outbound_port = sa.inbound_plaintext_port = sa.inbound_hbone_port = 0;
    const SocketAddr app_addr{*parse_ip("127.0.0.2"), app_port};
    sa.original_dst = [app_addr](int) -> std::optional<SocketAddr> { return app_addr; };
    const SocketAddr b_hbone{*parse_ip("127.0.0.2"), b.bound_port(kInboundHbonePort)};
    sa.dial_address = [b_hbone](const SocketAddr& addr) {
      return addr.port == kInboundHbonePort && addr.ip == b_hbone.ip ? b_hbone : addr;
    };
    if (a_seams) a_seams(sa);
    a.set_seams(sa);
    if (a_on_demand) a.set_on_demand(std::move(a_on_demand));
    st = a.start();
    REQUIRE(st.ok());
    serve_app();
  }
  ~Mesh() {
    a.drain();
    b.drain();
    a.force_close();
    b.force_close();
    // Stop and join the worker now (run() after stop() only joins): nothing may run on it
    // while the members it uses (the log sink, the proxies) are destroyed.
    runtime.stop();
    runtime.run();
    std::error_code ignored;
    std::filesystem::remove_all(ca_dir.parent_path(), ignored);
  }
  static std::filesystem::path temp_dir() {
    char tmpl[] = "/tmp/proxy-path-ca.XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    return std::filesystem::path(d) / "ca";
  }

  void give(Proxy& p, const char* sa) {
    auto creds = ca.issue(common::Identity{"cluster.local", "ns", sa});
    REQUIRE(creds.ok());
    REQUIRE(p.set_credentials(std::make_shared<common::tls::Credentials>(creds.value())).ok());
  }
  void set_snapshot(SnapshotConstSharedPtr s) {
    a.set_snapshot(s);
    b.set_snapshot(std::move(s));
  }

  // Echo app: every connection gets its bytes back, and EOF after the client's EOF.
  void serve_app() {
    asio::co_spawn(
        io,
        [this]() -> asio::awaitable<void> {
          for (;;) {
            auto [ec, s] = co_await app.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            asio::co_spawn(
                io,
                [s = std::move(s)]() mutable -> asio::awaitable<void> {
                  char buf[4096];
                  for (;;) {
                    auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
                    if (rec) break;
                    auto [wec, m] =
                        co_await asio::async_write(s, asio::buffer(buf, n), asio::as_tuple(asio::use_awaitable));
                    if (wec) co_return;
                  }
                  boost::system::error_code ignored;
                  s.shutdown(tcp::socket::shutdown_send, ignored);
                },
                asio::detached);
          }
        },
        asio::detached);
  }

  tcp::endpoint outbound() const { return {asio::ip::make_address("127.0.0.1"), a.bound_port(kOutboundPort)}; }

  // Runs `body` on the test's loop, bounded: a hang fails the test instead of blocking it.
  template <typename F>
  void run(F body) {
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await body();
          done = true;
          io.stop();
        },
        asio::detached);
    io.restart();
    io.run_for(std::chrono::seconds(30));
    REQUIRE(done);
  }
};

// Everything the peer sends until it closes (EOF or reset).
asio::awaitable<std::string> read_all(tcp::socket& s) {
  std::string got;
  char buf[4096];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    got.append(buf, n);
    if (ec) co_return got;
  }
}

asio::awaitable<std::string> exchange(tcp::endpoint to, std::string payload) {
  tcp::socket s(co_await asio::this_coro::executor);
  auto [cec] = co_await s.async_connect(to, asio::as_tuple(asio::use_awaitable));
  REQUIRE(!cec);
  // The proxy may have closed already (a refused connection): errors here are the test's answer.
  co_await asio::async_write(s, asio::buffer(payload), asio::as_tuple(asio::use_awaitable));
  boost::system::error_code ignored;
  s.shutdown(tcp::socket::shutdown_send, ignored);
  co_return co_await read_all(s);
}

// Waits (bounded, by polling the test's own loop) until `cond` holds; the proxies record a
// connection's result after the client has seen it close.
asio::awaitable<bool> eventually(std::function<bool()> cond) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (int i = 0; i < 500; ++i) {
    if (cond()) co_return true;
    t.expires_after(std::chrono::milliseconds(10));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return cond();
}

}  // namespace

TEST_CASE("outbound -> HBONE -> inbound -> app, recorded once on each side", "[proxy_path]") {
  Mesh m;
  m.run([&]() -> asio::awaitable<void> {
    const std::string payload(300 * 1024, 'x');
    auto got1 = co_await exchange(m.outbound(), payload);
    CHECK(got1 == payload);
    auto closed = [&](const char* reporter) {
      return metric(m.registry, "istio_tcp_connections_closed_total",
                    {{"reporter", reporter}, {"response_flags", "-"}, {"connection_security_policy", "mutual_tls"}});
    };
    // The access-log line is written just after the counters: wait for both.
    const bool got2 = co_await eventually([&] {
      return closed("source") == 1 && closed("destination") == 1 &&
             m.log.contains("connection complete.*dst.workload=\"?server.*direction=\"?outbound") &&
             m.log.contains("connection complete.*src.workload=\"?client.*direction=\"?inbound");
    });
    CHECK(got2);
    CHECK(metric(m.registry, "istio_tcp_connections_opened_total", {{"reporter", "destination"}}) == 1);
    CHECK(metric(m.registry, "istio_tcp_received_bytes_total",
                 {{"reporter", "destination"}, {"source_principal", "spiffe://cluster.local/ns/ns/sa/client"}}) ==
          payload.size());
    CHECK(metric(m.registry, "istio_tcp_sockets_open", {}) == 0);
    CHECK(metric(m.registry, "ztunnel_task_failures_total", {}) == 0);
    INFO(m.log.dump());
    CHECK(m.log.contains("connection complete.*dst.workload=\"?server.*direction=\"?outbound"));
    CHECK(m.log.contains("connection complete.*src.workload=\"?client.*direction=\"?inbound"));
  });
}

TEST_CASE("a long-lived connection's bytes reach the counters before it closes", "[proxy_path]") {
  Mesh m;
  m.run([&]() -> asio::awaitable<void> {
    tcp::socket s(m.io);
    auto [cec] = co_await s.async_connect(m.outbound(), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!cec);
    auto bytes = [&](const char* name, const char* reporter) {
      return metric(m.registry, name, {{"reporter", reporter}, {"response_flags", "-"}});
    };
    // Two rounds on one open connection: the counters follow each round while it stays open.
    uint64_t total = 0;
    for (size_t round : {size_t{5000}, size_t{70000}}) {
      const std::string payload(round, 'b');
      co_await asio::async_write(s, asio::buffer(payload), asio::as_tuple(asio::use_awaitable));
      std::string echo(round, '\0');
      auto [rec, n] = co_await asio::async_read(s, asio::buffer(echo), asio::as_tuple(asio::use_awaitable));
      REQUIRE(!rec);
      CHECK(echo == payload);
      total += round;
      const bool grew = co_await eventually([&] {
        return bytes("istio_tcp_received_bytes_total", "source") == total &&
               bytes("istio_tcp_sent_bytes_total", "source") == total &&
               bytes("istio_tcp_received_bytes_total", "destination") == total &&
               bytes("istio_tcp_sent_bytes_total", "destination") == total;
      });
      INFO("round of " << round << " bytes; " << m.registry.render());
      CHECK(grew);
      CHECK(metric(m.registry, "istio_tcp_connections_closed_total", {}) == 0);
    }
    // Closing adds only what was not reported yet: each byte is counted once.
    boost::system::error_code ignored;
    s.shutdown(tcp::socket::shutdown_send, ignored);
    auto rest = co_await read_all(s);
    CHECK(rest.empty());
    const bool closed =
        co_await eventually([&] { return metric(m.registry, "istio_tcp_connections_closed_total", {}) == 2; });
    CHECK(closed);
    CHECK(bytes("istio_tcp_received_bytes_total", "source") == total);
    CHECK(bytes("istio_tcp_sent_bytes_total", "destination") == total);
    CHECK(metric(m.registry, "istio_tcp_received_bytes_total", {}) == 2 * total);
  });
}

TEST_CASE("force_close returns only after the byte-report loops have ended", "[proxy_path]") {
  Mesh m;
  m.run([&]() -> asio::awaitable<void> {
    tcp::socket s(m.io);
    auto [cec] = co_await s.async_connect(m.outbound(), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!cec);
    const std::string payload(1000, 'c');
    co_await asio::async_write(s, asio::buffer(payload), asio::as_tuple(asio::use_awaitable));
    std::string echo(payload.size(), '\0');
    auto [rec, n] = co_await asio::async_read(s, asio::buffer(echo), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!rec);
    // The relay is open on both proxies, so each has a loop reporting its bytes.
    CHECK(m.a.report_loops_running() == 1);
    CHECK(m.b.report_loops_running() == 1);
    // From here on this thread does not run the workers' handlers: whatever ends the loops,
    // force_close() must have waited for it.
    m.a.force_close();
    CHECK(m.a.report_loops_running() == 0);
    m.b.force_close();
    CHECK(m.b.report_loops_running() == 0);
    // Closed, and its bytes were flushed (the last flush, or an earlier periodic one).
    auto rest = co_await read_all(s);
    CHECK(rest.empty());
    CHECK(metric(m.registry, "istio_tcp_received_bytes_total", {{"reporter", "source"}}) == payload.size());
    CHECK(metric(m.registry, "ztunnel_task_failures_total", {}) == 0);
  });
}

TEST_CASE("policy DENY: 401 to the source (CONNECT), DENY at the destination", "[proxy_path]") {
  Mesh m;
  m.set_snapshot(snapshot(kDenyAll));
  m.run([&]() -> asio::awaitable<void> {
    auto got3 = co_await exchange(m.outbound(), "hello");
    CHECK(got3.empty());
    const bool got4 = co_await eventually([&] {
      return metric(m.registry, "istio_tcp_connections_closed_total",
                    {{"reporter", "destination"}, {"response_flags", "DENY"}}) == 1 &&
             metric(m.registry, "istio_tcp_connections_closed_total",
                    {{"reporter", "source"}, {"response_flags", "CONNECT"}}) == 1;
    });
    CHECK(got4);
    CHECK(metric(m.registry, "istio_tcp_connections_opened_total", {{"response_flags", "DENY"}}) == 0);
    CHECK(metric(m.registry, "istio_tcp_connections_opened_total", {{"response_flags", "-"}}) == 2);
    CHECK(metric(m.registry, "istio_tcp_connections_failed_total",
                 {{"reporter", "destination"}, {"response_flags", "DENY"}}) == 1);
    INFO(m.log.dump());
    CHECK(m.log.contains("direction=\"?inbound.*error=\"?explicitly denied by ns/deny-all"));
    CHECK(m.log.contains("direction=\"?outbound.*error=.*401"));
  });
}

TEST_CASE("late rejection: a policy change closes the live connection", "[proxy_path]") {
  Mesh m;
  m.run([&]() -> asio::awaitable<void> {
    tcp::socket s(m.io);
    auto [cec] = co_await s.async_connect(m.outbound(), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!cec);
    co_await asio::async_write(s, asio::buffer(std::string("ping")), asio::as_tuple(asio::use_awaitable));
    std::string echo(4, '\0');
    auto [rec, n] = co_await asio::async_read(s, asio::buffer(echo), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!rec);
    CHECK(echo == "ping");
    m.set_snapshot(snapshot(kDenyAll));
    // The tunnel is reset; the client sees its connection end without sending anything more.
    auto got5 = co_await read_all(s);
    CHECK(got5.empty());
    const bool got6 = co_await eventually([&] { return m.log.contains("AuthorizationPolicyLateRejection"); });
    CHECK(got6);
    INFO(m.log.dump());
    CHECK(m.log.contains("direction=\"?inbound.*error=\"?AuthorizationPolicyLateRejection: explicitly denied"));
  });
}

TEST_CASE("the HBONE peer presents the wrong identity: TLS_FAILURE", "[proxy_path]") {
  Mesh m(true, "impostor");
  m.run([&]() -> asio::awaitable<void> {
    auto got7 = co_await exchange(m.outbound(), "hello");
    CHECK(got7.empty());
    const bool got8 = co_await eventually([&] {
      return metric(m.registry, "istio_tcp_connections_closed_total",
                    {{"reporter", "source"}, {"response_flags", "TLS_FAILURE"}}) == 1;
    });
    CHECK(got8);
  });
}

TEST_CASE("a connection waits for the first certificate, signalled when it arrives", "[proxy_path]") {
  Mesh m(false);
  CHECK(!m.a.has_credentials());
  m.run([&]() -> asio::awaitable<void> {
    tcp::socket s(m.io);
    auto [cec] = co_await s.async_connect(m.outbound(), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!cec);
    co_await asio::async_write(s, asio::buffer(std::string("early")), asio::as_tuple(asio::use_awaitable));
    boost::system::error_code ignored;
    s.shutdown(tcp::socket::shutdown_send, ignored);
    // Accepted (and, a moment later, waiting in await_tls) before the certificate exists.
    const bool got9 = co_await eventually([&] { return m.a.active_connections() == 1; });
    CHECK(got9);
    m.give(m.a, "client");
    auto got10 = co_await read_all(s);
    CHECK(got10 == "early");
  });
}

TEST_CASE("a failed certificate fetch fails the waiting connection with TLS_FAILURE", "[proxy_path]") {
  Mesh m(false);
  m.run([&]() -> asio::awaitable<void> {
    tcp::socket s(m.io);
    auto [cec] = co_await s.async_connect(m.outbound(), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!cec);
    const bool got11 = co_await eventually([&] { return m.a.active_connections() == 1; });
    CHECK(got11);
    m.a.set_credentials_error("CA unreachable");
    auto got12 = co_await read_all(s);
    CHECK(got12.empty());
    const bool got13 = co_await eventually([&] {
      return metric(m.registry, "istio_tcp_connections_closed_total",
                    {{"reporter", "source"}, {"response_flags", "TLS_FAILURE"}}) == 1;
    });
    CHECK(got13);
    INFO(m.log.dump());
    CHECK(
        m.log.contains("error=\"?no certificate for spiffe://cluster.local/ns/ns/sa/client: certificate fetch "
                       "failed: CA unreachable"));
  });
}

TEST_CASE("an unknown source is an early deny: connection failed, no metrics", "[proxy_path]") {
  Mesh m;
  auto r = parse_local_config("workloads: []\n");
  REQUIRE(r.ok());
  m.a.set_snapshot(Snapshot::from_local_config(std::move(r).value()));
  m.run([&]() -> asio::awaitable<void> {
    auto got14 = co_await exchange(m.outbound(), "hello");
    CHECK(got14.empty());
    const bool got15 = co_await eventually([&] { return m.log.contains("connection failed"); });
    CHECK(got15);
    INFO(m.log.dump());
    CHECK(m.log.contains("connection failed.*direction=\"?outbound.*error=\"?unknown source workload"));
    CHECK(metric(m.registry, "istio_tcp_connections_opened_total", {}) == 0);
  });
}

TEST_CASE("every proxy error maps to an upstream response flag and status", "[proxy_path]") {
  const std::set<std::string> upstream = {
      "-",           "DENY", "CONNECT", "TLS_FAILURE", "H2_HANDSHAKE_FAILURE", "NETWORK_POLICY", "IDENTITY_ERROR",
      "CERT_REVOKED"};
  for (int k = 0; k <= static_cast<int>(ProxyErrorKind::Relay); ++k) {
    ProxyError e{static_cast<ProxyErrorKind>(k), ""};
    INFO(traits(e.kind).name);
    CHECK(upstream.count(std::string(to_string(e.flag()))) == 1);
    CHECK(e.message() == traits(e.kind).name);
    // An early deny has no metrics, so it must not claim a flag.
    if (e.early()) CHECK(e.flag() == ResponseFlag::None);
  }
  CHECK(ProxyError{ProxyErrorKind::PolicyDenied, "x"}.http_status() == 401);
  CHECK(ProxyError{ProxyErrorKind::PolicyDenied, "x"}.flag() == ResponseFlag::Deny);
  CHECK(ProxyError{ProxyErrorKind::AppConnect, "x"}.http_status() == 503);
  CHECK(ProxyError{ProxyErrorKind::InvalidAuthority, "x"}.http_status() == 400);
  CHECK(ProxyError{ProxyErrorKind::UpstreamHttp2, "x"}.flag() == ResponseFlag::H2HandshakeFailure);
  CHECK(ProxyError{ProxyErrorKind::UpstreamTls, "x"}.flag() == ResponseFlag::TlsFailure);
  CHECK(ProxyError{ProxyErrorKind::UpstreamRefused, "x"}.message() == "x");
}

TEST_CASE("ConnectionResult records once", "[proxy_path]") {
  common::metrics::Registry reg;
  TrafficMetrics metrics(reg);
  ConnectionParties p;
  p.reporter = "destination";
  SECTION("a failure before the relay: opened under '-', closed and failed under its flag") {
    ConnectionResult r(metrics, p, "inbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    CHECK(r.record(ProxyError{ProxyErrorKind::PolicyDenied, "no"}));
    CHECK_FALSE(r.record(std::nullopt, 10, 10));
    CHECK(metric(reg, "istio_tcp_connections_opened_total", {{"response_flags", "-"}}) == 1);
    CHECK(metric(reg, "istio_tcp_connections_opened_total", {{"response_flags", "DENY"}}) == 0);
    CHECK(metric(reg, "istio_tcp_connections_closed_total", {{"response_flags", "DENY"}}) == 1);
    CHECK(metric(reg, "istio_tcp_connections_failed_total", {{"response_flags", "DENY"}}) == 1);
    CHECK(metric(reg, "istio_tcp_connections_closed_total", {}) == 1);
    CHECK(metric(reg, "istio_tcp_received_bytes_total", {}) == 0);
  }
  SECTION("a relay: the '-' series, bytes, and the open socket gauge back to zero") {
    ConnectionResult r(metrics, p, "inbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    r.established();
    CHECK(metric(reg, "istio_tcp_sockets_open", {}) == 1);
    CHECK(r.record(std::nullopt, 7, 9));
    CHECK_FALSE(r.record(ProxyError{ProxyErrorKind::Relay, "late"}));
    CHECK(metric(reg, "istio_tcp_connections_opened_total", {{"response_flags", "-"}}) == 1);
    CHECK(metric(reg, "istio_tcp_connections_closed_total", {{"response_flags", "-"}}) == 1);
    CHECK(metric(reg, "istio_tcp_received_bytes_total", {}) == 7);
    CHECK(metric(reg, "istio_tcp_sent_bytes_total", {}) == 9);
    CHECK(metric(reg, "istio_tcp_sockets_open", {}) == 0);
    CHECK(metric(reg, "istio_tcp_connections_failed_total", {}) == 0);
  }
  SECTION("a relay ended by an error without a flag: closed under '-' and counted failed") {
    ConnectionResult r(metrics, p, "inbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    r.established();
    CHECK(r.record(ProxyError{ProxyErrorKind::Relay, "reset"}, 3, 4));
    CHECK(metric(reg, "istio_tcp_connections_closed_total", {{"response_flags", "-"}}) == 1);
    CHECK(metric(reg, "istio_tcp_connections_failed_total", {{"response_flags", "-"}}) == 1);
    CHECK(metric(reg, "istio_tcp_received_bytes_total", {}) == 3);
  }
}

TEST_CASE("an exception escaping a proxy coroutine is logged and counted once", "[proxy_path]") {
  common::metrics::Registry reg;
  TaskFailures failures(reg);
  asio::io_context io;
  asio::co_spawn(
      io,
      []() -> asio::awaitable<void> {
        throw std::runtime_error("boom");
        co_return;
      },
      failures.handler(Task::Outbound));
  asio::co_spawn(
      io, []() -> asio::awaitable<void> { co_return; }, failures.handler(Task::Outbound));
  io.run();
  CHECK(metric(reg, "ztunnel_task_failures_total", {{"task", "outbound"}}) == 1);
  CHECK(metric(reg, "ztunnel_task_failures_total", {}) == 1);
}

namespace {

// A UDP DNS server for the test's loop: `answers` name -> A records (TTL 60); other names NXDOMAIN.
struct TestDns {
  asio::ip::udp::socket sock;
  std::map<std::string, std::vector<std::string>> answers;
  explicit TestDns(asio::io_context& io) : sock(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io, serve(), asio::detached);
  }
  SocketAddr addr() const { return SocketAddr{*parse_ip("127.0.0.1"), sock.local_endpoint().port()}; }
  asio::awaitable<void> serve() {
    std::vector<uint8_t> buf(4096);
    for (;;) {
      asio::ip::udp::endpoint from;
      auto [ec, n] = co_await sock.async_receive_from(asio::buffer(buf), from, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      auto q = dns::parse_query(std::span<const uint8_t>(buf.data(), n));
      if (!q) continue;
      std::vector<dns::Answer> out;
      dns::ResponseOptions o;
      o.max_size = 4096;
      auto it = answers.find(q.value().question.name);
      if (it == answers.end()) o.rcode = dns::Rcode::NxDomain;
      if (it != answers.end() && q.value().question.qtype == dns::type::kA) {
        for (const auto& ip : it->second) {
          out.push_back(dns::make_address_answer(q.value().question.wire_name, *parse_ip(ip), 60));
        }
      }
      auto reply = dns::build_response(q.value(), out, o);
      co_await sock.async_send_to(asio::buffer(reply), from, asio::as_tuple(asio::use_awaitable));
    }
  }
};

// Runs a TestDns on its own thread (the proxies' seams need its address before the Mesh exists).
struct DnsThread {
  asio::io_context io;
  TestDns server{io};
  std::thread t{[this] { io.run(); }};
  ~DnsThread() {
    asio::post(io, [this] {
      boost::system::error_code ignored;
      server.sock.close(ignored);
    });
    t.join();
  }
};

// The two pods plus a ServiceEntry-like service (VIP 240.240.0.1:80 -> the app's port) whose
// endpoint is a workload known only by hostname (protocol TCP, as a resolution-DNS entry).
SnapshotConstSharedPtr hostname_snapshot(uint16_t app_port, const std::string& hostname) {
  const std::string port = std::to_string(app_port);
  const std::string yaml =
      std::string(kMesh).substr(0, std::string(kMesh).find("policies:")) +
      "- uid: c//networking.istio.io/ServiceEntry/ns/ext/" + hostname +
      "\n"
      "  name: ext\n"
      "  namespace: ns\n"
      "  hostname: " +
      hostname +
      "\n"
      "  protocol: TCP\n"
      "  services: {\"ns/ext.example.com\": {80: " +
      port +
      "}}\n"
      "services:\n"
      "- {name: ext, namespace: ns, hostname: ext.example.com, vips: [\"/240.240.0.1\"], ports: {80: " +
      port + "}}\n";
  auto r = parse_local_config(yaml);
  INFO((r.ok() ? "" : r.error()) << "\n" << yaml);
  REQUIRE(r.ok());
  return Snapshot::from_local_config(std::move(r).value());
}

}  // namespace

TEST_CASE("a hostname workload behind a service VIP is resolved on demand and counted", "[proxy_path][dns]") {
  DnsThread dns_thread;
  dns_thread.server.answers["app.example.com"] = {"127.0.0.2"};  // before the thread reads it
  const SocketAddr vip{*parse_ip("240.240.0.1"), 80};
  const SocketAddr dns_addr = dns_thread.server.addr();
  Mesh m(true, "server", [&](ProxySeams& s) {
    s.original_dst = [vip](int) -> std::optional<SocketAddr> { return vip; };
    s.dns_servers = std::vector<SocketAddr>{dns_addr};
  });
  m.set_snapshot(hostname_snapshot(m.app_port, "app.example.com"));
  auto dns_count = [&](const char* host) {
    return metric(m.registry, "istio_on_demand_dns_total",
                  {{"hostname", host},
                   {"source_workload", "client"},
                   {"source_workload_namespace", "ns"},
                   {"source_principal", "spiffe://cluster.local/ns/ns/sa/client"}});
  };
  m.run([&]() -> asio::awaitable<void> {
    auto got = co_await exchange(m.outbound(), "through dns");
    CHECK(got == "through dns");
    // Counted per connection, also when the answer comes from the cache.
    auto again = co_await exchange(m.outbound(), "again");
    CHECK(again == "again");
    CHECK(dns_count("app.example.com") == 2);
    // The counters are closed just before the access log is written: wait for both.
    const std::string logged = "connection complete.*dst.addr=\"?127.0.0.2:" + std::to_string(m.app_port);
    const bool closed = co_await eventually([&] {
      return metric(m.registry, "istio_tcp_connections_closed_total",
                    {{"reporter", "source"}, {"response_flags", "-"}, {"destination_service", "ext.example.com"}}) ==
                 2 &&
             m.log.contains(logged);
    });
    INFO(m.log.dump());
    CHECK(closed);
  });
}

TEST_CASE("a hostname that does not resolve fails only its own connection (early deny)", "[proxy_path][dns]") {
  DnsThread dns_thread;  // answers nothing: NXDOMAIN
  const SocketAddr vip{*parse_ip("240.240.0.1"), 80};
  const SocketAddr dns_addr = dns_thread.server.addr();
  Mesh m(true, "server", [&](ProxySeams& s) {
    s.original_dst = [vip](int) -> std::optional<SocketAddr> { return vip; };
    s.dns_servers = std::vector<SocketAddr>{dns_addr};
  });
  m.set_snapshot(hostname_snapshot(m.app_port, "gone.example.com"));
  m.run([&]() -> asio::awaitable<void> {
    auto got = co_await exchange(m.outbound(), "nobody");
    CHECK(got.empty());
    const bool logged = co_await eventually([&] { return m.log.contains("connection failed"); });
    CHECK(logged);
    INFO(m.log.dump());
    CHECK(m.log.contains("connection failed.*error=\"?dns lookup of gone.example.com failed: NXDOMAIN"));
    CHECK(metric(m.registry, "istio_on_demand_dns_total", {{"hostname", "gone.example.com"}}) == 1);
    CHECK(metric(m.registry, "istio_tcp_connections_opened_total", {}) == 0);  // early deny: no TCP metrics
  });
}

namespace {
std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A CRL signed by the Mesh's CA (ca-key.pem) revoking the leaf of `chain_pem`.
std::string revoking_crl(const std::filesystem::path& ca_dir, const std::string& chain_pem) {
  auto ca = common::ossl::parse_pem_certs(slurp(ca_dir / "ca-cert.pem"));
  auto key = common::ossl::parse_pem_key(slurp(ca_dir / "ca-key.pem"));
  auto leaf = common::ossl::parse_pem_certs(chain_pem);
  REQUIRE(ca);
  REQUIRE(key);
  REQUIRE(leaf);
  X509_CRL* crl = X509_CRL_new();
  REQUIRE(X509_CRL_set_version(crl, 1) == 1);
  REQUIRE(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca.value().front().get())) == 1);
  ASN1_TIME* now = ASN1_TIME_set(nullptr, ::time(nullptr));
  REQUIRE(X509_CRL_set1_lastUpdate(crl, now) == 1);
  X509_REVOKED* r = X509_REVOKED_new();
  REQUIRE(X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(leaf.value().front().get())) == 1);
  X509_REVOKED_set_revocationDate(r, now);
  ASN1_TIME_free(now);
  REQUIRE(X509_CRL_add0_revoked(crl, r) == 1);
  REQUIRE(X509_CRL_sign(crl, key.value().get(), EVP_sha256()) > 0);
  BIO* b = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_X509_CRL(b, crl) == 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(b);
  X509_CRL_free(crl);
  return pem;
}
}  // namespace

TEST_CASE("a CRL update revoking the server closes A's outbound tunnel as CERT_REVOKED", "[proxy_path][crl]") {
  Mesh m;
  auto b_creds = m.ca.issue(common::Identity{"cluster.local", "ns", "server"});
  REQUIRE(b_creds.ok());
  REQUIRE(m.b.set_credentials(std::make_shared<common::tls::Credentials>(b_creds.value())).ok());
  auto crls = common::tls::CrlSet::parse_pem(revoking_crl(m.ca_dir, b_creds.value().cert_chain_pem));
  REQUIRE(crls.ok());
  m.run([&]() -> asio::awaitable<void> {
    tcp::socket s(m.io);
    auto [cec] = co_await s.async_connect(m.outbound(), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!cec);
    co_await asio::async_write(s, asio::buffer(std::string("ping")), asio::as_tuple(asio::use_awaitable));
    std::string echo(4, '\0');
    auto [rec, n] = co_await asio::async_read(s, asio::buffer(echo), asio::as_tuple(asio::use_awaitable));
    REQUIRE(!rec);
    CHECK(echo == "ping");
    // Only A reacts (B's client, A, is not revoked): A's pool connection to B is closed.
    common::tls::install_crls(crls.value());
    m.a.close_revoked_peers();
    auto rest = co_await read_all(s);
    CHECK(rest.empty());
    // The counters are closed just before the access log is written: wait for both.
    const bool flagged = co_await eventually([&] {
      return metric(m.registry, "istio_tcp_connections_closed_total",
                    {{"reporter", "source"}, {"response_flags", "CERT_REVOKED"}}) == 1 &&
             m.log.contains("direction=\"?outbound.*error=\"?server certificate revoked \\(CRL_PATH\\)");
    });
    common::tls::install_crls(nullptr);
    INFO(m.log.dump() << m.registry.render());
    CHECK(flagged);
  });
}

TEST_CASE("XDS_ON_DEMAND: an unknown destination is demanded, waited for, then tunnelled", "[proxy_path][ondemand]") {
  // A knows only itself; the server arrives by the demand's answer (as XdsSource would deliver
  // it, from another thread's call to answered()).
  auto full = snapshot(kNoPolicies);
  auto client_only = [] {
    auto r = parse_local_config(R"(
workloads:
- uid: c//v1/Pod/ns/client
  name: client
  namespace: ns
  serviceAccount: client
  workloadIps: ["127.0.0.1"]
  protocol: HBONE
)");
    REQUIRE(r.ok());
    return Snapshot::from_local_config(std::move(r).value());
  }();
  std::mutex mu;
  std::vector<std::string> demanded;
  std::vector<std::thread> answerers;
  // Weak: the OnDemand owns this callback, so a strong pointer back to it would be a cycle (a
  // leak under LeakSanitizer). The answerers are joined while `od` is alive.
  auto holder = std::make_shared<std::weak_ptr<OnDemand>>();
  auto od = std::make_shared<OnDemand>([&, holder](const std::string& key) {
    {
      std::lock_guard<std::mutex> l(mu);
      demanded.push_back(key);
    }
    answerers.emplace_back([holder, full] {
      if (auto p = holder->lock()) p->answered(full, {});
    });
  });
  *holder = od;
  {
    Mesh m(true, "server", nullptr, od);
    m.a.set_snapshot(client_only);
    m.run([&]() -> asio::awaitable<void> {
      auto got = co_await exchange(m.outbound(), "hello");
      CHECK(got == "hello");
      auto closed = [&](const char* reporter) {
        return metric(m.registry, "istio_tcp_connections_closed_total",
                      {{"reporter", reporter}, {"connection_security_policy", "mutual_tls"}});
      };
      // Through B (HBONE), not passthrough straight to the app.
      const bool both = co_await eventually([&] { return closed("source") == 1 && closed("destination") == 1; });
      CHECK(both);
    });
    for (auto& t : answerers) t.join();
  }
  std::lock_guard<std::mutex> l(mu);
  CHECK(demanded == std::vector<std::string>{"/127.0.0.2"});
  CHECK(od->pending() == 0);
}

TEST_CASE("XDS_ON_DEMAND: a destination answered absent is passed through, and not demanded again",
          "[proxy_path][ondemand]") {
  // A (and the answer) know only the client: the app's address belongs to no workload there.
  auto r = parse_local_config(R"(
workloads:
- uid: c//v1/Pod/ns/client
  name: client
  namespace: ns
  serviceAccount: client
  workloadIps: ["127.0.0.1"]
  protocol: HBONE
)");
  REQUIRE(r.ok());
  SnapshotConstSharedPtr client_only = Snapshot::from_local_config(std::move(r).value());
  std::mutex mu;
  std::vector<std::string> demanded;
  std::vector<std::thread> answerers;
  // Weak: the OnDemand owns this callback, so a strong pointer back to it would be a cycle (a
  // leak under LeakSanitizer). The answerers are joined while `od` is alive.
  auto holder = std::make_shared<std::weak_ptr<OnDemand>>();
  auto od = std::make_shared<OnDemand>([&, holder, client_only](const std::string& key) {
    {
      std::lock_guard<std::mutex> l(mu);
      demanded.push_back(key);
    }
    // The server's answer for an address nobody owns: the alias in removed_resources.
    answerers.emplace_back([holder, client_only, key] {
      if (auto p = holder->lock()) p->answered(client_only, {key});
    });
  });
  *holder = od;
  {
    Mesh m(true, "server", nullptr, od);
    m.a.set_snapshot(client_only);
    m.run([&]() -> asio::awaitable<void> {
      for (int i = 0; i < 2; ++i) {
        auto got = co_await exchange(m.outbound(), "hello");
        CHECK(got == "hello");
      }
      auto closed = [&](const char* reporter) {
        return metric(m.registry, "istio_tcp_connections_closed_total", {{"reporter", reporter}});
      };
      const bool src = co_await eventually([&] { return closed("source") == 2; });
      CHECK(src);
      CHECK(closed("destination") == 0);  // passthrough: B never saw them
    });
    for (auto& t : answerers) t.join();
  }
  std::lock_guard<std::mutex> l(mu);
  CHECK(demanded == std::vector<std::string>{"/127.0.0.2"});  // the second one did not ask again
  CHECK(od->absent() == 1);
}
