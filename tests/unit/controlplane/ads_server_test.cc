// controlplane serve: the delta ADS server (and the CA service next to it) over real TLS gRPC on
// loopback, driven by a raw grpc++ client. Covers authentication, wildcard and explicit
// subscriptions, pushes on directory edits (updated + removed), exact reconnects through
// initial_resource_versions, NACK handling (logged, counted, no resend loop), unknown types,
// the model -> protobuf conversion and a 60k-resource initial sync.
// Every wait is bounded (client deadlines, timed queue waits).
#include <catch2/catch.hpp>

#include <grpcpp/grpcpp.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "common/admin/log.h"
#include "common/grpc/channel.h"
#include "common/identity/certs.h"
#include "common/model/xds/xds_resources.h"
#include "controlplane/ads_server.h"
#include "controlplane/compiler.h"
#include "controlplane/serve.h"
#include "envoy/service/discovery/v3/discovery.grpc.pb.h"
#include "istio/security/authorization.pb.h"
#include "istio/v1/auth/ca.grpc.pb.h"
#include "istio/workload/workload.pb.h"
#include "temp_dir.h"

using namespace controlplane;
namespace fs = std::filesystem;
namespace ds = envoy::service::discovery::v3;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

const std::string kAddr(kAddressTypeUrl);
const std::string kAuthz(kAuthorizationTypeUrl);

using testutil::examples_k8s;

class TempDir : public testutil::TempDir {
 public:
  TempDir() : testutil::TempDir("ads-test") {}
};

std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A server over a copy of examples/k8s plus a tokens file.
struct Fixture {
  TempDir tmp;
  std::string manifests;
  std::unique_ptr<ControlPlaneServer> server;
  ServeOptions opt;

  Fixture() {
    manifests = tmp.file("mesh");
    fs::create_directories(manifests);
    for (const auto& e : fs::directory_iterator(examples_k8s())) {
      fs::copy_file(e.path(), fs::path(manifests) / e.path().filename());
    }
    tmp.replace("tokens.yaml",
                "tokens:\n"
                "- token: good-token\n"
                "  serviceAccount: istio-system/ztunnel\n"
                "  node: demo-node\n");
    opt.dir = manifests;
    opt.listen = "127.0.0.1:0";
    opt.cacerts = tmp.file("cacerts");
    opt.tokens = tmp.file("tokens.yaml");
    opt.out = tmp.file("local.yaml");
    opt.poll_interval = milliseconds(50);
    auto s = ControlPlaneServer::start(opt);
    if (!s) FAIL(s.error());
    server = std::move(*s);
  }

  std::shared_ptr<grpc::Channel> channel() const {
    common::grpcx::GrpcEndpoint ep;
    ep.address = "https://" + server->address();
    ep.root_ca = server->root_cert_pem();
    auto ch = common::grpcx::make_channel(ep);
    REQUIRE(ch);
    return *ch;
  }

  // What the server should be serving for the directory as it is now.
  XdsResources expected() const {
    auto st = compile_directory(manifests, opt.compile, {opt.out});
    REQUIRE(st);
    return to_xds_resources(st->config);
  }
};

// A raw delta ADS stream with a reader thread, so "no response within T" can be checked
// without blocking forever.
class Client {
 public:
  Client(const std::shared_ptr<grpc::Channel>& ch, const std::string& token) {
    stub_ = ds::AggregatedDiscoveryService::NewStub(ch);
    if (!token.empty()) ctx_.AddMetadata("authorization", "Bearer " + token);
    ctx_.set_deadline(std::chrono::system_clock::now() + seconds(120));
    stream_ = stub_->DeltaAggregatedResources(&ctx_);
    reader_ = std::thread([this] {
      ds::DeltaDiscoveryResponse r;
      while (stream_->Read(&r)) {
        std::lock_guard<std::mutex> l(mu_);
        q_.push_back(std::move(r));
        r = ds::DeltaDiscoveryResponse();
        cv_.notify_all();
      }
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
      cv_.notify_all();
    });
  }
  ~Client() {
    if (!finished_) {
      ctx_.TryCancel();
      reader_.join();
      (void)stream_->Finish();
    }
  }

  bool send(const ds::DeltaDiscoveryRequest& r) { return stream_->Write(r); }

  bool subscribe(const std::string& type_url, std::vector<std::string> names = {},
                 const std::map<std::string, std::string>& initial = {}) {
    ds::DeltaDiscoveryRequest r;
    if (first_) {
      r.mutable_node()->set_id("ztunnel~10.0.0.1~ztunnel-abc.istio-system~istio-system.svc.cluster.local");
      (*r.mutable_node()->mutable_metadata()->mutable_fields())["NODE_NAME"].set_string_value("demo-node");
      first_ = false;
    }
    r.set_type_url(type_url);
    for (auto& n : names) r.add_resource_names_subscribe(n);
    for (const auto& [k, v] : initial) (*r.mutable_initial_resource_versions())[k] = v;
    return send(r);
  }

  bool ack(const ds::DeltaDiscoveryResponse& resp) {
    ds::DeltaDiscoveryRequest r;
    r.set_type_url(resp.type_url());
    r.set_response_nonce(resp.nonce());
    return send(r);
  }

  std::optional<ds::DeltaDiscoveryResponse> next(milliseconds timeout = milliseconds(20000)) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, timeout, [&] { return !q_.empty() || done_; });
    if (q_.empty()) return std::nullopt;
    auto r = std::move(q_.front());
    q_.pop_front();
    return r;
  }

  // Waits for the server to end the stream; returns its status.
  grpc::Status finish() {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (!cv_.wait_for(l, seconds(20), [&] { return done_; })) {
        l.unlock();
        ctx_.TryCancel();
      }
    }
    reader_.join();
    finished_ = true;
    return stream_->Finish();
  }

 private:
  std::unique_ptr<ds::AggregatedDiscoveryService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<ds::DeltaDiscoveryRequest, ds::DeltaDiscoveryResponse>> stream_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ds::DeltaDiscoveryResponse> q_;
  bool done_ = false;
  bool finished_ = false;
  bool first_ = true;
};

std::map<std::string, std::string> versions_of(const XdsResourceMap& m) {
  std::map<std::string, std::string> out;
  for (const auto& [name, r] : m) out[name] = r.version;
  return out;
}

std::map<std::string, std::string> versions_of(const ds::DeltaDiscoveryResponse& r) {
  std::map<std::string, std::string> out;
  for (const auto& res : r.resources()) out[res.name()] = res.version();
  return out;
}

std::set<std::string> removed_of(const ds::DeltaDiscoveryResponse& r) {
  return {r.removed_resources().begin(), r.removed_resources().end()};
}

// Applies a delta response to what a client holds.
void apply_delta(std::map<std::string, std::string>& have, const ds::DeltaDiscoveryResponse& r) {
  for (const auto& res : r.resources()) have[res.name()] = res.version();
  for (const auto& n : r.removed_resources()) have.erase(n);
}

// Receives responses until one for `type_url` arrives (ACKing everything), bounded.
std::optional<ds::DeltaDiscoveryResponse> next_of(Client& c, const std::string& type_url) {
  for (int i = 0; i < 10; ++i) {
    auto r = c.next();
    if (!r) return std::nullopt;
    c.ack(*r);
    if (r->type_url() == type_url) return r;
  }
  return std::nullopt;
}

const std::string kWeb1 = "Kubernetes//Pod/demo/web-1";
const std::string kWeb2 = "Kubernetes//Pod/demo/web-2";
const std::string kClient = "Kubernetes//Pod/demo/client";
const std::string kWebSvc = "demo/web.demo.svc.cluster.local";

// log lines of the "ads" logger, captured for assertions.
std::ostringstream& captured_ads_log() {
  static std::ostringstream* out = [] {
    auto* s = new std::ostringstream;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*s);
    common::log::logger("ads")->sinks().push_back(sink);
    return s;
  }();
  return *out;
}
std::mutex g_log_mu;  // ostream_sink_mt locks its own writes; this guards our reads of str()

}  // namespace

TEST_CASE("ads: missing or unknown token is UNAUTHENTICATED", "[ads]") {
  Fixture f;
  auto ch = f.channel();
  for (const std::string token : {"", "wrong-token"}) {
    Client c(ch, token);
    c.subscribe(kAddr);
    auto st = c.finish();
    CHECK(st.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
  CHECK(f.server->ads().stats().rejected == 2);
  CHECK(f.server->ads().stats().streams == 0);
}

TEST_CASE("ads: wildcard subscription gets every resource with its version", "[ads]") {
  Fixture f;
  Client c(f.channel(), "good-token");
  REQUIRE(c.subscribe(kAddr));
  REQUIRE(c.subscribe(kAuthz));
  // The two answers may come in either order.
  std::optional<ds::DeltaDiscoveryResponse> a, z;
  for (int i = 0; i < 2; ++i) {
    auto r = c.next();
    REQUIRE(r);
    c.ack(*r);
    (r->type_url() == kAddr ? a : z) = std::move(r);
  }
  REQUIRE(a);
  REQUIRE(z);
  const XdsResources want = f.expected();
  CHECK(versions_of(*a) == versions_of(want.addresses));
  CHECK(versions_of(*z) == versions_of(want.authorizations));
  CHECK(versions_of(*a).count(kWeb1));
  CHECK(versions_of(*a).count(kWebSvc));
  CHECK(versions_of(*z).count("demo/deny-client"));
  CHECK(a->removed_resources().empty());
  CHECK(!a->nonce().empty());
  CHECK(a->nonce() != z->nonce());
  CHECK(!a->system_version_info().empty());

  // The payloads are the typed messages, named as ztunnel expects.
  for (const auto& res : a->resources()) {
    REQUIRE(res.resource().type_url() == kAddr);
    istio::workload::Address addr;
    REQUIRE(res.resource().UnpackTo(&addr));
    if (res.name() == kWeb1) {
      REQUIRE(addr.has_workload());
      const auto& w = addr.workload();
      CHECK(w.uid() == kWeb1);
      CHECK(w.name() == "web-1");
      CHECK(w.namespace_() == "demo");
      CHECK(w.service_account() == "web");
      CHECK(w.node() == "demo-node");
      CHECK(w.tunnel_protocol() == istio::workload::HBONE);
      REQUIRE(w.addresses_size() == 1);
      CHECK(w.addresses(0) == std::string("\x0a\x63\x01\x0b", 4));  // 10.99.1.11
      REQUIRE(w.services().count(kWebSvc));
      REQUIRE(w.services().at(kWebSvc).ports_size() == 1);
      CHECK(w.services().at(kWebSvc).ports(0).service_port() == 80);
      CHECK(w.services().at(kWebSvc).ports(0).target_port() == 8080);
      CHECK(w.workload_type() == istio::workload::POD);
      CHECK(w.canonical_name() == "web");
      CHECK(w.canonical_revision() == "v1");
    }
    if (res.name() == kWebSvc) {
      REQUIRE(addr.has_service());
      const auto& s = addr.service();
      CHECK(s.hostname() == "web.demo.svc.cluster.local");
      REQUIRE(s.addresses_size() == 1);
      CHECK(s.addresses(0).address() == std::string("\x0a\x63\xfa\x0a", 4));  // 10.99.250.10
      REQUIRE(s.ports_size() == 1);
      CHECK(s.ports(0).service_port() == 80);
    }
  }
  istio::security::Authorization pol;
  REQUIRE(z->resources_size() == 1);
  REQUIRE(z->resources(0).resource().UnpackTo(&pol));
  CHECK(pol.action() == istio::security::DENY);
  REQUIRE(pol.rules_size() == 1);
  REQUIRE(pol.rules(0).clauses_size() >= 1);
  CHECK(pol.rules(0).clauses(0).matches(0).principals(0).exact() == "cluster.local/ns/demo/sa/client");

  // Connected client is listed with its node id.
  auto clients = f.server->ads().clients();
  REQUIRE(clients.size() == 1);
  CHECK(clients[0].node_id.rfind("ztunnel~10.0.0.1~", 0) == 0);
  CHECK(clients[0].caller == "istio-system/ztunnel");
  CHECK(clients[0].node_metadata.find("demo-node") != std::string::npos);
  // The impersonation index the CA uses.
  CHECK(f.server->identity_on_node("demo-node", "spiffe://cluster.local/ns/demo/sa/web"));
  CHECK(!f.server->identity_on_node("other-node", "spiffe://cluster.local/ns/demo/sa/web"));
  // --out is written too.
  CHECK(read_file(f.opt.out).find("web-1") != std::string::npos);
}

TEST_CASE("ads: editing the directory pushes a delta; reconnect is exact", "[ads]") {
  Fixture f;
  std::map<std::string, std::string> have;
  {
    Client c(f.channel(), "good-token");
    REQUIRE(c.subscribe(kAddr));
    auto first = next_of(c, kAddr);
    REQUIRE(first);
    apply_delta(have, *first);
    REQUIRE(have.count(kWeb2));

    // web-2 goes away, client changes version label.
    std::string pods = read_file(examples_k8s() + "/pods.yaml");
    const auto web2 = pods.find("  name: web-2");
    REQUIRE(web2 != std::string::npos);
    const auto doc_start = pods.rfind("---", web2);
    const auto doc_end = pods.find("---", web2);
    pods.erase(doc_start, doc_end - doc_start);
    const auto client_ver = pods.find("version: v1", pods.find("app: client"));
    REQUIRE(client_ver != std::string::npos);
    pods.replace(client_ver, 11, "version: v2");
    f.tmp.replace("mesh/pods.yaml", pods);
    (void)f.server->poll_now();  // or the watcher's next poll; both serialised

    auto delta = next_of(c, kAddr);
    REQUIRE(delta);
    CHECK(versions_of(*delta).size() == 1);
    CHECK(versions_of(*delta).count(kClient));
    CHECK(removed_of(*delta) == std::set<std::string>{kWeb2});
    apply_delta(have, *delta);
    CHECK(have == versions_of(f.expected().addresses));
  }

  // Reconnect claiming: one stale version, one resource that no longer exists, one missing.
  auto claimed = have;
  claimed[kWeb1] = "0000000000000000";
  claimed["Kubernetes//Pod/demo/gone"] = "1234";
  claimed.erase(kWebSvc);
  Client c2(f.channel(), "good-token");
  REQUIRE(c2.subscribe(kAddr, {}, claimed));
  auto r = next_of(c2, kAddr);
  REQUIRE(r);
  CHECK(versions_of(*r) == std::map<std::string, std::string>{{kWeb1, have[kWeb1]}, {kWebSvc, have[kWebSvc]}});
  CHECK(removed_of(*r) == std::set<std::string>{"Kubernetes//Pod/demo/gone"});

  // An exact claim gets an empty (but present) response: readiness completes, nothing resent.
  Client c3(f.channel(), "good-token");
  REQUIRE(c3.subscribe(kAddr, {}, have));
  auto r3 = next_of(c3, kAddr);
  REQUIRE(r3);
  CHECK(r3->resources_size() == 0);
  CHECK(r3->removed_resources_size() == 0);
}

TEST_CASE("ads: NACK is logged and counted and does not loop", "[ads]") {
  {
    std::lock_guard<std::mutex> l(g_log_mu);
    (void)captured_ads_log();
  }
  Fixture f;
  Client c(f.channel(), "good-token");
  REQUIRE(c.subscribe(kAuthz));
  auto r = c.next();
  REQUIRE(r);
  REQUIRE(r->resources_size() == 1);

  ds::DeltaDiscoveryRequest nack;
  nack.set_type_url(kAuthz);
  nack.set_response_nonce(r->nonce());
  nack.mutable_error_detail()->set_code(3);
  nack.mutable_error_detail()->set_message("policy demo/deny-client: bad stuff");
  REQUIRE(c.send(nack));

  for (int i = 0; i < 200 && f.server->ads().stats().nacks == 0; ++i) std::this_thread::sleep_for(milliseconds(20));
  CHECK(f.server->ads().stats().nacks == 1);
  // No resend of the rejected version.
  CHECK(!c.next(milliseconds(500)));
  {
    std::lock_guard<std::mutex> l(g_log_mu);
    const std::string logs = captured_ads_log().str();
    CHECK(logs.find("NACK from ztunnel~10.0.0.1~ztunnel-abc.istio-system~istio-system.svc.cluster.local for " + kAuthz +
                    " nonce " + r->nonce() + ": policy demo/deny-client: bad stuff") != std::string::npos);
  }
  auto clients = f.server->ads().clients();
  REQUIRE(clients.size() == 1);
  CHECK(clients[0].nacks == 1);

  // The stream still works: removing the policy is pushed.
  fs::remove(fs::path(f.manifests) / "authz-deny-client.yaml");
  (void)f.server->poll_now();
  auto d = c.next();
  REQUIRE(d);
  CHECK(d->resources_size() == 0);
  CHECK(removed_of(*d) == std::set<std::string>{"demo/deny-client"});
}

TEST_CASE("ads: explicit names, unsubscribe and unknown types", "[ads]") {
  Fixture f;
  Client c(f.channel(), "good-token");
  REQUIRE(c.subscribe(kAddr, {kWeb1, "Kubernetes//Pod/demo/nope"}));
  auto r = next_of(c, kAddr);
  REQUIRE(r);
  CHECK(versions_of(*r).size() == 1);
  CHECK(versions_of(*r).count(kWeb1));
  CHECK(removed_of(*r) == std::set<std::string>{"Kubernetes//Pod/demo/nope"});

  // Adding a name later sends just that one.
  ds::DeltaDiscoveryRequest more;
  more.set_type_url(kAddr);
  more.add_resource_names_subscribe(kWebSvc);
  more.add_resource_names_unsubscribe(kWeb1);
  REQUIRE(c.send(more));
  auto r2 = next_of(c, kAddr);
  REQUIRE(r2);
  CHECK(versions_of(*r2).size() == 1);
  CHECK(versions_of(*r2).count(kWebSvc));
  CHECK(r2->removed_resources_size() == 0);

  // Unknown type: an empty response so the client's readiness completes.
  const std::string unknown = "type.googleapis.com/example.Unknown";
  REQUIRE(c.subscribe(unknown));
  auto u = next_of(c, unknown);
  REQUIRE(u);
  CHECK(u->resources_size() == 0);
  CHECK(u->removed_resources_size() == 0);
}

TEST_CASE("ads: the CA service is served on the same port", "[ads]") {
  Fixture f;
  auto stub = istio::v1::auth::IstioCertificateService::NewStub(f.channel());
  auto kc = common::certs::generate_key_and_csr(common::Identity("cluster.local", "demo", "web"));
  REQUIRE(kc);
  istio::v1::auth::IstioCertificateRequest req;
  req.set_csr(kc->csr_pem);
  req.set_validity_duration(3600);
  (*req.mutable_metadata()->mutable_fields())["ImpersonatedIdentity"].set_string_value(
      "spiffe://cluster.local/ns/demo/sa/web");
  istio::v1::auth::IstioCertificateResponse resp;
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer good-token");
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
  auto st = stub->CreateCertificate(&ctx, req, &resp);
  INFO(st.error_message());
  REQUIRE(st.ok());
  REQUIRE(resp.cert_chain_size() >= 2);
  auto leaf = common::certs::inspect_pem(resp.cert_chain(0));
  REQUIRE(leaf);
  CHECK(leaf->uri_sans == std::vector<std::string>{"spiffe://cluster.local/ns/demo/sa/web"});
}

TEST_CASE("ads: 50k workloads + 10k services convert and sync in one response", "[ads][scale]") {
  ztunnel::LocalConfig cfg;
  cfg.workloads.reserve(50'000);
  for (int i = 0; i < 50'000; ++i) {
    ztunnel::Workload w;
    w.uid = "Kubernetes//Pod/ns" + std::to_string(i % 100) + "/pod-" + std::to_string(i);
    w.name = "pod-" + std::to_string(i);
    w.ns = "ns" + std::to_string(i % 100);
    w.service_account = "sa" + std::to_string(i % 1000);
    w.addresses.push_back(*ztunnel::parse_ip("10." + std::to_string(i / 65536) + "." + std::to_string((i / 256) % 256) +
                                             "." + std::to_string(i % 256)));
    w.node = "node-" + std::to_string(i % 50);
    w.tunnel_protocol = ztunnel::TunnelProtocol::Hbone;
    w.workload_type = "deployment";
    w.workload_name = "deploy-" + std::to_string(i / 5);
    w.canonical_name = w.workload_name;
    w.canonical_revision = "v1";
    w.cluster_id = "Kubernetes";
    ztunnel::PortMap pm;
    pm.set(80, 8080);
    w.services[w.ns + "/svc-" + std::to_string(i / 5) + "." + w.ns + ".svc.cluster.local"] = pm;
    cfg.workloads.push_back(std::move(w));
  }
  for (int i = 0; i < 10'000; ++i) {
    ztunnel::Service s;
    s.name = "svc-" + std::to_string(i);
    s.ns = "ns" + std::to_string(i % 100);
    s.hostname = s.name + "." + s.ns + ".svc.cluster.local";
    s.vips.push_back({"", *ztunnel::parse_ip("172.16." + std::to_string(i / 256) + "." + std::to_string(i % 256))});
    s.ports.set(80, 8080);
    cfg.services.push_back(std::move(s));
  }
  const auto t0 = std::chrono::steady_clock::now();
  XdsResources res = to_xds_resources(cfg);
  const auto ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  WARN("converted 60k resources in " << ms << " ms");  // informational; no timing assert
  REQUIRE(res.addresses.size() == 60'000);

  Fixture f;
  f.server->ads().set_state(ServedState::from(std::move(res), "big"));
  Client c(f.channel(), "good-token");
  REQUIRE(c.subscribe(kAddr));
  auto r = c.next(milliseconds(60000));
  REQUIRE(r);
  CHECK(r->resources_size() == 60'000);
  CHECK(r->system_version_info() == "big");
  CHECK(r->ByteSizeLong() > 4u * 1024 * 1024);  // above gRPC's default 4 MB limit
}

TEST_CASE("xds resources: reuse of unchanged objects gives exactly a fresh conversion", "[ads]") {
  ztunnel::LocalConfig before;
  for (int i = 0; i < 4; ++i) {
    ztunnel::Workload w;
    w.uid = "Kubernetes//Pod/ns/p" + std::to_string(i);
    w.name = "p" + std::to_string(i);
    w.ns = "ns";
    w.addresses.push_back(*ztunnel::parse_ip("10.0.0." + std::to_string(i + 1)));
    before.workloads.push_back(std::move(w));
    ztunnel::Service s;
    s.name = "s" + std::to_string(i);
    s.ns = "ns";
    s.hostname = s.name + ".ns.svc.cluster.local";
    s.vips.push_back({"", *ztunnel::parse_ip("172.16.0." + std::to_string(i + 1))});
    s.ports.set(80, 8080);
    before.services.push_back(std::move(s));
  }
  const XdsResources old_res = to_xds_resources(before);

  ztunnel::LocalConfig after = before;
  after.workloads[1].canonical_revision = "v2";                             // changed: a field the old bytes lack
  after.workloads[2].services["ns/s0.ns.svc.cluster.local"].set(80, 9090);  // nested change
  after.workloads.erase(after.workloads.begin() + 3);                       // removed
  ztunnel::Workload added = after.workloads[0];
  added.uid = "Kubernetes//Pod/ns/new";
  after.workloads.push_back(added);        // added (equal fields to p0 except uid)
  after.services[0].ports.set(443, 8443);  // changed service
  after.services[2].waypoint = ztunnel::GatewayAddress{};

  const XdsResources fresh = to_xds_resources(after);
  const XdsResources reused = to_xds_resources(after, before, old_res.addresses);
  CHECK(reused.addresses == fresh.addresses);
  CHECK(reused.authorizations == fresh.authorizations);
  // And the unchanged ones really kept their version while the changed ones moved.
  CHECK(reused.addresses.at("Kubernetes//Pod/ns/p0").version == old_res.addresses.at("Kubernetes//Pod/ns/p0").version);
  CHECK(reused.addresses.at("Kubernetes//Pod/ns/p1").version != old_res.addresses.at("Kubernetes//Pod/ns/p1").version);
  CHECK(reused.addresses.at("Kubernetes//Pod/ns/p2").version != old_res.addresses.at("Kubernetes//Pod/ns/p2").version);
  CHECK(reused.addresses.at("ns/s0.ns.svc.cluster.local").version !=
        old_res.addresses.at("ns/s0.ns.svc.cluster.local").version);
  CHECK(reused.addresses.at("ns/s1.ns.svc.cluster.local").version ==
        old_res.addresses.at("ns/s1.ns.svc.cluster.local").version);
  CHECK(reused.addresses.count("Kubernetes//Pod/ns/p3") == 0);
}

TEST_CASE("serve: stop() ends open streams", "[ads]") {
  Fixture f;
  Client c(f.channel(), "good-token");
  REQUIRE(c.subscribe(kAddr));
  REQUIRE(next_of(c, kAddr));
  f.server->stop();
  // The stream ends with an error (CANCELLED: the server's pending read is released by
  // cancelling the call), which a client answers by reconnecting.
  auto st = c.finish();
  CHECK(!st.ok());
  CHECK(f.server->ads().clients().empty());
  f.server->stop();  // idempotent
}

TEST_CASE("serve: a port in use is an error", "[ads]") {
  Fixture f;
  ServeOptions opt = f.opt;
  opt.listen = f.server->address();
  auto s = ControlPlaneServer::start(opt);
  REQUIRE(!s);
  CHECK(s.error().find("cannot listen on " + opt.listen) != std::string::npos);
}

TEST_CASE("serve: startup errors name the culprit", "[ads]") {
  TempDir tmp;
  ServeOptions opt;
  opt.dir = examples_k8s();
  opt.listen = "127.0.0.1:0";
  opt.cacerts = tmp.file("cacerts");
  opt.tokens = tmp.file("missing-tokens.yaml");
  auto s = ControlPlaneServer::start(opt);
  REQUIRE(!s);
  CHECK(s.error().find("missing-tokens.yaml") != std::string::npos);

  tmp.replace("tokens.yaml", "tokens:\n- token: x\n  serviceAcount: a/b\n");
  opt.tokens = tmp.file("tokens.yaml");
  s = ControlPlaneServer::start(opt);
  REQUIRE(!s);
  CHECK(s.error().find("tokens[0]") != std::string::npos);

  tmp.replace("tokens.yaml", "tokens:\n- token: x\n  serviceAccount: a/b\n");
  opt.listen = "127.0.0.1";
  s = ControlPlaneServer::start(opt);
  REQUIRE(!s);
  CHECK(s.error().find("--listen") != std::string::npos);
}

namespace {

// A state serving `content` (name -> version) for the Address type in `shards` shards (by
// name hash), listing `changed` as its changed names unless `with_changed` is false.
std::shared_ptr<const ServedState> sharded_state(const std::map<std::string, std::string>& content,
                                                 const std::vector<std::string>& changed, bool with_changed,
                                                 const std::string& version) {
  constexpr size_t kShards = 3;
  std::vector<XdsResourceMap> maps(kShards);
  for (const auto& [name, v] : content) {
    google::protobuf::Any any;
    any.set_type_url(kAddr);
    any.set_value(v);
    maps[std::hash<std::string>{}(name) % kShards][name] = XdsResource{v, any.SerializeAsString()};
  }
  auto s = std::make_shared<ServedState>();
  s->version = version;
  s->types[kAddr] = std::make_shared<const XdsResourceMap>();
  s->types[kAuthz] = std::make_shared<const XdsResourceMap>();
  for (auto& m : maps) s->shards[kAddr].push_back(std::make_shared<const XdsResourceMap>(std::move(m)));
  if (with_changed) s->changed[kAddr] = changed;
  return s;
}

}  // namespace

TEST_CASE("ads: pushes from changed-name lists stay exact across bursts, gaps and fallbacks", "[ads]") {
  Fixture f;
  Client c(f.channel(), "good-token");
  std::map<std::string, std::string> content;
  for (int i = 0; i < 20; ++i) content["r" + std::to_string(i)] = "v0";
  f.server->ads().set_state(sharded_state(content, {}, false, "s0"));
  REQUIRE(c.subscribe(kAddr));
  std::map<std::string, std::string> have;
  auto first = next_of(c, kAddr);
  REQUIRE(first);
  apply_delta(have, *first);
  REQUIRE(have == content);

  // Drains what the server sends until the client holds `content` (bounded).
  auto settle = [&](size_t* resources_seen) {
    for (int i = 0; i < 50 && have != content; ++i) {
      auto r = next_of(c, kAddr);
      if (!r) break;
      if (resources_seen) *resources_seen += r->resources_size();
      apply_delta(have, *r);
    }
    return have == content;
  };

  SECTION("one change: only that resource is sent") {
    content["r3"] = "v1";
    f.server->ads().set_state(sharded_state(content, {"r3", "r4"}, true, "s1"));  // r4 listed, unchanged
    auto r = next_of(c, kAddr);
    REQUIRE(r);
    CHECK(versions_of(*r) == std::map<std::string, std::string>{{"r3", "v1"}});
    CHECK(r->removed_resources_size() == 0);
  }
  SECTION("a burst of states, an add and remove of the same name, and a removal") {
    for (int k = 1; k <= 5; ++k) {
      std::vector<std::string> changed;
      content["r" + std::to_string(k)] = "v" + std::to_string(k);
      changed.push_back("r" + std::to_string(k));
      if (k == 2) {
        content["tmp"] = "t";
        changed.push_back("tmp");
      }
      if (k == 4) {
        content.erase("tmp");
        content.erase("r10");
        changed.push_back("tmp");
        changed.push_back("r10");
      }
      f.server->ads().set_state(sharded_state(content, changed, true, "b" + std::to_string(k)));
    }
    size_t seen = 0;
    CHECK(settle(&seen));
    CHECK(!have.count("tmp"));
  }
  SECTION("a state without a changed list in between falls back to a full comparison") {
    content["r7"] = "v7";
    f.server->ads().set_state(sharded_state(content, {}, false, "x1"));
    content["r8"] = "v8";
    f.server->ads().set_state(sharded_state(content, {"r8"}, true, "x2"));
    CHECK(settle(nullptr));
  }
  SECTION("more states than the history holds: a full comparison, still exact") {
    for (int k = 0; k < 40; ++k) {
      content["r" + std::to_string(k % 20)] = "g" + std::to_string(k);
      content["new" + std::to_string(k)] = "n";
      f.server->ads().set_state(
          sharded_state(content, {"r" + std::to_string(k % 20), "new" + std::to_string(k)}, true, "g"));
    }
    CHECK(settle(nullptr));
  }
  SECTION("a changed list that misses a change is trusted: the publisher's contract") {
    // Documents the contract rather than hiding it: streams look only at listed names.
    content["r9"] = "v9";
    content["r11"] = "v11";
    f.server->ads().set_state(sharded_state(content, {"r9"}, true, "m1"));
    auto r = next_of(c, kAddr);
    REQUIRE(r);
    CHECK(versions_of(*r) == std::map<std::string, std::string>{{"r9", "v9"}});
  }
}

TEST_CASE("ads: on-demand (XDS_ON_DEMAND) gets nothing in bulk, then what its alias names own", "[ads]") {
  Fixture f;
  Client c(f.channel(), "good-token");
  // The on-demand initial request: subscribe ["*"] and unsubscribe ["*"] at once.
  ds::DeltaDiscoveryRequest first;
  first.mutable_node()->set_id("ztunnel~10.0.0.1~ztunnel-abc.istio-system~istio-system.svc.cluster.local");
  first.set_type_url(kAddr);
  first.add_resource_names_subscribe("*");
  first.add_resource_names_unsubscribe("*");
  REQUIRE(c.send(first));
  auto r0 = next_of(c, kAddr);
  REQUIRE(r0);
  CHECK(r0->resources_size() == 0);
  CHECK(r0->removed_resources_size() == 0);
  const auto expected = f.expected().addresses;

  // A workload address and an address nobody owns.
  ds::DeltaDiscoveryRequest demand;
  demand.set_type_url(kAddr);
  demand.add_resource_names_subscribe("/10.99.1.11");
  demand.add_resource_names_subscribe("/10.99.7.7");
  REQUIRE(c.send(demand));
  auto r1 = next_of(c, kAddr);
  REQUIRE(r1);
  CHECK(versions_of(*r1) == std::map<std::string, std::string>{{kWeb1, expected.at(kWeb1).version}});
  CHECK(removed_of(*r1) == std::set<std::string>{"/10.99.7.7"});
  CHECK_FALSE(c.next(milliseconds(300)));  // nothing more arrives unasked

  // A service VIP: the service and its endpoints, except what the client already holds.
  ds::DeltaDiscoveryRequest vip;
  vip.set_type_url(kAddr);
  vip.add_resource_names_subscribe("/10.99.250.10");
  REQUIRE(c.send(vip));
  auto r2 = next_of(c, kAddr);
  REQUIRE(r2);
  CHECK(versions_of(*r2) == std::map<std::string, std::string>{{kWeb2, expected.at(kWeb2).version},
                                                               {kWebSvc, expected.at(kWebSvc).version}});
  CHECK(r2->removed_resources_size() == 0);

  // Kept up to date while subscribed: web-1 moves to another address -> updated (the VIP still
  // covers it), and its old address is reported as owned by nobody.
  std::string pods = read_file(f.manifests + "/pods.yaml");
  const auto at = pods.find("podIP: 10.99.1.11");
  REQUIRE(at != std::string::npos);
  pods.replace(at, std::string("podIP: 10.99.1.11").size(), "podIP: 10.99.1.21");
  {
    std::ofstream out(f.manifests + "/pods.yaml", std::ios::binary | std::ios::trunc);
    out << pods;
  }
  auto r3 = next_of(c, kAddr);
  REQUIRE(r3);
  CHECK(versions_of(*r3).count(kWeb1));
  CHECK(versions_of(*r3).size() == 1);
  CHECK(removed_of(*r3) == std::set<std::string>{"/10.99.1.11"});

  // A reconnect resumes exactly: what the client holds at the current version is not resent,
  // what no alias covers any more is removed.
  {
    Client again(f.channel(), "good-token");
    ds::DeltaDiscoveryRequest resume;
    resume.set_type_url(kAddr);
    resume.add_resource_names_subscribe("*");
    resume.add_resource_names_unsubscribe("*");
    resume.add_resource_names_subscribe("/10.99.250.10");
    for (const auto& [name, version] : versions_of(*r2)) (*resume.mutable_initial_resource_versions())[name] = version;
    (*resume.mutable_initial_resource_versions())[kWeb1] = versions_of(*r3).at(kWeb1);
    (*resume.mutable_initial_resource_versions())["Kubernetes//Pod/demo/gone"] = "0123456789abcdef";
    REQUIRE(again.send(resume));
    auto rr = next_of(again, kAddr);
    REQUIRE(rr);
    CHECK(rr->resources_size() == 0);
    CHECK(removed_of(*rr) == std::set<std::string>{"Kubernetes//Pod/demo/gone"});
  }

  // Unsubscribing the VIP drops what only it covered (web-1 and web-2, the service).
  ds::DeltaDiscoveryRequest drop;
  drop.set_type_url(kAddr);
  drop.add_resource_names_unsubscribe("/10.99.250.10");
  REQUIRE(c.send(drop));
  auto r4 = next_of(c, kAddr);
  REQUIRE(r4);
  CHECK(r4->resources_size() == 0);
  CHECK(removed_of(*r4) == std::set<std::string>{kWeb1, kWeb2, kWebSvc});
}
