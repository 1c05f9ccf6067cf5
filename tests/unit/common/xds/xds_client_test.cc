// common::xds::DeltaAdsClient and ztunnel::XdsSource against an in-process delta ADS server
// (grpc++ sync API, plaintext on 127.0.0.1). The fake server is scripted from the test thread:
// every stream operation (write a response, read one request, end the stream) is queued as an
// action and executed by the server's handler thread, so the test decides exactly what the
// client sees and in which order. Every wait is bounded (5 s) so a bug fails instead of hangs.
#include <grpcpp/grpcpp.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "common/admin/metrics.h"
#include "common/xds/delta_ads_client.h"
#include "common/xds/node.h"
#include "envoy/service/discovery/v3/discovery.grpc.pb.h"
#include "istio/security/authorization.pb.h"
#include "istio/workload/workload.pb.h"
#include "common/model/xds/xds_convert.h"
#include "ztunnel/state/route.h"
#include "ztunnel/state/xds_source.h"

namespace {

namespace dv3 = envoy::service::discovery::v3;
using Req = dv3::DeltaDiscoveryRequest;
using Resp = dv3::DeltaDiscoveryResponse;
using namespace std::chrono_literals;

constexpr auto kWait = 5s;
const std::string kAddr = "type.googleapis.com/istio.workload.Address";
const std::string kAuthz = "type.googleapis.com/istio.security.Authorization";

class FakeAds final : public dv3::AggregatedDiscoveryService::Service {
 public:
  struct Action {
    enum Kind { Send, Read, End } kind = Send;
    Resp resp;
    grpc::Status status;
  };

  grpc::Status DeltaAggregatedResources(grpc::ServerContext* ctx,
                                        grpc::ServerReaderWriter<Resp, Req>* stream) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++streams_;
      metadata_.clear();
      for (const auto& [k, v] : ctx->client_metadata()) {
        metadata_[std::string(k.data(), k.size())] = std::string(v.data(), v.size());
      }
    }
    cv_.notify_all();
    for (;;) {
      Action a;
      {
        std::unique_lock<std::mutex> l(mu_);
        while (actions_.empty()) {
          if (shutting_ || ctx->IsCancelled()) return grpc::Status::CANCELLED;
          cv_.wait_for(l, 20ms);
        }
        a = std::move(actions_.front());
        actions_.pop_front();
      }
      switch (a.kind) {
        case Action::Send:
          if (!stream->Write(a.resp)) return grpc::Status::CANCELLED;
          break;
        case Action::Read: {
          Req r;
          if (!stream->Read(&r)) return grpc::Status::CANCELLED;
          {
            std::lock_guard<std::mutex> l(mu_);
            received_.push_back(std::move(r));
          }
          cv_.notify_all();
          break;
        }
        case Action::End:
          return a.status;
      }
    }
  }

  void push(Action a) {
    {
      std::lock_guard<std::mutex> l(mu_);
      actions_.push_back(std::move(a));
    }
    cv_.notify_all();
  }
  void send(const Resp& r) { push(Action{Action::Send, r, {}}); }
  void end(grpc::Status st) { push(Action{Action::End, {}, std::move(st)}); }

  // Reads one request from the current stream (bounded).
  std::optional<Req> next_request() {
    push(Action{Action::Read, {}, {}});
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, kWait, [&] { return !received_.empty(); })) return std::nullopt;
    Req r = std::move(received_.front());
    received_.pop_front();
    return r;
  }

  bool wait_streams(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kWait, [&] { return streams_ >= n; });
  }
  std::map<std::string, std::string> metadata() {
    std::lock_guard<std::mutex> l(mu_);
    return metadata_;
  }
  void shutdown() {
    {
      std::lock_guard<std::mutex> l(mu_);
      shutting_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Action> actions_;
  std::deque<Req> received_;
  std::map<std::string, std::string> metadata_;
  int streams_ = 0;
  bool shutting_ = false;
};

struct Server {
  FakeAds service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  Server() {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&service);
    server = b.BuildAndStart();
    REQUIRE(server);
    REQUIRE(port > 0);
  }
  ~Server() {
    service.shutdown();
    server->Shutdown(std::chrono::system_clock::now() + 2s);
  }
  std::string address() const { return "http://127.0.0.1:" + std::to_string(port); }
};

Resp response(const std::string& type, const std::string& nonce) {
  Resp r;
  r.set_type_url(type);
  r.set_nonce(nonce);
  return r;
}
void add_resource(Resp& r, const std::string& name, const std::string& version, const std::string& value,
                  const std::string& any_type = "") {
  auto* res = r.add_resources();
  res->set_name(name);
  res->set_version(version);
  res->mutable_resource()->set_type_url(any_type.empty() ? r.type_url() : any_type);
  res->mutable_resource()->set_value(value);
}

// Records what it was given; rejects any resource whose body is "bad".
class RecordingHandler : public common::xds::TypeHandler {
 public:
  std::vector<common::xds::ResourceError> apply(const std::vector<common::xds::Resource>& updated,
                                                const std::vector<std::string>& removed) override {
    std::lock_guard<std::mutex> l(mu);
    std::vector<common::xds::ResourceError> errors;
    for (const auto& r : updated) {
      if (r.value == "bad") {
        errors.push_back({std::string(r.name), "body is bad"});
        continue;
      }
      current[std::string(r.name)] = std::string(r.value);
      type_urls.emplace_back(r.type_url);
    }
    for (const auto& n : removed) current.erase(n);
    ++calls;
    return errors;
  }
  std::map<std::string, std::string> snapshot() {
    std::lock_guard<std::mutex> l(mu);
    return current;
  }
  std::mutex mu;
  std::map<std::string, std::string> current;
  std::vector<std::string> type_urls;
  int calls = 0;
};

// A flag another thread sets; wait() is bounded.
struct Flag {
  std::mutex mu;
  std::condition_variable cv;
  int count = 0;
  void set() {
    {
      std::lock_guard<std::mutex> l(mu);
      ++count;
    }
    cv.notify_all();
  }
  int value() {
    std::lock_guard<std::mutex> l(mu);
    return count;
  }
  bool wait(int n = 1) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, kWait, [&] { return count >= n; });
  }
};

uint64_t counter(common::metrics::Registry& reg, const std::string& name, const std::string& label,
                 const std::string& value) {
  return reg.counter(name, "", {label}).get({value})->value();
}

// Polls `pred` for up to 5 s (for values another thread sets without a notification).
template <typename F>
bool eventually(F pred) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

}  // namespace

TEST_CASE("node identity and metadata follow upstream", "[xds]") {
  common::xds::NodeInputs in;
  in.instance_ip = "10.0.0.7";
  in.pod_name = "zt-abc";
  in.pod_namespace = "istio-system";
  in.node_name = "node1";
  in.istio_meta = {{"CLUSTER_ID", "c1"}, {"NAME", "override"}};
  in.istio_meta_json = {{"LABELS", R"({"app":"x","n":2})"}, {"BROKEN", "{not json"}};
  auto n = common::xds::build_node(in);
  CHECK(n.id == "ztunnel~10.0.0.7~zt-abc.istio-system~istio-system.svc.cluster.local");
  CHECK(n.metadata["NAMESPACE"] == "istio-system");
  CHECK(n.metadata["INSTANCE_IPS"] == "10.0.0.7");
  CHECK(n.metadata["NODE_NAME"] == "node1");
  CHECK(n.metadata["CLUSTER_ID"] == "c1");
  CHECK(n.metadata["NAME"] == "override");  // ISTIO_META_* inserted after the base keys
  CHECK(n.metadata["LABELS"]["app"] == "x");
  CHECK(!n.metadata.contains("BROKEN"));

  in.instance_ip.clear();
  CHECK(common::xds::build_node(in).id == "ztunnel~1.1.1.1~zt-abc.istio-system~istio-system.svc.cluster.local");
}

TEST_CASE("delta ADS client: requests, ACK/NACK, removal, reconnect, metrics, sync", "[xds]") {
  Server srv;
  common::metrics::Registry reg;
  RecordingHandler addr_h, authz_h;
  Flag synced, connected, disconnected;

  common::xds::DeltaAdsOptions opts;
  opts.endpoint.address = srv.address();
  opts.endpoint.auth_token = "tok123";
  opts.endpoint.cluster_id = "c1";
  opts.endpoint.extra_headers = {{"x-extra", "yes"}};
  common::xds::NodeInputs ni;
  ni.instance_ip = "10.1.1.1";
  ni.pod_name = "p";
  ni.pod_namespace = "ns";
  ni.node_name = "n1";
  ni.istio_meta_json = {{"OBJ", R"({"a":[1,true,null],"b":"s"})"}};
  opts.node = common::xds::build_node(ni);
  opts.types = {{kAddr, &addr_h}, {kAuthz, &authz_h}};
  opts.on_synced = [&] { synced.set(); };
  opts.on_connection = [&](bool up, const std::string&) { up ? connected.set() : disconnected.set(); };
  common::xds::DeltaAdsClient client(opts, reg);
  client.start();

  // ---- stream 1: initial requests
  auto r1 = srv.service.next_request();
  REQUIRE(r1);
  CHECK(r1->type_url() == kAddr);
  CHECK(r1->node().id() == "ztunnel~10.1.1.1~p.ns~ns.svc.cluster.local");
  const auto& md = r1->node().metadata().fields();
  REQUIRE(md.count("NAME"));
  CHECK(md.at("NAME").string_value() == "p");
  CHECK(md.at("NAMESPACE").string_value() == "ns");
  CHECK(md.at("INSTANCE_IPS").string_value() == "10.1.1.1");
  CHECK(md.at("NODE_NAME").string_value() == "n1");
  REQUIRE(md.count("OBJ"));
  const auto& obj = md.at("OBJ").struct_value().fields();
  CHECK(obj.at("b").string_value() == "s");
  REQUIRE(obj.at("a").list_value().values_size() == 3);
  CHECK(obj.at("a").list_value().values(0).number_value() == 1.0);
  CHECK(obj.at("a").list_value().values(1).bool_value());
  CHECK(r1->resource_names_subscribe_size() == 0);
  CHECK(r1->resource_names_unsubscribe_size() == 0);
  CHECK(r1->initial_resource_versions().empty());
  CHECK(r1->response_nonce().empty());
  CHECK(!r1->has_error_detail());
  auto r2 = srv.service.next_request();
  REQUIRE(r2);
  CHECK(r2->type_url() == kAuthz);
  CHECK(r2->node().id() == r1->node().id());
  CHECK(r2->resource_names_subscribe_size() == 0);

  auto md_seen = srv.service.metadata();
  CHECK(md_seen["authorization"] == "Bearer tok123");
  CHECK(md_seen["clusterid"] == "c1");
  CHECK(md_seen["x-extra"] == "yes");
  REQUIRE(connected.wait());

  // ---- Address response with one bad resource and one of the wrong Any type: NACK, rest applies
  Resp a1 = response(kAddr, "n1");
  add_resource(a1, "w1", "v1", "body-w1");
  add_resource(a1, "w2", "v1", "bad");
  add_resource(a1, "s1", "v1", "body-s1");
  add_resource(a1, "x1", "v1", "body-x1", "type.googleapis.com/other.Type");
  srv.service.send(a1);
  auto r3 = srv.service.next_request();
  REQUIRE(r3);
  CHECK(r3->type_url() == kAddr);
  CHECK(r3->response_nonce() == "n1");
  REQUIRE(r3->has_error_detail());
  CHECK(r3->error_detail().code() == 3);
  CHECK_THAT(r3->error_detail().message(), Catch::Contains("w2: body is bad"));
  CHECK_THAT(r3->error_detail().message(), Catch::Contains("x1: resource type"));
  CHECK(r3->error_detail().message().find("w1") == std::string::npos);
  CHECK(addr_h.snapshot() == std::map<std::string, std::string>{{"s1", "body-s1"}, {"w1", "body-w1"}});
  CHECK(addr_h.type_urls == std::vector<std::string>{kAddr, kAddr});
  CHECK_THAT(client.status().last_nack, Catch::Contains("w2: body is bad"));
  // Only one of two types has answered: not synced yet (the handler ran before the NACK was
  // written, so this is not a race).
  CHECK(synced.value() == 0);
  CHECK(!client.status().synced);

  // ---- Authorization response: ACK, then synced
  Resp z1 = response(kAuthz, "n2");
  add_resource(z1, "ns/p1", "v7", "body-p1");
  srv.service.send(z1);
  auto r4 = srv.service.next_request();
  REQUIRE(r4);
  CHECK(r4->type_url() == kAuthz);
  CHECK(r4->response_nonce() == "n2");
  CHECK(!r4->has_error_detail());
  REQUIRE(synced.wait());
  CHECK(client.status().synced);

  // ---- removal (both spellings) and an update
  Resp a2 = response(kAddr, "n3");
  a2.add_removed_resources("w1");
  add_resource(a2, "s2", "v2", "body-s2");
  srv.service.send(a2);
  auto r5 = srv.service.next_request();
  REQUIRE(r5);
  CHECK(r5->response_nonce() == "n3");
  CHECK(!r5->has_error_detail());
  CHECK(addr_h.snapshot() == std::map<std::string, std::string>{{"s1", "body-s1"}, {"s2", "body-s2"}});
  Resp a3 = response(kAddr, "n4");
  a3.add_removed_resource_names()->set_name("s2");
  srv.service.send(a3);
  auto r6 = srv.service.next_request();
  REQUIRE(r6);
  CHECK(r6->response_nonce() == "n4");
  CHECK(addr_h.snapshot() == std::map<std::string, std::string>{{"s1", "body-s1"}});

  auto st = client.status();
  CHECK(st.connected);
  CHECK(st.responses == 4);
  CHECK(st.resources.at(kAddr) == 1);
  CHECK(st.resources.at(kAuthz) == 1);
  CHECK(counter(reg, "istio_xds_message_total", "url", kAddr) == 3);
  CHECK(counter(reg, "istio_xds_message_total", "url", kAuthz) == 1);
  CHECK(counter(reg, "istio_xds_message_bytes_total", "url", kAddr) ==
        a1.ByteSizeLong() + a2.ByteSizeLong() + a3.ByteSizeLong());
  CHECK(counter(reg, "istio_xds_message_bytes_total", "url", kAuthz) == z1.ByteSizeLong());

  // ---- the server ends the stream cleanly: reconnect carrying the accepted versions
  srv.service.end(grpc::Status::OK);
  REQUIRE(disconnected.wait());
  REQUIRE(srv.service.wait_streams(2));
  auto r7 = srv.service.next_request();
  REQUIRE(r7);
  CHECK(r7->type_url() == kAddr);
  CHECK(r7->response_nonce().empty());
  // w1 and s2 were removed, w2 and x1 rejected: only s1 is claimed.
  CHECK(std::map<std::string, std::string>(r7->initial_resource_versions().begin(),
                                           r7->initial_resource_versions().end()) ==
        std::map<std::string, std::string>{{"s1", "v1"}});
  CHECK(r7->node().id() == r1->node().id());
  auto r8 = srv.service.next_request();
  REQUIRE(r8);
  CHECK(r8->type_url() == kAuthz);
  CHECK(std::map<std::string, std::string>(r8->initial_resource_versions().begin(),
                                           r8->initial_resource_versions().end()) ==
        std::map<std::string, std::string>{{"ns/p1", "v7"}});
  CHECK(counter(reg, "istio_xds_connection_terminations_total", "reason", "Complete") == 1);
  REQUIRE(connected.wait(2));
  // The last good config survived the disconnect, and synced fires once per client.
  CHECK(addr_h.snapshot() == std::map<std::string, std::string>{{"s1", "body-s1"}});

  // ---- a NACKed update of an accepted resource keeps the accepted version
  Resp a4 = response(kAddr, "n5");
  add_resource(a4, "s1", "v2", "bad");
  srv.service.send(a4);
  auto r9 = srv.service.next_request();
  REQUIRE(r9);
  CHECK(r9->has_error_detail());
  Resp z2 = response(kAuthz, "n6");
  srv.service.send(z2);
  REQUIRE(srv.service.next_request());
  CHECK(synced.value() == 1);

  // ---- a failing stream (non-OK status) counts as Error and reconnects again
  srv.service.end(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "nope"));
  REQUIRE(srv.service.wait_streams(3));
  auto r10 = srv.service.next_request();
  REQUIRE(r10);
  CHECK(std::map<std::string, std::string>(r10->initial_resource_versions().begin(),
                                           r10->initial_resource_versions().end()) ==
        std::map<std::string, std::string>{{"s1", "v1"}});
  CHECK(counter(reg, "istio_xds_connection_terminations_total", "reason", "Error") == 1);
  CHECK_THAT(client.status().last_disconnect, Catch::Contains("nope"));

  client.stop();
  client.stop();  // idempotent
  CHECK(!client.status().connected);
  // stop() is not a termination worth counting.
  CHECK(counter(reg, "istio_xds_connection_terminations_total", "reason", "Complete") == 1);
  CHECK(counter(reg, "istio_xds_connection_terminations_total", "reason", "Error") == 1);
}

TEST_CASE("delta ADS client: unreachable server counts ConnectionError and stops promptly", "[xds]") {
  // Reserve a port and close it so nothing listens there.
  int dead_port = 0;
  {
    grpc::ServerBuilder b;
    FakeAds svc;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &dead_port);
    b.RegisterService(&svc);
    auto s = b.BuildAndStart();
    REQUIRE(s);
    s->Shutdown(std::chrono::system_clock::now());
  }
  common::metrics::Registry reg;
  RecordingHandler h;
  common::xds::DeltaAdsOptions opts;
  opts.endpoint.address = "http://127.0.0.1:" + std::to_string(dead_port);
  opts.types = {{kAddr, &h}};
  {
    common::xds::DeltaAdsClient client(opts, reg);
    client.start();
    CHECK(eventually([&] { return counter(reg, "istio_xds_connection_terminations_total", "reason",
                                          "ConnectionError") >= 2; }));
    CHECK(!client.status().connected);
    CHECK(!client.status().last_disconnect.empty());
    client.stop();
  }
  // A malformed address never gets a channel; stop and destruction still work.
  opts.endpoint.address = "ftp://x";
  common::xds::DeltaAdsClient bad(opts, reg);
  bad.start();
  CHECK(eventually([&] { return bad.status().last_disconnect.find("scheme") != std::string::npos; }));
  // destructor stops
}

TEST_CASE("delta ADS client: stop() interrupts a live stream", "[xds]") {
  Server srv;
  common::metrics::Registry reg;
  RecordingHandler h;
  common::xds::DeltaAdsOptions opts;
  opts.endpoint.address = srv.address();
  opts.types = {{kAddr, &h}};
  common::xds::DeltaAdsClient client(opts, reg);
  client.start();
  REQUIRE(srv.service.next_request());
  client.stop();  // the client is blocked in Read(); TryCancel must release it
  CHECK(!client.status().connected);
  CHECK(counter(reg, "istio_xds_connection_terminations_total", "reason", "Error") == 0);
}

namespace {

std::string ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return std::string{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c), static_cast<char>(d)};
}

}  // namespace

TEST_CASE("XdsSource: snapshots only after both types, NACK reasons, removal", "[xds]") {
  Server srv;
  common::metrics::Registry reg;
  boost::asio::io_context control;
  ztunnel::Config cfg;
  cfg.xds_address = srv.address();
  cfg.auth_token = "";
  cfg.pod_name = "zt";
  cfg.pod_namespace = "istio-system";
  std::vector<ztunnel::SnapshotConstSharedPtr> snaps;
  int synced = 0;
  ztunnel::XdsSource source(
      cfg, reg, control, [&](ztunnel::SnapshotConstSharedPtr s) { snaps.push_back(std::move(s)); },
      [&] {
        // The first snapshot is installed before readiness is released.
        CHECK(!snaps.empty());
        ++synced;
      });
  source.start();
  REQUIRE(srv.service.next_request());
  auto r2 = srv.service.next_request();
  REQUIRE(r2);
  CHECK(r2->node().id() == "ztunnel~1.1.1.1~zt.istio-system~istio-system.svc.cluster.local");

  istio::workload::Address wa;
  auto* w = wa.mutable_workload();
  w->set_uid("c//Pod/ns/a");
  w->set_name("a");
  w->set_namespace_("ns");
  w->add_addresses(ip4(10, 0, 0, 1));
  w->set_tunnel_protocol(istio::workload::HBONE);
  istio::workload::Address bad = wa;
  bad.mutable_workload()->set_uid("c//Pod/ns/b");
  bad.mutable_workload()->set_tunnel_protocol(istio::workload::LEGACY_ISTIO_MTLS);
  istio::workload::Address sa;
  auto* s = sa.mutable_service();
  s->set_name("svc");
  s->set_namespace_("ns");
  s->set_hostname("svc.ns.svc.cluster.local");
  auto* vip = s->add_addresses();
  vip->set_address(ip4(10, 96, 0, 1));
  auto* port = s->add_ports();
  port->set_service_port(80);
  port->set_target_port(8080);

  Resp a1 = response(kAddr, "n1");
  add_resource(a1, "c//Pod/ns/a", "1", wa.SerializeAsString());
  add_resource(a1, "c//Pod/ns/b", "1", bad.SerializeAsString());
  add_resource(a1, "ns/svc.ns.svc.cluster.local", "1", sa.SerializeAsString());
  add_resource(a1, "wrong-name", "1", wa.SerializeAsString());
  srv.service.send(a1);
  auto r3 = srv.service.next_request();
  REQUIRE(r3);
  REQUIRE(r3->has_error_detail());
  CHECK_THAT(r3->error_detail().message(), Catch::Contains("c//Pod/ns/b: workload: tunnel_protocol"));
  CHECK_THAT(r3->error_detail().message(), Catch::Contains("wrong-name: resource name 'wrong-name' does not match"));
  control.restart();
  control.poll();
  CHECK(snaps.empty());  // Authorization has not answered yet: nothing published
  CHECK(synced == 0);

  istio::security::Authorization pol;
  pol.set_name("deny-all");
  pol.set_namespace_("ns");
  pol.set_scope(istio::security::NAMESPACE);
  pol.set_action(istio::security::DENY);
  pol.add_rules()->add_clauses()->add_matches()->add_destination_ports(9090);
  Resp z1 = response(kAuthz, "n2");
  add_resource(z1, "ns/deny-all", "1", pol.SerializeAsString());
  srv.service.send(z1);
  auto r4 = srv.service.next_request();
  REQUIRE(r4);
  CHECK(!r4->has_error_detail());
  // The snapshot and sync are posted before the ACK is written.
  control.restart();
  control.poll();
  REQUIRE(snaps.size() == 1);
  CHECK(synced == 1);
  const auto& snap = *snaps.back();
  CHECK(snap.version() == 1);
  REQUIRE(snap.find_workload_by_uid("c//Pod/ns/a"));
  CHECK(snap.find_workload_by_uid("c//Pod/ns/a")->service_account == "default");
  CHECK(!snap.find_workload_by_uid("c//Pod/ns/b"));
  REQUIRE(snap.find_service_by_key("ns/svc.ns.svc.cluster.local"));
  CHECK(snap.find_service_by_key("ns/svc.ns.svc.cluster.local")->ports.find(80) == 8080);
  REQUIRE(snap.find_policy("ns/deny-all"));
  CHECK(snap.find_policy("ns/deny-all")->action == ztunnel::AuthzAction::Deny);

  auto st = source.status();
  CHECK(st["connected"] == true);
  CHECK(st["synced"] == true);
  CHECK(st["resources"]["workloads"] == 1);
  CHECK(st["resources"]["services"] == 1);
  CHECK(st["resources"]["policies"] == 1);
  CHECK_THAT(st["lastNack"].get<std::string>(), Catch::Contains("LEGACY_ISTIO_MTLS"));

  // Removing the workload publishes a new snapshot without it.
  Resp a2 = response(kAddr, "n3");
  a2.add_removed_resources("c//Pod/ns/a");
  srv.service.send(a2);
  REQUIRE(srv.service.next_request());
  control.restart();
  control.poll();
  REQUIRE(snaps.size() == 2);
  CHECK(snaps.back()->version() == 2);
  CHECK(!snaps.back()->find_workload_by_uid("c//Pod/ns/a"));
  CHECK(snaps.back()->find_service_by_key("ns/svc.ns.svc.cluster.local"));
  CHECK(source.status()["resources"]["workloads"] == 0);

  source.stop();
  source.stop();
}

TEST_CASE("XdsSource: a Workload with field 21 hostname and no address is routed by on-demand DNS", "[xds][dns]") {
  Server srv;
  common::metrics::Registry reg;
  boost::asio::io_context control;
  ztunnel::Config cfg;
  cfg.xds_address = srv.address();
  cfg.auth_token = "";
  cfg.pod_name = "zt";
  cfg.pod_namespace = "istio-system";
  std::vector<ztunnel::SnapshotConstSharedPtr> snaps;
  ztunnel::XdsSource source(
      cfg, reg, control, [&](ztunnel::SnapshotConstSharedPtr s) { snaps.push_back(std::move(s)); }, [] {});
  source.start();
  REQUIRE(srv.service.next_request());
  REQUIRE(srv.service.next_request());

  istio::workload::Address client;
  client.mutable_workload()->set_uid("c//Pod/ns/client");
  client.mutable_workload()->set_name("client");
  client.mutable_workload()->set_namespace_("ns");
  client.mutable_workload()->add_addresses(ip4(10, 0, 0, 1));
  client.mutable_workload()->set_tunnel_protocol(istio::workload::HBONE);
  // What istiod sends for a ServiceEntry with resolution DNS: hostname (21), no addresses.
  istio::workload::Address ext;
  auto* w = ext.mutable_workload();
  w->set_uid("c/networking.istio.io/ServiceEntry/ns/ext/db.example.com");
  w->set_name("ext");
  w->set_namespace_("ns");
  w->set_hostname("db.example.com");
  auto* p = (*w->mutable_services())["ns/db.example.com"].add_ports();
  p->set_service_port(5432);
  p->set_target_port(15432);
  istio::workload::Address svc;
  auto* s = svc.mutable_service();
  s->set_name("ext");
  s->set_namespace_("ns");
  s->set_hostname("db.example.com");
  s->add_addresses()->set_address(ip4(240, 0, 0, 1));
  auto* sp = s->add_ports();
  sp->set_service_port(5432);
  sp->set_target_port(5432);

  Resp a1 = response(kAddr, "n1");
  add_resource(a1, "c//Pod/ns/client", "1", client.SerializeAsString());
  add_resource(a1, "c/networking.istio.io/ServiceEntry/ns/ext/db.example.com", "1", ext.SerializeAsString());
  add_resource(a1, "ns/db.example.com", "1", svc.SerializeAsString());
  srv.service.send(a1);
  auto r3 = srv.service.next_request();
  REQUIRE(r3);
  CHECK(!r3->has_error_detail());
  srv.service.send(response(kAuthz, "n2"));
  REQUIRE(srv.service.next_request());
  control.restart();
  control.poll();
  REQUIRE(snaps.size() == 1);
  const auto& snap = *snaps.back();
  const auto* src = snap.find_workload_by_uid("c//Pod/ns/client");
  const auto* dst = snap.find_workload_by_uid("c/networking.istio.io/ServiceEntry/ns/ext/db.example.com");
  REQUIRE(src);
  REQUIRE(dst);
  CHECK(dst->hostname == "db.example.com");
  CHECK(dst->addresses.empty());
  auto r = ztunnel::route_outbound(snap, *src, *ztunnel::parse_ip("240.0.0.1"), 5432, 0);
  CHECK(r.kind == ztunnel::RouteKind::Tcp);
  CHECK(r.resolve_hostname == "db.example.com");
  CHECK(r.target.port == 15432);
  source.stop();
}

TEST_CASE("delta ADS client: an on-demand type subscribes and unsubscribes '*', then only new names", "[xds]") {
  Server srv;
  common::metrics::Registry reg;
  RecordingHandler addr_h;
  Flag connected;
  common::xds::DeltaAdsOptions opts;
  opts.endpoint.address = srv.address();
  opts.endpoint.auth_token = "";
  opts.types = {{kAddr, &addr_h}};
  opts.on_demand_types = {kAddr};
  opts.on_connection = [&](bool up, const std::string&) {
    if (up) connected.set();
  };
  common::xds::DeltaAdsClient client(opts, reg);
  client.subscribe(kAddr, {"/10.0.0.1"});  // before any stream: carried by the initial request
  client.start();

  auto r1 = srv.service.next_request();
  REQUIRE(r1);
  CHECK(r1->type_url() == kAddr);
  CHECK(std::vector<std::string>(r1->resource_names_subscribe().begin(), r1->resource_names_subscribe().end()) ==
        std::vector<std::string>{"*", "/10.0.0.1"});
  CHECK(std::vector<std::string>(r1->resource_names_unsubscribe().begin(), r1->resource_names_unsubscribe().end()) ==
        std::vector<std::string>{"*"});
  REQUIRE(connected.wait());

  // On the live stream: one request with just the name not subscribed yet.
  client.subscribe(kAddr, {"/10.0.0.1", "/10.0.0.2"});
  auto r2 = srv.service.next_request();
  REQUIRE(r2);
  CHECK(r2->type_url() == kAddr);
  CHECK(r2->response_nonce().empty());
  CHECK(std::vector<std::string>(r2->resource_names_subscribe().begin(), r2->resource_names_subscribe().end()) ==
        std::vector<std::string>{"/10.0.0.2"});
  CHECK(r2->resource_names_unsubscribe_size() == 0);
  client.stop();
}
