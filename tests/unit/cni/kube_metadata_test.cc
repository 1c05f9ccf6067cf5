// KubeMetadataSource (cni/kube_metadata.h) against the Kubernetes API test server of
// tests/25-kube-controlplane (kube_api_server.py, itself checked with the real kubectl there):
// the pods of this node only (fieldSelector), namespace labels, the fallback GET for a pod the
// cache does not hold, change notifications, and the Pod parser's errors.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cni/kube_metadata.h"

using cni::KubeMetadataSource;
using nlohmann::json;

namespace {

// The test server as a child process; stopped (SIGTERM, reaped) at scope exit.
class ApiServer {
 public:
  ApiServer() {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      const std::string script = std::string(AMBIENT_SOURCE_DIR) + "/tests/25-kube-controlplane/kube_api_server.py";
      ::execlp("python3", "python3", script.c_str(), "--token", "t0ken", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    FILE* out = ::fdopen(fds[0], "r");
    REQUIRE(out != nullptr);
    char line[128] = {};
    // Blocks until the server prints its port (or dies: EOF).
    const bool got = std::fgets(line, sizeof line, out) != nullptr;
    std::fclose(out);
    REQUIRE(got);
    REQUIRE(std::sscanf(line, "LISTENING %d", &port_) == 1);
  }
  ~ApiServer() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  common::kube::KubeConfig config() const {
    common::kube::KubeConfig cfg;
    REQUIRE(common::kube::parse_server_url("http://127.0.0.1:" + std::to_string(port_), cfg).ok());
    cfg.token = "t0ken";
    return cfg;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

void call(const common::kube::KubeClient& c, const char* method, const std::string& target, const json& body,
          int want) {
  auto r = c.request(method, target, body.dump(),
                     std::string(method) == "PATCH" ? "application/merge-patch+json" : "application/json");
  REQUIRE(r.ok());
  INFO(r->body);
  REQUIRE(r->status == want);
}

json pod(const std::string& name, const std::string& node, const json& labels = json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "demo"}, {"labels", labels}}},
          {"spec", {{"nodeName", node}, {"serviceAccountName", "web"}, {"containers", json::array()}}}};
}

// Polls `pred` (informer updates are asynchronous); a hang guard, not a timing check.
template <class F>
bool eventually(F pred) {
  for (int i = 0; i < 600; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace

TEST_CASE("KubeMetadataSource: the Pod parser takes labels, uid, serviceAccountName, hostNetwork") {
  auto m = KubeMetadataSource::parse_pod(
      R"({"metadata":{"name":"a","namespace":"demo","uid":"u-1","labels":{"app":"x"}},
          "spec":{"serviceAccountName":"web","hostNetwork":true}})");
  REQUIRE(m.ok());
  CHECK(m->uid == "u-1");
  CHECK(m->service_account == "web");
  CHECK(m->host_network);
  CHECK(m->pod_labels.at("app") == "x");
  auto defaults = KubeMetadataSource::parse_pod(R"({"metadata":{"name":"a","namespace":"demo"},"spec":{}})");
  REQUIRE(defaults.ok());
  CHECK(defaults->service_account == "default");
  CHECK_FALSE(defaults->host_network);
  auto bad =
      KubeMetadataSource::parse_pod(R"({"metadata":{"name":"a","namespace":"demo"},"spec":{"hostNetwork":"yes"}})");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("spec.hostNetwork") != std::string::npos);
  auto bad_label = KubeMetadataSource::parse_namespace_labels(R"({"metadata":{"name":"demo","labels":{"k":1}}})");
  REQUIRE_FALSE(bad_label.ok());
  CHECK(bad_label.error().find("metadata.labels.k") != std::string::npos);
}

TEST_CASE("KubeMetadataSource: this node's pods and namespace labels from the API, with change notifications") {
  ApiServer server;
  common::kube::KubeClient client(server.config());
  call(client, "POST", "/api/v1/namespaces", {{"metadata", {{"name", "demo"}}}}, 201);
  call(client, "POST", "/api/v1/namespaces/demo/pods", pod("a", "node-1"), 201);
  call(client, "POST", "/api/v1/namespaces/demo/pods", pod("b", "node-2"), 201);

  cni::KubeMetadataOptions o;
  o.config = server.config();
  o.node_name = "node-1";
  o.watch_timeout_seconds = 5;
  auto started = KubeMetadataSource::start(o);
  REQUIRE(started.ok());
  auto src = *started;
  std::atomic<int> changes{0};
  src->set_on_change([&] { ++changes; });

  // Only node-1's pod is watched.
  auto known = src->known_pods();
  CHECK(known.size() == 1);
  CHECK(known.count("demo/a") == 1);

  auto a = src->lookup("demo", "a");
  REQUIRE(a.ok());
  CHECK(a->service_account == "web");
  CHECK_FALSE(a->uid.empty());
  CHECK_FALSE(cni::decide_capture(*a).capture);

  // Not in the cache (another node): one GET answers it; an unknown pod is an error.
  auto b = src->lookup("demo", "b");
  REQUIRE(b.ok());
  CHECK(b->name == "b");
  auto missing = src->lookup("demo", "nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().find("demo/nope") != std::string::npos);
  CHECK(missing.error().find("404") != std::string::npos);

  // Labelling the namespace reaches the source through the watch, and is announced.
  const int before = changes.load();
  call(client, "PATCH", "/api/v1/namespaces/demo",
       {{"metadata", {{"labels", {{"istio.io/dataplane-mode", "ambient"}}}}}}, 200);
  CHECK(eventually([&] {
    auto m = src->lookup("demo", "a");
    return m.ok() && cni::decide_capture(*m).capture;
  }));
  CHECK(eventually([&] { return changes.load() > before; }));

  // A pod label opting out wins over the namespace.
  call(client, "PATCH", "/api/v1/namespaces/demo/pods/a",
       {{"metadata", {{"labels", {{"istio.io/dataplane-mode", "none"}}}}}}, 200);
  CHECK(eventually([&] {
    auto m = src->lookup("demo", "a");
    return m.ok() && !cni::decide_capture(*m).capture;
  }));

  // A pod scheduled to this node later joins the cache; its deletion leaves it.
  call(client, "POST", "/api/v1/namespaces/demo/pods", pod("c", "node-1"), 201);
  CHECK(eventually([&] { return src->known_pods().count("demo/c") == 1; }));
  call(client, "DELETE", "/api/v1/namespaces/demo/pods/c", json::object(), 200);
  CHECK(eventually([&] { return src->known_pods().count("demo/c") == 0; }));

  src->set_on_change(nullptr);
  src->stop();
}

TEST_CASE("KubeMetadataSource: a node name is required, an unreachable API fails the start") {
  cni::KubeMetadataOptions o;
  REQUIRE(common::kube::parse_server_url("http://127.0.0.1:1", o.config).ok());
  auto no_node = KubeMetadataSource::start(o);
  REQUIRE_FALSE(no_node.ok());
  CHECK(no_node.error().find("node name") != std::string::npos);
  o.node_name = "node-1";
  o.initial_sync_timeout = std::chrono::seconds(1);
  auto down = KubeMetadataSource::start(o);
  REQUIRE_FALSE(down.ok());
  CHECK(down.error().find("namespaces") != std::string::npos);
}
