// XDS_ON_DEMAND end to end on loopback: ztunnel's XdsSource (delta client in on-demand mode)
// against the real controlplane ADS server over TLS gRPC, serving examples/k8s. The client
// gets nothing in bulk; demanding an address makes one alias subscription whose answer (the
// owning workload or service under its real name) reaches the waiters with a snapshot that
// resolves it; an address nobody owns is answered absent and not waited for again.
// Every wait is bounded.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/admin/metrics.h"
#include "controlplane/serve.h"
#include "temp_dir.h"
#include "ztunnel/state/on_demand.h"
#include "ztunnel/state/xds_source.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct ControlPlane {
  testutil::TempDir tmp{"on-demand-test"};
  std::unique_ptr<controlplane::ControlPlaneServer> server;

  ControlPlane() {
    const std::string mesh = tmp.file("mesh");
    fs::create_directories(mesh);
    for (const auto& e : fs::directory_iterator(testutil::examples_k8s())) {
      fs::copy_file(e.path(), fs::path(mesh) / e.path().filename());
    }
    tmp.replace("tokens.yaml",
                "tokens:\n"
                "- token: good-token\n"
                "  serviceAccount: istio-system/ztunnel\n"
                "  node: demo-node\n");
    controlplane::ServeOptions opt;
    opt.dir = mesh;
    opt.listen = "127.0.0.1:0";
    opt.cacerts = tmp.file("cacerts");
    opt.tokens = tmp.file("tokens.yaml");
    opt.out = tmp.file("local.yaml");
    auto s = controlplane::ControlPlaneServer::start(opt);
    if (!s) FAIL(s.error());
    server = std::move(*s);
  }
};

// Runs the control io_context on its own thread (XdsSource posts there).
struct ControlThread {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::thread t{[this] { io.run(); }};
  ~ControlThread() {
    guard.reset();
    io.stop();
    t.join();
  }
};

ztunnel::IpAddr ip(const char* s) {
  return *ztunnel::parse_ip(s);
}

}  // namespace

TEST_CASE("XDS_ON_DEMAND: nothing in bulk, then what an address demand resolves", "[xds][ondemand]") {
  ControlPlane cp;
  common::metrics::Registry reg;
  ControlThread control;
  ztunnel::Config cfg;
  cfg.xds_address = "https://" + cp.server->address();
  cfg.xds_root_ca = cp.server->root_cert_pem();
  cfg.auth_token = "good-token";
  cfg.pod_name = "zt";
  cfg.pod_namespace = "istio-system";
  cfg.xds_on_demand = true;

  std::mutex mu;
  ztunnel::SnapshotConstSharedPtr latest;
  std::promise<void> synced;
  ztunnel::XdsSource source(
      cfg, reg, control.io,
      [&](ztunnel::SnapshotConstSharedPtr s) {
        std::lock_guard<std::mutex> l(mu);
        latest = std::move(s);
      },
      [&] { synced.set_value(); });
  auto od = source.on_demand();
  REQUIRE(od);
  source.start();
  REQUIRE(synced.get_future().wait_for(10s) == std::future_status::ready);
  {
    std::lock_guard<std::mutex> l(mu);
    REQUIRE(latest);
    CHECK(latest->find_workload("", ip("10.99.1.11")) == nullptr);  // nothing in bulk
    CHECK(latest->find_service("", ip("10.99.250.10")) == nullptr);
  }

  // Two waiters of one key share one request; both get the answering snapshot.
  std::promise<ztunnel::SnapshotConstSharedPtr> a, b;
  CHECK(od->demand("", ip("10.99.1.11"), [&](ztunnel::SnapshotConstSharedPtr s) { a.set_value(std::move(s)); }));
  CHECK(od->demand("", ip("10.99.1.11"), [&](ztunnel::SnapshotConstSharedPtr s) { b.set_value(std::move(s)); }));
  CHECK(od->pending() == 1);
  auto fa = a.get_future();
  auto fb = b.get_future();
  REQUIRE(fa.wait_for(10s) == std::future_status::ready);
  REQUIRE(fb.wait_for(1s) == std::future_status::ready);
  auto snap = fa.get();
  CHECK(fb.get() == snap);
  const ztunnel::Workload* w = snap->find_workload("", ip("10.99.1.11"));
  REQUIRE(w != nullptr);
  CHECK(w->name == "web-1");
  CHECK(snap->find_workload("", ip("10.99.1.12")) == nullptr);  // only what was demanded
  CHECK(od->pending() == 0);

  // A service VIP resolves to the service, with its endpoints (so it can be routed).
  std::promise<ztunnel::SnapshotConstSharedPtr> v;
  CHECK(od->demand("", ip("10.99.250.10"), [&](ztunnel::SnapshotConstSharedPtr s) { v.set_value(std::move(s)); }));
  auto fv = v.get_future();
  REQUIRE(fv.wait_for(10s) == std::future_status::ready);
  const ztunnel::Service* svc = fv.get()->find_service("", ip("10.99.250.10"));
  REQUIRE(svc != nullptr);
  CHECK(svc->hostname == "web.demo.svc.cluster.local");

  // Nobody owns it: answered absent, and the next demand returns at once.
  std::promise<ztunnel::SnapshotConstSharedPtr> n;
  CHECK(od->demand("", ip("192.0.2.7"), [&](ztunnel::SnapshotConstSharedPtr s) { n.set_value(std::move(s)); }));
  auto fn = n.get_future();
  REQUIRE(fn.wait_for(10s) == std::future_status::ready);
  CHECK(fn.get()->find_workload("", ip("192.0.2.7")) == nullptr);
  CHECK(od->absent() == 1);
  CHECK_FALSE(od->demand("", ip("192.0.2.7"), [](ztunnel::SnapshotConstSharedPtr) {}));

  const auto st = source.status();
  CHECK(st["resources"]["workloads"] == 2);  // web-1 demanded; web-2 as an endpoint of the VIP
  CHECK(st["resources"]["services"] == 1);
  source.stop();
}
