// The whole ztunnel data path in one process, without root: two dedicated-mode proxies on
// loopback (client workload at 127.0.0.1, server workload at 127.0.0.2), real TLS 1.3 from a
// local CA, real HTTP/2 CONNECT, real sockets to an echo app:
//   test client -> A:outbound -> HBONE -> B:inbound HBONE -> app (127.0.0.2:port)
// The ProxySeams stand in for what needs root: the in-pod REDIRECT (original destination) and
// fixed ports 15001/15008 (ephemeral ports, and a dial seam that sends 127.0.0.2:15008 to B).
// Never co_await inside CHECK/REQUIRE: Catch's macros name the expression twice and GCC 12 then
// evaluates the co_await more than once. Checked: the echo, policy DENY (401 -> CONNECT on the source, DENY on the
// destination), late rejection of a live connection, a TLS identity mismatch (TLS_FAILURE), a connection waiting for
// its first certificate, a failed certificate fetch, and the outcome table itself.
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"
#include "common/admin/log.h"
#include "common/admin/metrics.h"
#include "common/runtime.h"
#include "ztunnel/proxy/connection_result.h"
#include "common/model/local_config.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/proxy/proxy_error.h"
#include "ztunnel/proxy/task_failure.h"

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
  common::LocalCaProvider ca{common::LocalCa::generate("cluster.local").value(), std::chrono::hours(1)};
  Config cfg = test_config();
  Proxy a{runtime, cfg, registry, ProxyTarget{{"ns", "client", "client"}, "", nullptr}};
  Proxy b{runtime, cfg, registry, ProxyTarget{{"ns", "server", "server"}, "", nullptr}};
  asio::io_context io;  // the test's client and app
  tcp::acceptor app{io, tcp::endpoint(asio::ip::make_address("127.0.0.2"), 0)};
  uint16_t app_port = app.local_endpoint().port();
  AccessLog log;

  explicit Mesh(bool a_credentials = true, const char* b_identity = "server") {
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
    a.set_seams(sa);
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
    const bool got2 = co_await eventually([&] { return closed("source") == 1 && closed("destination") == 1; });
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
    const bool closed = co_await eventually(
        [&] { return metric(m.registry, "istio_tcp_connections_closed_total", {}) == 2; });
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
