// controlplane/jwks_resolver + http_fetch: RequestAuthentication keys fetched from a jwksUri
// (http and https) or by OpenID discovery, served here by a small loopback server; rotation,
// failures before and after a success, the size limit, and what the waypoint compile inlines.
#include <catch2/catch.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/identity/certs.h"
#include "controlplane/http_fetch.h"
#include "controlplane/jwks_resolver.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb.h"
#include "tests/unit/controlplane/waypoint_fixture.h"

using namespace controlplane;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// A JWKS with one RSA (RS256) and one EC P-256 (ES256) key (public halves only).
const std::string kJwksA =
    R"({"keys":[{"kty":"RSA","alg":"RS256","kid":"a-rsa","e":"AQAB","n":")"
    "qtMv5kn7yc0jvxMb-XlSjl2bt0T8-BaBT3ydqJe8d26ZgZyPDQ10wbSSHOLt_FjV6LaKhWkAYkh9TjeUDi0SljQDtlINVIWOXCTY0TyAHeNkiYOB7rr"
    "EQ7cg5HXVWBpZXAMQQ7VqK_tJyHF_mdsdFn0y-tnCNVUkWaAmoP8wlw-8nTlJiZ2bEeGC0PnuB3cc_pJGJ5CoyLWcmAdbJCLOjbPhn5WeT1FKfpWm4f2f"
    "8Iu8pL-0POuLLjTwTI3Hu31xIEvkiHVAqR7FoaLvqKWX4TlWNGDtpz6bOccAF5BLtwy0v_LFPGRAURQZ1UH70SSUuZhSxm2UZNi0ttPWYMsZ9w"
    R"("},{"kty":"EC","alg":"ES256","kid":"a-ec","crv":"P-256","x":"U7ekDVOiUuYVRt44BTr8yHespSceBuCyjFDszfLmBIs",)"
    R"("y":"hOONTCxSUK3Rh5fBumFxR0wgRG-DsGN1Pwr8rmFm0aw"}]})";
// After a rotation: another EC key.
const std::string kJwksB =
    R"({"keys":[{"kty":"EC","alg":"ES256","kid":"b-ec","crv":"P-256","x":"53IVwQFCqGhQh46Uhgeq13JYE088bzq2ZcTzkFFjZek",)"
    R"("y":"zZZbAhneOEH-8Y_DyR1s4Iej89BYWf12bV9Wm18bzPs"}]})";

// One-request-per-connection HTTP/1.1 server on 127.0.0.1 (TLS when given a certificate).
class TestServer {
 public:
  explicit TestServer(std::optional<common::certs::CertAndKey> tls = std::nullopt) : acceptor_(io_) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    if (tls) {
      ctx_.emplace(ssl::context::tls_server);
      ctx_->use_certificate_chain(asio::buffer(tls->cert_pem));
      ctx_->use_private_key(asio::buffer(tls->key_pem), ssl::context::pem);
    }
    thread_ = std::thread([this] { run(); });
  }
  ~TestServer() { stop(); }

  void set(const std::string& path, int status, std::string body) {
    std::lock_guard<std::mutex> l(mu_);
    routes_[path] = {status, std::move(body)};
  }
  int hits(const std::string& path) {
    std::lock_guard<std::mutex> l(mu_);
    return hits_[path];
  }
  uint16_t port() const { return port_; }
  std::string url(const std::string& path) const {
    return std::string(ctx_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
  }
  void stop() {
    if (stopping_.exchange(true)) return;
    // Unblocks accept() with a connection of our own.
    asio::io_context io;
    tcp::socket s(io);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
    acceptor_.close(ec);
  }

 private:
  template <class Stream>
  void serve(Stream& s) {
    boost::beast::flat_buffer buf;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(s, buf, req, ec);
    if (ec) return;
    const std::string target(req.target());
    std::pair<int, std::string> r{404, "not found"};
    {
      std::lock_guard<std::mutex> l(mu_);
      ++hits_[target];
      if (auto it = routes_.find(target); it != routes_.end()) r = it->second;
    }
    http::response<http::string_body> res{static_cast<http::status>(r.first), 11};
    res.set(http::field::content_type, "application/json");
    res.body() = r.second;
    res.prepare_payload();
    http::write(s, res, ec);
  }
  void run() {
    for (;;) {
      tcp::socket sock(io_);
      boost::system::error_code ec;
      acceptor_.accept(sock, ec);
      if (stopping_ || ec) return;
      if (!ctx_) {
        serve(sock);
        continue;
      }
      ssl::stream<tcp::socket&> s(sock, *ctx_);
      s.handshake(ssl::stream_base::server, ec);
      if (!ec) serve(s);
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> ctx_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::map<std::string, std::pair<int, std::string>> routes_;
  std::map<std::string, int> hits_;
  std::thread thread_;
};

// A port nothing listens on (bound, then closed).
uint16_t closed_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// Polls `pred` (the resolver works in the background) for up to 20 s.
template <class F>
bool eventually(F pred) {
  for (int i = 0; i < 400; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

JwksResolverOptions fast() {
  JwksResolverOptions o;
  o.refresh_interval = 100ms;
  o.retry_initial = 50ms;
  o.fetch.timeout = 3s;
  return o;
}

}  // namespace

TEST_CASE("http_get: URL parsing names what is wrong", "[jwks]") {
  HttpUrl u;
  std::string why;
  REQUIRE(parse_http_url("https://issuer.example.com/keys?x=1#frag", u, why));
  CHECK(u.tls);
  CHECK(u.host == "issuer.example.com");
  CHECK(u.port == "443");
  CHECK(u.target == "/keys?x=1");
  REQUIRE(parse_http_url("http://[::1]:8080", u, why));
  CHECK(u.host == "::1");
  CHECK(u.port == "8080");
  CHECK(u.target == "/");
  CHECK_FALSE(parse_http_url("ftp://x/", u, why));
  CHECK_FALSE(parse_http_url("http://:80/", u, why));
  CHECK(why == "no host");
  CHECK_FALSE(parse_http_url("http://h:99999/", u, why));
  CHECK_FALSE(parse_http_url("http://u:p@h/", u, why));
  CHECK_FALSE(parse_http_url("http://h/a b", u, why));
}

TEST_CASE("jwks resolver: http jwksUri with RS256 and ES256 keys, then a rotation", "[jwks]") {
  TestServer srv;
  srv.set("/keys", 200, kJwksA);
  JwksResolver r(fast());
  std::atomic<int> calls{0};
  r.set_listener([&] { ++calls; });
  // Never blocks: nothing yet, the fetch is queued.
  CHECK(r.keys_for_uri(srv.url("/keys")).jwks.empty());
  REQUIRE(eventually([&] { return r.keys_for_uri(srv.url("/keys")).jwks == kJwksA; }));
  CHECK(r.generation() >= 1);
  CHECK(calls >= 1);
  const uint64_t g = r.generation();
  // Refreshes that bring the same keys change nothing.
  const int h = srv.hits("/keys");
  REQUIRE(eventually([&] { return srv.hits("/keys") >= h + 2; }));
  CHECK(r.generation() == g);
  srv.set("/keys", 200, kJwksB);
  REQUIRE(eventually([&] { return r.keys_for_uri(srv.url("/keys")).jwks == kJwksB; }));
  CHECK(r.generation() > g);
  // A compile that no longer asks for the URL: it is forgotten (and fetched anew if asked again).
  r.forget_unused_since(std::chrono::steady_clock::now() + 1s);
  CHECK(r.keys_for_uri(srv.url("/keys")).jwks.empty());
}

TEST_CASE("jwks resolver: failures before any success leave no keys; after one the last keys stay", "[jwks]") {
  JwksResolver r(fast());
  const std::string down = "http://127.0.0.1:" + std::to_string(closed_port()) + "/keys";
  CHECK(r.keys_for_uri(down).jwks.empty());
  REQUIRE(eventually([&] { return !r.keys_for_uri(down).error.empty(); }));
  CHECK(r.keys_for_uri(down).jwks.empty());
  CHECK(r.keys_for_uri(down).error.find(down) != std::string::npos);

  TestServer srv;
  srv.set("/bad", 200, R"({"keys":[]})");
  srv.set("/gone", 500, "oops");
  REQUIRE(eventually([&] { return !r.keys_for_uri(srv.url("/bad")).error.empty(); }));
  CHECK(r.keys_for_uri(srv.url("/bad")).error.find("not a JWKS") != std::string::npos);
  REQUIRE(eventually([&] { return !r.keys_for_uri(srv.url("/gone")).error.empty(); }));
  CHECK(r.keys_for_uri(srv.url("/gone")).error.find("HTTP 500") != std::string::npos);

  srv.set("/keys", 200, kJwksA);
  const std::string url = srv.url("/keys");
  REQUIRE(eventually([&] { return r.keys_for_uri(url).jwks == kJwksA; }));
  srv.stop();  // the server goes away: refreshes fail, the keys stay
  REQUIRE(eventually([&] { return !r.keys_for_uri(url).error.empty(); }));
  CHECK(r.keys_for_uri(url).jwks == kJwksA);
}

TEST_CASE("jwks resolver: a body over the size limit is a failure", "[jwks]") {
  TestServer srv;
  srv.set("/big", 200, std::string(4096, ' ') + kJwksA);
  auto o = fast();
  o.fetch.max_bytes = 1024;
  JwksResolver r(o);
  REQUIRE(eventually([&] { return !r.keys_for_uri(srv.url("/big")).error.empty(); }));
  CHECK(r.keys_for_uri(srv.url("/big")).error.find("larger than 1024 bytes") != std::string::npos);
  CHECK(r.keys_for_uri(srv.url("/big")).jwks.empty());
}

TEST_CASE("jwks resolver: https verifies the server with the extra CA", "[jwks]") {
  auto ca = common::certs::make_root_ca("test", "jwks test CA", 3600s);
  REQUIRE(ca);
  auto leaf = common::certs::issue_server_cert(*ca, {"localhost"}, {"127.0.0.1"}, 3600s);
  REQUIRE(leaf);
  TestServer srv(*leaf);
  srv.set("/keys", 200, kJwksA);
  // Direct fetch: without the CA the certificate is not trusted.
  HttpFetchOptions plain;
  auto untrusted = http_get(srv.url("/keys"), plain);
  REQUIRE_FALSE(untrusted);
  CHECK(untrusted.error().find("certificate verify failed") != std::string::npos);
  auto o = fast();
  o.fetch.extra_ca_pem = ca->cert_pem;
  JwksResolver r(o);
  REQUIRE(eventually([&] { return r.keys_for_uri(srv.url("/keys")).jwks == kJwksA; }));
}

TEST_CASE("jwks resolver: OpenID discovery from the issuer", "[jwks]") {
  TestServer srv;
  srv.set("/keys", 200, kJwksB);
  const std::string issuer = "http://127.0.0.1:" + std::to_string(srv.port()) + "/realm";
  srv.set("/realm/.well-known/openid-configuration", 200,
          R"({"issuer":")" + issuer + R"(","jwks_uri":")" + srv.url("/keys") + R"("})");
  JwksResolver r(fast());
  REQUIRE(eventually([&] { return r.keys_for_issuer(issuer).jwks == kJwksB; }));
}

namespace {

const std::string kAuthnMesh = std::string(wptest::kWaypointMeshPrefix) + R"(---
apiVersion: v1
kind: Service
metadata: {name: calculate, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: calculate}
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 8080, targetPort: 80}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: demo}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  jwtRules:
  - issuer: https://issuer.demo
    jwksUri: URL
)";

// The compiled JWKS of provider demo/jwt/0 on the calculate route, and the findings.
std::string compiled_jwks(const std::string& url, const CompileOptions& opt, Diagnostics& diags) {
  std::string yaml = kAuthnMesh;
  yaml.replace(yaml.find("URL"), 3, url);
  ResourceSet set;
  parse_manifests(yaml, "mesh.yaml", set, diags);
  auto res = compile_waypoints(set, opt);
  diags.insert(diags.end(), res.diagnostics.begin(), res.diagnostics.end());
  REQUIRE(res.by_gateway.count("demo/waypoint") == 1);
  const auto& w = *res.by_gateway.at("demo/waypoint");
  const std::string name = "inbound-vip|8080|http|calculate.demo.svc.cluster.local";
  REQUIRE(w.routes.count(name) == 1);
  auto rc = wptest::unpack<envoy::config::route::v3::RouteConfiguration>(w.routes.at(name));
  REQUIRE(rc.virtual_hosts_size() == 1);
  auto it = rc.virtual_hosts(0).typed_per_filter_config().find("envoy.filters.http.jwt_authn");
  if (it == rc.virtual_hosts(0).typed_per_filter_config().end()) return "";
  envoy::extensions::filters::http::jwt_authn::v3::JwtAuthentication cfg;
  REQUIRE(it->second.UnpackTo(&cfg));
  REQUIRE(cfg.providers().count("demo/jwt/0") == 1);
  return cfg.providers().at("demo/jwt/0").local_jwks().inline_string();
}

bool has_warning(const Diagnostics& d, const std::string& needle) {
  for (const auto& x : d)
    if (x.severity == Severity::Warning && x.field == "spec.jwtRules[0].jwksUri" &&
        x.message.find(needle) != std::string::npos)
      return true;
  return false;
}

}  // namespace

TEST_CASE("waypoint authn: an http jwksUri is inlined once fetched; before that a key nobody holds", "[jwks]") {
  TestServer srv;
  srv.set("/keys", 200, kJwksA);
  CompileOptions opt;
  opt.jwks = std::make_shared<JwksResolver>(fast());
  Diagnostics d1;
  CHECK(compiled_jwks(srv.url("/keys"), opt, d1) == kFailedJwks);
  CHECK(has_warning(d1, "not fetched yet"));
  REQUIRE(eventually([&] { return opt.jwks->generation() >= 1; }));
  Diagnostics d2;
  CHECK(compiled_jwks(srv.url("/keys"), opt, d2) == kJwksA);
  CHECK_FALSE(has_warning(d2, "not fetched yet"));

  // Without a resolver (the one-shot `compile` command) the rule is an Error and left out.
  Diagnostics d3;
  CHECK(compiled_jwks(srv.url("/keys"), CompileOptions{}, d3).empty());
  bool error = false;
  for (const auto& x : d3) error |= x.severity == Severity::Error && x.field == "spec.jwtRules[0].jwksUri";
  CHECK(error);
}
