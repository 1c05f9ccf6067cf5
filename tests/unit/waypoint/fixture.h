// Test fixture for the waypoint data path (header-only, tests/unit/waypoint only): a Proxy on
// loopback with its own certificate, HTTP/1.1 backends on 127.0.0.2-4, a "destination ztunnel"
// (hbone server with the pods' identity relaying to the pod address), route/cluster snapshots
// built in C++, and an HBONE client helper.
#pragma once

#include <array>
#include <boost/asio.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"
#include "common/admin/metrics.h"
#include "common/runtime.h"
#include "hbone/client.h"
#include "hbone/copy.h"
#include "hbone/headers.h"
#include "hbone/server.h"
#include "waypoint/config_source.h"
#include "waypoint/http/http1.h"
#include "waypoint/naming.h"
#include "waypoint/proxy.h"
#include "waypoint/telemetry.h"
#include "common/state/snapshot.h"

namespace wptest {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace waypoint;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
inline const std::string kHost = "calc.default.svc.cluster.local";
inline const std::string kVip = "10.96.0.10";  // a lookup key only: nothing is ever sent to it

// An HTTP/1.1 app: "/" answers its name, "/sleep/<ms>" answers after a delay, "/status/<n>"
// answers that status. Counts connections and requests and keeps the request heads.
struct Backend {
  Backend(asio::io_context& io, std::string n, const std::string& ip)
      : name(std::move(n)), acc(io, tcp::endpoint(asio::ip::make_address(ip), 0)) {
    asio::co_spawn(io, run(), asio::detached);
  }
  std::string name;
  tcp::acceptor acc;
  int connections = 0;
  int requests = 0;
  uint16_t forced_status = 0;  // non-zero: every request is answered with this status
  std::vector<router::HttpRequest> seen;

  uint16_t port() const { return acc.local_endpoint().port(); }
  std::string ip() const { return acc.local_endpoint().address().to_string(); }

  asio::awaitable<void> run() {
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(kTuple);
      if (ec) co_return;
      ++connections;
      asio::co_spawn(acc.get_executor(), serve(std::move(sock)), asio::detached);
    }
  }
  asio::awaitable<void> serve(tcp::socket sock) {
    http::AnyStream s(std::move(sock));
    http::ReadBuffer buf;
    for (;;) {
      auto rr = co_await http::read_request(s, buf, 1 << 20);
      if (rr.error != http::ReadError::None) co_return;
      ++requests;
      seen.push_back(rr.request.head);
      http::Response resp;
      resp.body = name;
      const auto& path = rr.request.head.path;
      if (path == "/ws" && rr.request.upgrade == "websocket") {
        // Switch protocols, then echo raw bytes until the client half-closes.
        resp.status = 101;
        resp.body.clear();
        resp.headers.add("upgrade", "websocket");
        if (!co_await http::write_response(s, resp, http::Protocol::Http11, false, false)) co_return;
        std::string pending = buf.take();
        if (!pending.empty()) co_await asio::async_write(s, asio::buffer(pending), kTuple);
        std::array<char, 4096> b;
        for (;;) {
          auto [ec, n] = co_await s.async_read_some(asio::buffer(b), kTuple);
          if (n > 0) co_await asio::async_write(s, asio::buffer(b.data(), n), kTuple);
          if (ec) break;
        }
        s.shutdown_write();
        co_return;
      }
      if (path.starts_with("/sleep/")) {
        asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(std::stoi(path.substr(7))));
        co_await t.async_wait(kTuple);
      } else if (path.starts_with("/status/")) {
        resp.status = static_cast<uint16_t>(std::stoi(path.substr(8)));
      }
      if (forced_status != 0) resp.status = forced_status;
      resp.headers.add("x-backend", name);
      if (!co_await http::write_response(s, resp, http::Protocol::Http11, false, !rr.keep_alive)) co_return;
      if (!rr.keep_alive) co_return;
    }
  }
};

struct Fixture {
  asio::io_context io;
  common::LocalCaProvider ca{common::LocalCa::generate("cluster.local").value(), std::chrono::hours(1)};
  common::Identity waypoint_id{"cluster.local", "default", "waypoint"};
  common::Identity client_id{"cluster.local", "default", "sleep"};
  common::Identity pod_id{"cluster.local", "default", "calc"};
  hbone::TlsContexts client_tls = make(client_id);
  hbone::TlsContexts pod_tls = make(pod_id);
  // v1 and v2 are HBONE pods behind the "destination ztunnel"; v3 is a plain-TCP endpoint.
  Backend v1{io, "v1", "127.0.0.2"}, v2{io, "v2", "127.0.0.3"}, v3{io, "v3", "127.0.0.4"};
  tcp::acceptor zt1{io, tcp::endpoint(asio::ip::make_address("127.0.0.2"), 0)};
  std::unique_ptr<tcp::acceptor> zt2;
  std::vector<std::string> zt_authorities, zt_peers;
  std::vector<std::shared_ptr<hbone::Connection>> clients;

  common::metrics::Registry registry;
  Telemetry telemetry{registry};
  common::Runtime rt{1};
  std::unique_ptr<Proxy> proxy;

  // `tracer`: the waypoint's Zipkin tracer (tracing_test); null = no tracing.
  explicit Fixture(std::shared_ptr<tracing::Tracer> tracer = nullptr) {
    const uint16_t zport = zt1.local_endpoint().port();
    zt2 = std::make_unique<tcp::acceptor>(io, tcp::endpoint(asio::ip::make_address("127.0.0.3"), zport));
    asio::co_spawn(io, ztunnel_accept(zt1), asio::detached);
    asio::co_spawn(io, ztunnel_accept(*zt2), asio::detached);
    ProxyOptions o;
    o.listen_address = "127.0.0.1";
    o.port = 0;
    o.upstream_hbone_port = zport;
    o.tracer = std::move(tracer);
    proxy = std::make_unique<Proxy>(rt, o, waypoint_id, telemetry);
    auto creds = ca.issue(waypoint_id);
    REQUIRE(creds.ok());
    REQUIRE(proxy->set_credentials(std::make_shared<common::tls::Credentials>(creds.value())).ok());
    REQUIRE(proxy->start().ok());
  }
  ~Fixture() {
    rt.stop();
    proxy.reset();
  }

  hbone::TlsContexts make(const common::Identity& id) {
    auto creds = ca.issue(id);
    REQUIRE(creds.ok());
    auto t = hbone::make_tls_contexts(std::make_shared<common::tls::Credentials>(creds.value()));
    REQUIRE(t.ok());
    return t.value();
  }

  // The destination node's ztunnel: HBONE in, plain TCP to the pod address the authority names.
  asio::awaitable<void> ztunnel_accept(tcp::acceptor& acc) {
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(io,
                     hbone::serve_connection(
                         std::move(sock), pod_tls.server, hbone::Settings{},
                         [this](std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> peer) {
                           asio::co_spawn(io, ztunnel_stream(std::move(s), peer), asio::detached);
                         },
                         {}),
                     asio::detached);
    }
  }
  asio::awaitable<void> ztunnel_stream(std::shared_ptr<hbone::Stream> s, std::shared_ptr<const hbone::PeerInfo> peer) {
    zt_authorities.push_back(s->request().authority);
    zt_peers.push_back(peer->identity ? peer->identity->uri() : "none");
    auto a = hbone::parse_authority(s->request().authority);
    if (!a || !a->ip) {
      s->respond(400);
      co_return;
    }
    tcp::socket up(io);
    auto [ec] = co_await up.async_connect(tcp::endpoint(*a->ip, a->port), kTuple);
    if (ec) {
      s->respond(503);
      co_return;
    }
    s->respond(200);
    co_await hbone::copy_bidirectional(up, s);
  }

  // Mesh model + clusters: cluster "v1", "v2", "v3" (one endpoint each) and "all" (v1 + v2).
  std::shared_ptr<ConfigSnapshot> snapshot(RouteConfig rc) {
    auto snap = std::make_shared<ConfigSnapshot>();
    std::vector<ztunnel::Workload> ws;
    for (auto [name, ip] : {std::pair<const char*, const char*>{"calc-v1", "127.0.0.2"}, {"calc-v2", "127.0.0.3"}}) {
      ztunnel::Workload w;
      w.uid = std::string("Kubernetes//Pod/default/") + name;
      w.name = name;
      w.ns = "default";
      w.service_account = "calc";
      w.addresses = {asio::ip::make_address(ip)};
      w.tunnel_protocol = ztunnel::TunnelProtocol::Hbone;
      ws.push_back(w);
    }
    ztunnel::Service svc;
    svc.name = "calc";
    svc.ns = "default";
    svc.hostname = kHost;
    svc.vips = {ztunnel::NetworkAddress{"", asio::ip::make_address(kVip)}};
    svc.ports.set(80, 8080);
    snap->workloads = ztunnel::Snapshot::build(ws, {svc}, {});
    auto cluster = [&](const std::string& name, std::vector<const Backend*> bs) {
      auto c = std::make_shared<Cluster>();
      c->name = name;
      c->policy.lb_policy = LbPolicy::LeastRequest;
      ClusterLoadAssignment cla;
      cla.cluster_name = name;
      for (auto* b : bs) {
        Endpoint e;
        e.address = b->ip();
        e.port = b->port();
        cla.endpoints.push_back(e);
      }
      c->load_assignment = cla;
      c->discovery = Cluster::Discovery::Static;
      snap->clusters[name] = c;
    };
    cluster("v1", {&v1});
    cluster("v2", {&v2});
    cluster("v3", {&v3});
    cluster("all", {&v1, &v2});
    const std::string name = http_route_name(80, kHost);
    rc.name = name;
    snap->routes[name] = std::make_shared<RouteConfig>(std::move(rc));
    return snap;
  }

  static Route route_to(std::string cluster) {
    Route r;
    r.name = "to-" + cluster;
    RouteAction a;
    a.cluster = std::move(cluster);
    a.timeout = Duration(0);
    r.action = a;
    return r;
  }
  static RouteConfig config_of(std::vector<Route> routes) {
    RouteConfig rc;
    VirtualHost vh;
    vh.name = "inbound|http|80";
    vh.domains = {"*"};
    vh.routes = std::move(routes);
    rc.virtual_hosts.push_back(std::move(vh));
    return rc;
  }
  void set_routes(std::vector<Route> routes) { proxy->set_config(snapshot(config_of(std::move(routes)))); }

  // Telemetry is recorded on the waypoint's worker after the response was written, so the
  // client can see the response first: wait (bounded) for a series to appear.
  bool has_metric(const std::string& needle) {
    for (int i = 0; i < 200; ++i) {
      if (registry.render().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // A CONNECT stream from the client's "ztunnel" to the waypoint.
  asio::awaitable<common::Result<std::shared_ptr<hbone::Stream>>> tunnel(std::string authority) {
    hbone::DialOptions o;
    o.target = tcp::endpoint(asio::ip::make_address("127.0.0.1"), proxy->port());
    o.expected = {waypoint_id};
    auto conn = co_await hbone::dial(io.get_executor(), client_tls.client, o);
    if (!conn) co_return common::make_error(conn.error());
    clients.push_back(conn.value());
    hbone::ConnectRequest req;
    req.authority = std::move(authority);
    req.forwarded = "for=\"127.0.0.9:40000\"";
    co_return co_await conn.value()->open(req);
  }

  // How long run() lets the body take before failing: a hang guard, not a timing check (the
  // large-transfer cases raise it: under ASan on a loaded 2-core machine they take minutes).
  std::chrono::seconds run_limit{60};

  template <typename F>
  void run(F body) {
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await body();
          done = true;
          // Close everything while both loops still run, so every connection and stream finishes
          // (frames destroyed mid-flight would be reported as leaks under ASan).
          proxy->drain();
          proxy->force_close();
          for (auto& c : clients) c->close("test done");
          asio::steady_timer grace(io, std::chrono::milliseconds(300));
          co_await grace.async_wait(kTuple);
          io.stop();
        },
        asio::detached);
    io.run_for(run_limit);
    io.restart();
    REQUIRE(done);
  }
};

inline http::Request get(std::string path, std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::Request r;
  r.head.method = "GET";
  r.head.path = std::move(path);
  r.head.authority = kHost;
  for (auto& [k, v] : headers) r.head.headers.add(k, v);
  return r;
}

// One request on an open tunnel (keep-alive).
inline asio::awaitable<http::ReadResponseResult> exchange(http::AnyStream& s, http::ReadBuffer& buf,
                                                          const http::Request& r) {
  if (!co_await http::write_request(s, r)) {
    http::ReadResponseResult bad;
    bad.error = http::ReadError::Reset;
    co_return bad;
  }
  co_return co_await http::read_response(s, buf, 1 << 20, false);
}

inline std::string vip_authority() {
  return kVip + ":80";
}

}  // namespace wptest
