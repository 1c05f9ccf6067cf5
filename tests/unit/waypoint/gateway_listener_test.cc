// The ingress role's listener boundary: Envoy Listener -> GatewayListener (waypoint/xds/
// listener_convert.h, refusals naming the field), Envoy's SNI filter-chain choice and the
// certificate loading of waypoint/ingress/tls_terminator.h, and the node id / env of the role.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "common/identity/certs.h"
#include "waypoint/config.h"
#include "waypoint/ingress/tls_terminator.h"
#include "waypoint/xds/listener_convert.h"

namespace listener = envoy::config::listener::v3;
namespace hcm = envoy::extensions::filters::network::http_connection_manager::v3;
namespace tls = envoy::extensions::transport_sockets::tls::v3;
using waypoint::GatewayListener;
using waypoint::ListenerChain;

namespace {

listener::FilterChain* chain(listener::Listener& l, const std::string& route, const std::string& secret = "") {
  auto* fc = l.add_filter_chains();
  hcm::HttpConnectionManager h;
  h.mutable_rds()->set_route_config_name(route);
  h.mutable_rds()->mutable_config_source()->mutable_ads();
  auto* f = fc->add_filters();
  f->set_name("envoy.filters.network.http_connection_manager");
  f->mutable_typed_config()->PackFrom(h);
  if (!secret.empty()) {
    tls::DownstreamTlsContext ctx;
    ctx.mutable_common_tls_context()->add_tls_certificate_sds_secret_configs()->set_name(secret);
    fc->mutable_transport_socket()->set_name("envoy.transport_sockets.tls");
    fc->mutable_transport_socket()->mutable_typed_config()->PackFrom(ctx);
  }
  return fc;
}

listener::Listener base(uint32_t port) {
  listener::Listener l;
  l.set_name("0.0.0.0_" + std::to_string(port));
  l.mutable_address()->mutable_socket_address()->set_address("0.0.0.0");
  l.mutable_address()->mutable_socket_address()->set_port_value(port);
  return l;
}

ListenerChain chain_of(std::vector<std::string> names, std::string route, std::string credential) {
  ListenerChain c;
  c.server_names = std::move(names);
  c.route_name = std::move(route);
  c.credential_name = std::move(credential);
  return c;
}

common::Result<GatewayListener> parse(const listener::Listener& l) {
  return waypoint::xds::parse_listener(l.name(), l.SerializeAsString());
}

}  // namespace

TEST_CASE("a plaintext and a TLS listener convert as istiod writes them") {
  auto l = base(80);
  chain(l, "http.80");
  auto p = parse(l);
  REQUIRE(p);
  CHECK(p->port == 80);
  CHECK_FALSE(p->tls());
  CHECK(p->chains[0].route_name == "http.80");

  auto s = base(443);
  chain(s, "https.443.a.gw.ns", "kubernetes://a-cert")->mutable_filter_chain_match()->add_server_names("a.example.com");
  chain(s, "https.443.b.gw.ns", "b-cert")->mutable_filter_chain_match()->add_server_names("*.b.example.com");
  auto t = parse(s);
  REQUIRE(t);
  CHECK(t->tls());
  CHECK(t->chains[0].credential_name == "a-cert");
  CHECK(t->chains[1].credential_name == "b-cert");
  CHECK(t->chains[1].server_names == std::vector<std::string>{"*.b.example.com"});
}

TEST_CASE("listeners the gateway cannot serve are refused naming the field") {
  SECTION("no port") {
    auto l = base(0);
    chain(l, "http.0");
    auto p = parse(l);
    REQUIRE_FALSE(p);
    CHECK(p.error().find("listener.address.socket_address.port_value") != std::string::npos);
  }
  SECTION("a filter other than the HCM") {
    auto l = base(80);
    chain(l, "http.80")->mutable_filters(0)->set_name("envoy.filters.network.tcp_proxy");
    auto p = parse(l);
    REQUIRE_FALSE(p);
    CHECK(p.error().find("listener.filter_chains[0].filters[0].name") != std::string::npos);
  }
  SECTION("an inline route configuration instead of RDS") {
    auto l = base(80);
    auto* fc = chain(l, "http.80");
    hcm::HttpConnectionManager h;
    h.set_stat_prefix("x");
    fc->mutable_filters(0)->mutable_typed_config()->PackFrom(h);
    auto p = parse(l);
    REQUIRE_FALSE(p);
    CHECK(p.error().find("rds.route_config_name") != std::string::npos);
  }
  SECTION("a secret name that is a path") {
    auto l = base(443);
    chain(l, "r", "kubernetes://../etc");
    auto p = parse(l);
    REQUIRE_FALSE(p);
    CHECK(p.error().find("tls_certificate_sds_secret_configs[0].name") != std::string::npos);
  }
  SECTION("plaintext and TLS on one port") {
    auto l = base(443);
    chain(l, "a");
    chain(l, "b", "cert");
    auto p = parse(l);
    REQUIRE_FALSE(p);
    CHECK(p.error().find("listener.filter_chains") != std::string::npos);
  }
  SECTION("the resource name differs") {
    auto l = base(80);
    chain(l, "http.80");
    auto p = waypoint::xds::parse_listener("other", l.SerializeAsString());
    REQUIRE_FALSE(p);
  }
}

namespace {

tls::DownstreamTlsContext tls_of(const listener::FilterChain& fc) {
  tls::DownstreamTlsContext ctx;
  REQUIRE(fc.transport_socket().typed_config().UnpackTo(&ctx));
  return ctx;
}

void set_tls(listener::FilterChain* fc, const tls::DownstreamTlsContext& ctx) {
  fc->mutable_transport_socket()->mutable_typed_config()->PackFrom(ctx);
}

}  // namespace

TEST_CASE("mutual TLS chains convert as istiod writes them: CA by SDS name, exact SANs") {
  auto l = base(443);
  auto* fc = chain(l, "r", "kubernetes://a-cert");
  auto ctx = tls_of(*fc);
  ctx.mutable_require_client_certificate()->set_value(true);
  auto* cv = ctx.mutable_common_tls_context()->mutable_combined_validation_context();
  cv->mutable_validation_context_sds_secret_config()->set_name("kubernetes://a-cert-cacert");
  cv->mutable_default_validation_context()->add_match_subject_alt_names()->set_exact("spiffe://x/y");
  auto* typed = cv->mutable_default_validation_context()->add_match_typed_subject_alt_names();
  typed->set_san_type(tls::SubjectAltNameMatcher::DNS);
  typed->mutable_matcher()->set_exact("client.example.com");
  set_tls(fc, ctx);
  auto p = parse(l);
  REQUIRE(p);
  CHECK(p->chains[0].require_client_cert);
  CHECK(p->chains[0].ca_credential == "a-cert-cacert");
  CHECK(p->chains[0].client_sans == std::vector<std::string>{"spiffe://x/y", "client.example.com"});

  auto f = base(443);
  auto* ff = chain(f, "r", "a-cert");
  auto fctx = tls_of(*ff);
  fctx.mutable_common_tls_context()->mutable_validation_context_sds_secret_config()->set_name("file-root:/ca/root.pem");
  set_tls(ff, fctx);
  auto q = parse(f);
  REQUIRE(q);
  CHECK_FALSE(q->chains[0].require_client_cert);  // OPTIONAL_MUTUAL: verified when sent
  CHECK(q->chains[0].ca_file == "/ca/root.pem");
}

TEST_CASE("mutual TLS the gateway cannot enforce is refused naming the field") {
  auto l = base(443);
  auto* fc = chain(l, "r", "a-cert");
  auto ctx = tls_of(*fc);
  std::string want;
  SECTION("a client certificate required without a CA") {
    ctx.mutable_require_client_certificate()->set_value(true);
    want = "require_client_certificate";
  }
  SECTION("a prefix SAN matcher") {
    auto* cv = ctx.mutable_common_tls_context()->mutable_combined_validation_context();
    cv->mutable_validation_context_sds_secret_config()->set_name("kubernetes://a-cacert");
    cv->mutable_default_validation_context()->add_match_subject_alt_names()->set_prefix("spiffe://");
    want = "default_validation_context.match_subject_alt_names[0]";
  }
  SECTION("an inline trusted CA") {
    auto* v = ctx.mutable_common_tls_context()->mutable_validation_context();
    v->mutable_trusted_ca()->set_inline_string("-----BEGIN CERTIFICATE-----");
    want = "validation_context.trusted_ca";
  }
  SECTION("a CA Secret name that is a path") {
    ctx.mutable_common_tls_context()->mutable_validation_context_sds_secret_config()->set_name("kubernetes://../x");
    want = "validation_context_sds_secret_config.name";
  }
  SECTION("a relative file-root") {
    ctx.mutable_common_tls_context()->mutable_validation_context_sds_secret_config()->set_name("file-root:ca.pem");
    want = "validation_context_sds_secret_config.name";
  }
  set_tls(fc, ctx);
  auto p = parse(l);
  REQUIRE_FALSE(p);
  INFO(p.error());
  CHECK(p.error().find(want) != std::string::npos);
}

TEST_CASE("a mutual TLS chain whose CA file is missing fails naming it") {
  namespace fs = std::filesystem;
  auto dir = fs::temp_directory_path() / "gateway_listener_test_mtls";
  fs::create_directories(dir / "srv");
  const std::string d = (dir / "srv").string();
  auto ca = common::certs::make_root_ca("test", "gateway test CA", std::chrono::hours(1));
  REQUIRE(ca);
  auto leaf = common::certs::issue_server_cert(*ca, {"s.example.com"}, {}, std::chrono::hours(1));
  REQUIRE(leaf);
  std::ofstream(d + "/tls.crt") << leaf->cert_pem;
  std::ofstream(d + "/tls.key") << leaf->key_pem;
  fs::remove(d + "/ca.crt");
  GatewayListener l;
  l.name = "0.0.0.0_443";
  l.port = 443;
  ListenerChain c = chain_of({}, "r", "srv");
  c.require_client_cert = true;
  c.ca_credential = "srv-cacert";
  l.chains = {c};
  auto t = waypoint::ingress::make_server_tls(l, dir.string());
  REQUIRE_FALSE(t);
  CHECK(t.error().find("srv/ca.crt") != std::string::npos);  // the fallback: the Secret's own ca.crt
  std::ofstream(d + "/ca.crt") << ca->cert_pem;
  CHECK(waypoint::ingress::make_server_tls(l, dir.string()));
}

TEST_CASE("SNI picks the filter chain as Envoy does: exact, longest wildcard, then no server_names") {
  GatewayListener l;
  l.chains = {chain_of({"*.example.com"}, "wild", "c1"), chain_of({"a.example.com"}, "exact", "c2"),
              chain_of({"*.b.example.com"}, "longer", "c3"), chain_of({}, "any", "c4")};
  CHECK(waypoint::ingress::choose_chain(l, "a.example.com") == 1);
  CHECK(waypoint::ingress::choose_chain(l, "x.b.example.com") == 2);
  CHECK(waypoint::ingress::choose_chain(l, "z.example.com") == 0);
  CHECK(waypoint::ingress::choose_chain(l, "other.org") == 3);
  CHECK(waypoint::ingress::choose_chain(l, "") == 3);
  l.chains.pop_back();
  CHECK(waypoint::ingress::choose_chain(l, "other.org") == -1);
  CHECK(waypoint::ingress::choose_chain(l, "example.com") == -1);  // "*.x" needs a label before it
}

TEST_CASE("a TLS listener whose Secret files are missing fails naming the credential and files") {
  GatewayListener l;
  l.name = "0.0.0.0_443";
  l.port = 443;
  l.chains = {chain_of({}, "r", "no-such-secret")};
  auto dir = std::filesystem::temp_directory_path() / "gateway_listener_test_empty";
  std::filesystem::create_directories(dir);
  auto t = waypoint::ingress::make_server_tls(l, dir.string());
  REQUIRE_FALSE(t);
  CHECK(t.error().find("no-such-secret") != std::string::npos);
  CHECK(t.error().find("tls.crt") != std::string::npos);
}

TEST_CASE("PROXY_TYPE selects the role and the node id; anything else is refused by name") {
  auto env = [](std::map<std::string, std::string> m) -> common::env::EnvLookup {
    m.emplace("SERVICE_ACCOUNT", "ingress");
    m.emplace("LOCAL_CA_DIR", "/tmp/ca");
    m.emplace("POD_NAME", "gw-0");
    m.emplace("POD_NAMESPACE", "istio-ingress");
    return [m](std::string_view k) -> std::optional<std::string> {
      auto it = m.find(std::string(k));
      if (it == m.end()) return std::nullopt;
      return it->second;
    };
  };
  auto c = waypoint::load_config(
      env({{"PROXY_TYPE", "router"}, {"INSTANCE_IP", "10.0.0.20"}, {"GATEWAY_CREDENTIAL_DIR", "/x"}}), 2);
  REQUIRE(c);
  CHECK(c->gateway());
  CHECK(c->gateway_credential_dir == "/x");
  CHECK(c->node_id() == "router~10.0.0.20~gw-0.istio-ingress~istio-ingress.svc.cluster.local");
  auto w = waypoint::load_config(env({{"PROXY_TYPE", "sidecar"}}), 2);
  REQUIRE_FALSE(w);
  CHECK(w.error().find("PROXY_TYPE") != std::string::npos);
}
