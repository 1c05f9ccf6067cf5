// Network RBAC on a TCP port at the waypoint (the policies the control plane compiled for TCP,
// carried on the `inbound-vip|P|tcp|H` cluster): through the real data path (HBONE client with
// the `sleep` identity -> waypoint -> plain TCP backend), a permitted connection is relayed
// byte for byte and a denied one is closed before any upstream connection is made; both are
// reported with Istio's TCP metrics (a deny flagged RBAC, as the HTTP path's 403).
#include "tests/unit/waypoint/fixture.h"
#include "waypoint/authz/rbac_model.h"
#include "waypoint/naming.h"

using namespace wptest;
using namespace waypoint;

namespace {

// ALLOW (or DENY) connections whose peer is exactly `principal`.
std::shared_ptr<authz::RbacFilters> by_principal(authz::Action action, const std::string& principal) {
  authz::Policy p;
  p.name = "ns[default]-policy[p]-rule[0]";
  p.permissions.push_back(authz::Permission{});  // Any
  authz::Principal id;
  id.kind = authz::Principal::Kind::Authenticated;
  id.principal_name = StringMatcher{StringMatcher::Kind::Exact, principal, {}, false};
  p.principals.push_back(id);
  auto f = std::make_shared<authz::RbacFilters>();
  authz::Rbac r;
  r.action = action;
  r.policies.push_back(std::move(p));
  if (action == authz::Action::Deny) {
    f->deny = std::move(r);
  } else {
    f->allow = std::move(r);
  }
  return f;
}

// The service port 80 as a TCP port (no route configuration), relayed to v3.
void publish_tcp(Fixture& f, std::shared_ptr<const authz::RbacFilters> rbac) {
  auto snap = f.snapshot(RouteConfig{});
  snap->routes.clear();
  auto c = std::make_shared<Cluster>(*snap->clusters.at("v3"));
  c->name = tcp_cluster_name(80, kHost);
  c->network_rbac = std::move(rbac);
  c->load_assignment->cluster_name = c->name;
  snap->clusters[c->name] = c;
  f.proxy->set_config(snap);
}

// Raw bytes through the tunnel; returns what came back before EOF or an error.
std::string relay_once(Fixture& f) {
  std::string got;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    if (!t.ok()) co_return;
    http::AnyStream s(t.value());
    const std::string req = "GET /raw HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    co_await asio::async_write(s, asio::buffer(req), kTuple);
    std::array<char, 4096> b;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(b), kTuple);
      got.append(b.data(), n);
      if (ec) break;
    }
  });
  return got;
}

const std::string kSleep = "spiffe://cluster.local/ns/default/sa/sleep";

}  // namespace

TEST_CASE("TCP port without network RBAC: relayed") {
  Fixture f;
  publish_tcp(f, nullptr);
  const std::string got = relay_once(f);
  CHECK(got.find("HTTP/1.1 200") == 0);
  CHECK(got.find("v3") != std::string::npos);
  CHECK(f.v3.connections == 1);
}

TEST_CASE("TCP port: ALLOW by the peer's principal relays the caller it names") {
  Fixture f;
  publish_tcp(f, by_principal(authz::Action::Allow, kSleep));
  const std::string got = relay_once(f);
  CHECK(got.find("v3") != std::string::npos);
  CHECK(f.v3.connections == 1);
  // Counted as a relayed TCP connection, with the bytes both ways.
  const std::string tcp = "request_protocol=\"tcp\",response_flags=\"-\"";
  CHECK(f.has_metric("istio_tcp_connections_opened_total{reporter=\"waypoint\""));
  CHECK(f.has_metric(tcp));
  CHECK(f.has_metric("source_principal=\"" + kSleep + "\""));
  CHECK(f.has_metric("istio_tcp_connections_closed_total{"));
  CHECK(f.has_metric("istio_tcp_received_bytes_total{"));
  CHECK(f.has_metric("istio_tcp_sent_bytes_total{"));
  CHECK(f.registry.render().find("istio_requests_total{") == std::string::npos);
}

TEST_CASE("TCP port: ALLOW for someone else closes the connection; nothing reaches the upstream") {
  Fixture f;
  publish_tcp(f, by_principal(authz::Action::Allow, "spiffe://cluster.local/ns/default/sa/other"));
  CHECK(relay_once(f).empty());
  CHECK(f.v3.connections == 0);
}

TEST_CASE("TCP port: an ALLOW policy with no rule left (all were HTTP-only) closes every connection") {
  Fixture f;
  auto none = std::make_shared<authz::RbacFilters>();
  none->allow = authz::Rbac{authz::Action::Allow, {}};
  publish_tcp(f, none);
  CHECK(relay_once(f).empty());
  CHECK(f.v3.connections == 0);
}

TEST_CASE("TCP port: DENY of the caller closes the connection") {
  Fixture f;
  publish_tcp(f, by_principal(authz::Action::Deny, kSleep));
  CHECK(relay_once(f).empty());
  CHECK(f.v3.connections == 0);
  // Opened and closed with the RBAC flag; no bytes were relayed.
  CHECK(f.has_metric("response_flags=\"RBAC\""));
  const std::string page = f.registry.render();
  CHECK(page.find("istio_tcp_connections_opened_total{reporter=\"waypoint\"") != std::string::npos);
  CHECK(page.find("istio_tcp_connections_closed_total{reporter=\"waypoint\"") != std::string::npos);
  CHECK(page.find("istio_tcp_received_bytes_total{") == std::string::npos);
  CHECK(page.find("response_flags=\"-\"") == std::string::npos);
}

// ---- pod-addressed TCP: a workload bound to the waypoint, reached by its own address ----------

namespace {

// v3's pod (plain TCP, bound to the waypoint) in the workload model; `rbac` on the carrier
// cluster kPodTcpRbacCluster (null = no such cluster: nothing targets the waypoint).
void publish_pod(Fixture& f, std::shared_ptr<const authz::RbacFilters> rbac) {
  auto snap = f.snapshot(RouteConfig{});
  snap->routes.clear();
  ztunnel::Workload w;
  w.uid = "Kubernetes//Pod/default/plain-v3";
  w.name = "plain-v3";
  w.ns = "default";
  w.service_account = "plain";
  w.addresses = {asio::ip::make_address(f.v3.ip())};
  w.waypoint = ztunnel::GatewayAddress{ztunnel::NetworkAddress{"", asio::ip::make_address("127.0.0.1")}};
  snap->workloads = ztunnel::Snapshot::build({w}, {}, {});
  if (rbac) {
    auto c = std::make_shared<Cluster>();
    c->name = std::string(kPodTcpRbacCluster);
    c->discovery = Cluster::Discovery::Static;
    c->load_assignment = ClusterLoadAssignment{};
    c->load_assignment->cluster_name = c->name;
    c->network_rbac = std::move(rbac);
    snap->clusters[c->name] = c;
  }
  f.proxy->set_config(snap);
}

std::string relay_to_pod(Fixture& f) {
  std::string got;
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(f.v3.ip() + ":" + std::to_string(f.v3.port()));
    if (!t.ok()) co_return;
    http::AnyStream s(t.value());
    const std::string req = "GET /raw HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    co_await asio::async_write(s, asio::buffer(req), kTuple);
    std::array<char, 4096> b;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(b), kTuple);
      got.append(b.data(), n);
      if (ec) break;
    }
  });
  return got;
}

}  // namespace

TEST_CASE("pod-addressed TCP without a policy on the waypoint: relayed to the pod") {
  Fixture f;
  publish_pod(f, nullptr);
  CHECK(relay_to_pod(f).find("v3") != std::string::npos);
  CHECK(f.v3.connections == 1);
}

TEST_CASE("pod-addressed TCP: the waypoint's ALLOW relays the caller it names") {
  Fixture f;
  publish_pod(f, by_principal(authz::Action::Allow, kSleep));
  CHECK(relay_to_pod(f).find("v3") != std::string::npos);
  CHECK(f.v3.connections == 1);
}

TEST_CASE("pod-addressed TCP: the waypoint's ALLOW for someone else closes the connection") {
  Fixture f;
  publish_pod(f, by_principal(authz::Action::Allow, "spiffe://cluster.local/ns/default/sa/other"));
  CHECK(relay_to_pod(f).empty());
  CHECK(f.v3.connections == 0);
  CHECK(f.has_metric("response_flags=\"RBAC\""));
}

TEST_CASE("pod-addressed TCP: the waypoint's DENY of the caller closes the connection") {
  Fixture f;
  publish_pod(f, by_principal(authz::Action::Deny, kSleep));
  CHECK(relay_to_pod(f).empty());
  CHECK(f.v3.connections == 0);
  CHECK(f.has_metric("response_flags=\"RBAC\""));
}
