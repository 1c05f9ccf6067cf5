// IstioCaClient (ztunnel side) against the control plane's CA service (make_ca_service) over a
// real in-process gRPC server with TLS on 127.0.0.1, plus a scripted "rogue" CA to check what
// the client sends and that it refuses a certificate for the wrong identity.
#include "common/ca/istio_ca_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/identity/certs.h"
#include "common/identity/local_ca.h"
#include "common/identity/secret_manager.h"
#include "controlplane/ca_service.h"
#include "controlplane/tokens.h"
#include "istio/v1/auth/ca.grpc.pb.h"

using common::Identity;
using common::ca::IstioCaClient;
namespace certs = common::certs;
namespace tls = common::tls;
using namespace std::chrono_literals;

namespace {

const Identity kAlice("cluster.local", "default", "alice");
const Identity kBob("cluster.local", "default", "bob");
const Identity kCarol("cluster.local", "default", "carol");  // runs on no node

const char* kTokens = R"(tokens:
- token: tok-ztunnel-a
  serviceAccount: istio-system/ztunnel
  node: node-a
- token: tok-rogue-a
  serviceAccount: default/node-agent
  node: node-a
- token: tok-alice
  serviceAccount: default/alice
)";

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Runs `io` until `done()` holds or `limit` passes (a safety net, not an assertion on time).
template <typename Pred>
bool run_until(boost::asio::io_context& io, Pred done, std::chrono::milliseconds limit = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_for(10ms);
  }
  return done();
}

// Serving certificate for 127.0.0.1 under a root of its own (not the workload CA).
struct ServingCert {
  std::string root_pem;
  certs::CertAndKey leaf;
};
ServingCert make_serving_cert() {
  auto root = certs::make_root_ca("test", "serving root", 1h);
  REQUIRE(root.ok());
  auto leaf = certs::issue_server_cert(*root, {"localhost"}, {"127.0.0.1", "::1"}, 1h);
  REQUIRE(leaf.ok());
  return ServingCert{root->cert_pem, std::move(leaf.value())};
}

// A gRPC server on 127.0.0.1:<ephemeral> with TLS, serving `service`.
class TestServer {
 public:
  explicit TestServer(std::unique_ptr<grpc::Service> service) : service_(std::move(service)) {
    ServingCert sc = make_serving_cert();
    root_pem_ = sc.root_pem;
    grpc::SslServerCredentialsOptions opts;
    opts.pem_key_cert_pairs.push_back({sc.leaf.key_pem, sc.leaf.cert_pem});
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(opts), &port_);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    REQUIRE(server_ != nullptr);
    REQUIRE(port_ > 0);
  }
  ~TestServer() { server_->Shutdown(std::chrono::system_clock::now() + 2s); }

  common::grpcx::GrpcEndpoint endpoint(std::string token) const {
    common::grpcx::GrpcEndpoint ep;
    ep.address = "https://127.0.0.1:" + std::to_string(port_);
    ep.root_ca = root_pem_;
    ep.auth_token = std::move(token);
    ep.cluster_id = "Kubernetes";
    return ep;
  }
  int port() const { return port_; }

 private:
  std::unique_ptr<grpc::Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string root_pem_;
  int port_ = 0;
};

// Which identities run on which node, with hooks to observe and hold concurrent calls (the CA
// service calls it once per impersonated request, on a gRPC server thread).
struct Nodes {
  std::map<std::string, std::set<std::string>> running{{"node-a", {kAlice.uri(), kBob.uri()}}};
  std::chrono::milliseconds delay{0};
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false;  // block calls until released
  int current = 0, max_seen = 0, entered = 0;

  bool operator()(const std::string& node, const Identity& id) {
    {
      std::unique_lock<std::mutex> lock(mu);
      ++entered;
      max_seen = std::max(max_seen, ++current);
      cv.notify_all();
      cv.wait_for(lock, 10s, [&] { return !hold; });
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard<std::mutex> lock(mu);
    --current;
    auto it = running.find(node);
    return it != running.end() && it->second.count(id.uri()) > 0;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    hold = false;
    cv.notify_all();
  }
  bool wait_entered(int n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, 10s, [&] { return entered >= n; });
  }
};

// The control plane's CA service with a fresh in-memory CA.
struct CaFixture {
  explicit CaFixture(controlplane::CaServiceOptions options = {}) {
    auto ca = common::LocalCa::generate("cluster.local");
    REQUIRE(ca.ok());
    roots_pem = ca->roots_pem();
    auto tokens = controlplane::TokenAuthenticator::parse(kTokens);
    REQUIRE(tokens.ok());
    auto shared_tokens = std::make_shared<const controlplane::TokenAuthenticator>(std::move(tokens.value()));
    server = std::make_unique<TestServer>(controlplane::make_ca_service(
        std::move(ca.value()), shared_tokens, std::move(options),
        [this](const std::string& node, const Identity& id) { return (*nodes)(node, id); }));
  }
  ~CaFixture() {
    nodes->release();
    server.reset();
  }
  std::shared_ptr<Nodes> nodes = std::make_shared<Nodes>();
  std::string roots_pem;
  std::unique_ptr<TestServer> server;
};

using FetchResult = common::Result<tls::Credentials>;

FetchResult fetch_one(boost::asio::io_context& io, IstioCaClient& client, const Identity& id) {
  std::optional<FetchResult> got;
  client.fetch(id, [&](FetchResult r) { got.emplace(std::move(r)); });
  if (!run_until(io, [&] { return got.has_value(); })) return common::make_error("test: no answer in time");
  return std::move(*got);
}

IstioCaClient::Options opts(bool impersonate, std::chrono::seconds ttl = 1h) {
  IstioCaClient::Options o;
  o.impersonate = impersonate;
  o.ttl = ttl;
  o.timeout = 10s;
  return o;
}

struct Io {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
};

}  // namespace

TEST_CASE("CA client obtains an impersonated certificate from the CA service", "[istio_ca]") {
  Io io;
  CaFixture f;
  IstioCaClient client(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true));
  auto r = fetch_one(io.io, client, kAlice);
  REQUIRE(r.ok());
  CHECK(r->identity == kAlice);
  // The chain is leaf first; the trailing root went to roots_pem.
  auto chain = certs::inspect_pem_chain(r->cert_chain_pem);
  REQUIRE(chain.ok());
  REQUIRE(chain->size() == 2);  // leaf + the LocalCa's intermediate
  CHECK(chain->front().uri_sans == std::vector<std::string>{kAlice.uri()});
  CHECK_FALSE(chain->back().self_signed);
  CHECK(r->roots_pem == f.roots_pem);
  CHECK(r->not_after - r->not_before > 50min);
  CHECK(contains(r->key_pem, "BEGIN PRIVATE KEY"));

  // A second fetch brings a new key.
  auto r2 = fetch_one(io.io, client, kAlice);
  REQUIRE(r2.ok());
  CHECK(r2->key_pem != r->key_pem);
}

TEST_CASE("CA client: a workload asks for its own identity", "[istio_ca]") {
  Io io;
  CaFixture f;
  IstioCaClient alice(io.io, f.server->endpoint("tok-alice"), opts(false));
  auto own = fetch_one(io.io, alice, kAlice);
  REQUIRE(own.ok());
  CHECK(own->identity == kAlice);

  // Someone else's identity, without impersonation: refused.
  auto other = fetch_one(io.io, alice, kBob);
  REQUIRE_FALSE(other.ok());
  CHECK(contains(other.error(), "CA: PERMISSION_DENIED: "));
  CHECK(contains(other.error(), "default/alice"));
  CHECK(contains(other.error(), kBob.uri()));

  // A node agent without impersonation gets only its own identity too.
  IstioCaClient zt(io.io, f.server->endpoint("tok-ztunnel-a"), opts(false));
  auto zr = fetch_one(io.io, zt, kAlice);
  REQUIRE_FALSE(zr.ok());
  CHECK(contains(zr.error(), "PERMISSION_DENIED"));
}

TEST_CASE("CA client: refusals carry the gRPC status", "[istio_ca]") {
  Io io;
  CaFixture f;

  SECTION("unknown token") {
    IstioCaClient client(io.io, f.server->endpoint("tok-nobody"), opts(true));
    auto r = fetch_one(io.io, client, kAlice);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error(), "CA: UNAUTHENTICATED: "));
  }
  SECTION("no token at all") {
    IstioCaClient client(io.io, f.server->endpoint(""), opts(true));
    auto r = fetch_one(io.io, client, kAlice);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error(), "UNAUTHENTICATED"));
  }
  SECTION("impersonating an identity that is not on the caller's node") {
    IstioCaClient client(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true));
    auto r = fetch_one(io.io, client, kCarol);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error(), "CA: PERMISSION_DENIED: "));
    CHECK(contains(r.error(), "node-a"));
    CHECK(contains(r.error(), "istio-system/ztunnel"));
    CHECK(contains(r.error(), kCarol.uri()));
  }
  SECTION("impersonation by an account that is not a trusted node account") {
    IstioCaClient client(io.io, f.server->endpoint("tok-rogue-a"), opts(true));
    auto r = fetch_one(io.io, client, kAlice);  // alice does run on node-a
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error(), "CA: PERMISSION_DENIED: "));
    CHECK(contains(r.error(), "default/node-agent"));
    CHECK(contains(r.error(), "not a trusted node account"));
  }
  SECTION("another trust domain") {
    IstioCaClient client(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true));
    auto r = fetch_one(io.io, client, Identity("other.domain", "default", "alice"));
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error(), "PERMISSION_DENIED"));
    CHECK(contains(r.error(), "trust domain"));
  }
  SECTION("a token file that cannot be read") {
    IstioCaClient client(io.io, f.server->endpoint("/nonexistent/istio-token"), opts(true));
    auto r = fetch_one(io.io, client, kAlice);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error(), "/nonexistent/istio-token"));
  }
}

TEST_CASE("CA client: channel problems are answered by fetch", "[istio_ca]") {
  Io io;
  SECTION("unreadable root") {
    common::grpcx::GrpcEndpoint ep;
    ep.address = "https://127.0.0.1:15012";
    ep.root_ca = "/nonexistent/root-cert.pem";
    IstioCaClient client(io.io, ep, opts(true));
    std::optional<FetchResult> got;
    client.fetch(kAlice, [&](FetchResult r) { got.emplace(std::move(r)); });
    REQUIRE(run_until(io.io, [&] { return got.has_value(); }));
    REQUIRE_FALSE(got->ok());
    CHECK(contains(got->error(), "/nonexistent/root-cert.pem"));
  }
  SECTION("nobody listening") {
    common::grpcx::GrpcEndpoint ep;
    {
      CaFixture f;  // a port that was just free; nothing listens there once the server is gone
      ep = f.server->endpoint("tok-ztunnel-a");
    }
    IstioCaClient client(io.io, ep, opts(true));
    auto r = fetch_one(io.io, client, kAlice);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error(), "CA: UNAVAILABLE"));
  }
}

TEST_CASE("CA service caps and defaults the TTL", "[istio_ca]") {
  Io io;
  controlplane::CaServiceOptions o;
  o.default_ttl = 2h;
  o.max_ttl = 3h;
  CaFixture f(o);
  const auto lifetime_after = [](const tls::Credentials& c) {
    return c.not_after - std::chrono::system_clock::now();
  };

  IstioCaClient capped(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true, 48h));
  auto r = fetch_one(io.io, capped, kAlice);
  REQUIRE(r.ok());
  CHECK(lifetime_after(*r) <= 3h);
  CHECK(lifetime_after(*r) > 3h - 5min);

  IstioCaClient defaulted(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true, 0s));
  auto d = fetch_one(io.io, defaulted, kAlice);
  REQUIRE(d.ok());
  CHECK(lifetime_after(*d) <= 2h);
  CHECK(lifetime_after(*d) > 2h - 5min);

  IstioCaClient asked(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true, 1h));
  auto a = fetch_one(io.io, asked, kAlice);
  REQUIRE(a.ok());
  CHECK(lifetime_after(*a) <= 1h);
  CHECK(lifetime_after(*a) > 1h - 5min);
}

TEST_CASE("CA client keeps at most 8 calls in flight", "[istio_ca]") {
  Io io;
  CaFixture f;
  f.nodes->delay = 100ms;  // keep calls open long enough to overlap
  IstioCaClient client(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true));
  constexpr int kFetches = 20;
  int ok = 0, failed = 0;
  std::vector<int> order;
  for (int i = 0; i < kFetches; ++i) {
    client.fetch(i % 2 ? kAlice : kBob, [&, i](FetchResult r) {
      (r.ok() ? ok : failed)++;
      if (!r.ok()) WARN(r.error());
      order.push_back(i);
    });
  }
  // fetch() starts calls synchronously up to the limit; the rest wait.
  CHECK(client.in_flight() == 8);
  CHECK(client.queued() == kFetches - 8);
  REQUIRE(run_until(io.io, [&] { return ok + failed == kFetches; }, 30s));
  CHECK(ok == kFetches);
  CHECK(client.in_flight() == 0);
  CHECK(client.queued() == 0);
  std::lock_guard<std::mutex> lock(f.nodes->mu);
  CHECK(f.nodes->entered == kFetches);
  CHECK(f.nodes->max_seen <= 8);
  CHECK(f.nodes->max_seen > 1);  // the calls did overlap, so the bound was exercised
}

TEST_CASE("CA client starts queued fetches by priority, in arrival order within one", "[istio_ca]") {
  Io io;
  CaFixture f;
  f.nodes->hold = true;  // the first call stays open until the queue is built
  auto o = opts(true);
  o.max_in_flight = 1;
  IstioCaClient client(io.io, f.server->endpoint("tok-ztunnel-a"), o);
  using common::FetchPriority;
  const std::vector<FetchPriority> asked = {FetchPriority::Background, FetchPriority::Background,
                                            FetchPriority::Background, FetchPriority::Warmup,
                                            FetchPriority::Warmup,     FetchPriority::RealTime};
  std::vector<int> order;
  for (int i = 0; i < static_cast<int>(asked.size()); ++i) {
    client.fetch(kAlice, [&, i](FetchResult r) {
      if (!r.ok()) WARN(r.error());
      order.push_back(i);
    }, asked[static_cast<size_t>(i)]);
  }
  REQUIRE(f.nodes->wait_entered(1));
  CHECK(client.in_flight() == 1);
  CHECK(client.queued() == asked.size() - 1);
  f.nodes->release();
  REQUIRE(run_until(io.io, [&] { return order.size() == asked.size(); }, 30s));
  // #0 was already running; then RealTime, the Warmups, the Backgrounds.
  CHECK(order == std::vector<int>{0, 5, 3, 4, 1, 2});
}

TEST_CASE("CA client destroyed with calls in flight never calls back", "[istio_ca]") {
  Io io;
  CaFixture f;
  f.nodes->hold = true;
  int called = 0;
  {
    IstioCaClient client(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true));
    for (int i = 0; i < 10; ++i) client.fetch(kAlice, [&](FetchResult) { ++called; });
    REQUIRE(f.nodes->wait_entered(8));  // 8 calls are inside the server, 2 queued
    CHECK(client.queued() == 2);
  }
  f.nodes->release();
  // Give the cancelled calls every chance to complete and (wrongly) post back.
  const auto until = std::chrono::steady_clock::now() + 500ms;
  while (std::chrono::steady_clock::now() < until) io.io.run_for(20ms);
  CHECK(called == 0);
}

TEST_CASE("CA client destroyed from inside its own callback", "[istio_ca]") {
  Io io;
  CaFixture f;
  auto client = std::make_unique<IstioCaClient>(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true));
  int called = 0;
  // Whichever answer comes first destroys the client; the other must then never arrive.
  auto destroy = [&](FetchResult r) {
    ++called;
    CHECK(r.ok());
    client.reset();
  };
  client->fetch(kAlice, destroy);
  client->fetch(kBob, destroy);
  REQUIRE(run_until(io.io, [&] { return client == nullptr; }));
  const auto until = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < until) io.io.run_for(20ms);
  CHECK(called == 1);
}

TEST_CASE("SecretManager rotates certificates from the Istio CA", "[istio_ca]") {
  Io io;
  CaFixture f;
  IstioCaClient client(io.io, f.server->endpoint("tok-ztunnel-a"), opts(true, 4s));
  common::SecretManager sm(io.io, client);
  std::vector<common::SecretManager::CredentialsPtr> seen;
  auto sub = sm.subscribe(kAlice, [&](auto creds) { seen.push_back(creds); });
  REQUIRE(run_until(io.io, [&] { return seen.size() >= 2; }, 20s));
  CHECK(seen[0]->identity == kAlice);
  CHECK(seen[1]->identity == kAlice);
  CHECK(seen[1]->key_pem != seen[0]->key_pem);
  CHECK(seen[1]->not_after > seen[0]->not_after);
  CHECK(seen[0]->not_after - seen[0]->not_before <= 6s);
}

namespace {

// A CA that records what it receives and answers with a certificate for `answer_for`.
class RogueCa final : public istio::v1::auth::IstioCertificateService::Service {
 public:
  explicit RogueCa(Identity answer_for) : answer_for_(std::move(answer_for)) {}

  grpc::Status CreateCertificate(grpc::ServerContext* ctx, const istio::v1::auth::IstioCertificateRequest* req,
                                 istio::v1::auth::IstioCertificateResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [k, v] : ctx->client_metadata()) {
      metadata[std::string(k.data(), k.size())] = std::string(v.data(), v.size());
    }
    csr = req->csr();
    validity = req->validity_duration();
    const auto& fields = req->metadata().fields();
    if (auto it = fields.find("ImpersonatedIdentity"); it != fields.end()) impersonated = it->second.string_value();
    auto kc = certs::generate_key_and_csr(answer_for_);
    if (!kc) return grpc::Status(grpc::StatusCode::INTERNAL, kc.error());
    auto chain = ca_.sign(kc->csr_pem, answer_for_, std::chrono::seconds(3600));
    if (!chain) return grpc::Status(grpc::StatusCode::INTERNAL, chain.error());
    for (auto& pem : *chain) resp->add_cert_chain(pem);
    return grpc::Status::OK;
  }

  std::mutex mu;
  std::map<std::string, std::string> metadata;
  std::string csr, impersonated;
  int64_t validity = 0;

 private:
  Identity answer_for_;
  common::LocalCa ca_ = common::LocalCa::generate("cluster.local").value();
};

}  // namespace

TEST_CASE("CA client sends the upstream request shape and rejects a certificate for someone else",
          "[istio_ca]") {
  Io io;
  auto rogue_owned = std::make_unique<RogueCa>(kBob);
  RogueCa* rogue = rogue_owned.get();
  TestServer server(std::move(rogue_owned));
  auto ep = server.endpoint("tok-ztunnel-a");
  ep.cluster_id = "cluster-7";
  ep.extra_headers = {{"x-test-header", "v1"}};
  IstioCaClient client(io.io, ep, opts(true, 7200s));
  auto r = fetch_one(io.io, client, kAlice);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error(), "requested " + kAlice.uri()));
  CHECK(contains(r.error(), kBob.uri()));

  std::lock_guard<std::mutex> lock(rogue->mu);
  CHECK(rogue->metadata["authorization"] == "Bearer tok-ztunnel-a");
  CHECK(rogue->metadata["clusterid"] == "cluster-7");
  CHECK(rogue->metadata["x-test-header"] == "v1");
  CHECK(rogue->impersonated == kAlice.uri());
  CHECK(rogue->validity == 7200);
  auto csr = certs::inspect_csr(rogue->csr);
  REQUIRE(csr.ok());
  CHECK(csr->uri_sans == std::vector<std::string>{kAlice.uri()});
  CHECK(csr->san_critical);
  CHECK(csr->subject_empty);
  CHECK(csr->signature_ok);
  CHECK(csr->curve == "prime256v1");
}

TEST_CASE("issue_server_cert validates its names", "[istio_ca][certs]") {
  auto root = certs::make_root_ca("test", "root", 1h);
  REQUIRE(root.ok());
  CHECK_FALSE(certs::issue_server_cert(*root, {}, {}, 1h).ok());
  auto bad_ip = certs::issue_server_cert(*root, {}, {"300.1.1.1"}, 1h);
  REQUIRE_FALSE(bad_ip.ok());
  CHECK(contains(bad_ip.error(), "300.1.1.1"));
  CHECK_FALSE(certs::issue_server_cert(*root, {"a b"}, {}, 1h).ok());
  auto ok = certs::issue_server_cert(*root, {"istiod.istio-system.svc"}, {"127.0.0.1", "::1"}, 1h);
  REQUIRE(ok.ok());
  auto s = certs::inspect_pem(ok->cert_pem);
  REQUIRE(s.ok());
  CHECK(s->uri_sans.empty());
  CHECK_FALSE(s->self_signed);
}
